"""Secrets never reach Dagster's view of the code location, its storage, the warehouse or reports.

Every secret the project knows is set in the environment with a marker in its value. The code
location is built from that environment, real runs are made, and everything Dagster serves or
stores is searched for the markers. A new secret is one more row in ``SECRETS``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path

import pytest
import yaml
from dagster import instance_for_test
from dagster._core.remote_representation.external_data import RepositorySnap, ResourceConfigEnvVarSnap
from dagster._serdes import serialize_value
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
from ntrader_pipeline.adapters.object_store import ObjectStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.definitions import build_definitions
from ntrader_pipeline.defs.resources import (
    S3_ACCESS_KEY_ID_VAR,
    S3_SECRET_ACCESS_KEY_VAR,
    WAREHOUSE_URL_VAR,
    PipelineStores,
)
from ntrader_pipeline.pipeline import Pipeline
from ntrader_pipeline.settings import Settings, get_settings
from ntrader_pipeline_tests.support import ORCL_DAILY, REPO_ROOT

MARK = "s3cretMARKER"

# Every secret the project knows, with a value carrying the marker. The warehouse URL is set per
# test: a Postgres URL with a password, or absent for the embedded SQLite default.
SECRETS = {
    "POSTGRES_PASSWORD": f"pg-{MARK}",  # compose's .env; the Dagster containers get it via env_file
    "DAGSTER_POSTGRES_PASSWORD": f"dagster-{MARK}",  # Dagster's own storage (dagster.yaml reads it)
    "TWS_USERID": f"user-{MARK}",  # the IB Gateway login, read only by its container
    "TWS_PASSWORD": f"tws-{MARK}",
    S3_ACCESS_KEY_ID_VAR: f"s3id-{MARK}",  # object storage (catalog and reports on s3://)
    S3_SECRET_ACCESS_KEY_VAR: f"s3key-{MARK}",
}
# Settings fields whose names look secret, each with the variable the row above (or the warehouse
# URL) covers: a new one fails test_every_secret_looking_setting_is_covered until it has a row.
SECRET_LOOKING = re.compile(r"password|secret|token|key|url|user", re.IGNORECASE)
COVERED_SETTINGS = {
    "warehouse_url": WAREHOUSE_URL_VAR,
    "s3_access_key_id": S3_ACCESS_KEY_ID_VAR,
    "s3_secret_access_key": S3_SECRET_ACCESS_KEY_VAR,
}
# Settings whose names look secret but hold none, each with the reason.
PLAIN_SETTINGS = {"s3_endpoint_url": "the S3-API server's address; its credentials are the two s3 keys"}


def secret_url(url: str) -> str:
    return make_url(url).set(password=f"wh-{MARK}").render_as_string(hide_password=False)


def assert_clean(where: str, text_: str | bytes) -> None:
    found = MARK.encode() in text_ if isinstance(text_, bytes) else MARK in text_
    assert not found, f"a secret value reached {where}"


@pytest.fixture
def instance(tmp_path):
    """A Dagster instance whose every file is under tmp_path, to be searched afterwards."""
    (tmp_path / "instance").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        yield instance


@pytest.fixture
def secret_env(ntrader_home, monkeypatch) -> None:
    for variable, value in SECRETS.items():
        monkeypatch.setenv(variable, value)


def test_every_secret_looking_setting_is_covered():
    looking = {name for model in (Settings, IbkrSettings) for name in model.model_fields if SECRET_LOOKING.search(name)}
    assert looking == set(COVERED_SETTINGS) | set(PLAIN_SETTINGS)
    assert set(COVERED_SETTINGS.values()) <= {*SECRETS, WAREHOUSE_URL_VAR}


def test_a_password_given_in_code_is_refused_and_a_url_without_one_is_kept(tmp_path, monkeypatch):
    monkeypatch.delenv(WAREHOUSE_URL_VAR, raising=False)
    with pytest.raises(ValueError, match=WAREHOUSE_URL_VAR):
        PipelineStores.from_settings(Settings(home=tmp_path, warehouse_url=secret_url("postgresql+psycopg://u@h/db")))
    plain = f"sqlite:///{tmp_path / 'w.sqlite'}"
    assert PipelineStores.from_settings(Settings(home=tmp_path, warehouse_url=plain)).warehouse_url == plain


@pytest.mark.parametrize("warehouse", ["sqlite", "postgres", "sqlite+s3"])
def test_no_secret_in_snapshot_runs_events_metadata_or_reports(
    warehouse, secret_env, instance, tmp_path, monkeypatch, request
):
    """With ``sqlite+s3`` the catalog and the reports are in a real S3-API bucket reached with the
    marked keys (the test server takes any), and its objects are searched too."""
    if warehouse == "postgres":
        monkeypatch.setenv(WAREHOUSE_URL_VAR, secret_url(request.getfixturevalue("postgres_url")))
    bucket = None
    if warehouse == "sqlite+s3":
        bucket = request.getfixturevalue("s3_bucket")
        for variable in ("NTRADER_S3_ENDPOINT_URL", "NTRADER_S3_REGION"):
            monkeypatch.setenv(variable, bucket[variable])
        monkeypatch.setenv("NTRADER_CATALOG_PATH", f"s3://{bucket['bucket']}/catalog")
        monkeypatch.setenv("NTRADER_REPORTS_DIR", f"s3://{bucket['bucket']}/reports")
    settings = get_settings()
    defs = build_definitions(settings)

    snapshot = RepositorySnap.from_def(defs.get_repository_def())  # what the code server sends the UI
    assert_clean("the repository snapshot", serialize_value(snapshot))
    configured = next(r for r in snapshot.resources if r.name == "stores").configured_values
    for field in ("s3_access_key_id", "s3_secret_access_key"):
        assert configured[field] == ResourceConfigEnvVarSnap(name=COVERED_SETTINGS[field])
    stores = configured["warehouse_url"]
    if warehouse == "postgres":
        assert stores == ResourceConfigEnvVarSnap(name=WAREHOUSE_URL_VAR)
    else:
        assert json.loads(stores) == settings.resolved_warehouse_url  # the embedded default stays plain

    pipeline = Pipeline(settings, instance, defs)
    pipeline.import_csv(ORCL_DAILY, "ORCL")
    pipeline.run_backtest("sma_crossover", "ORCL", end=date(1999, 12, 31))
    runs = instance.get_runs()
    assert len(runs) == 2
    materializations = 0
    for run in runs:
        assert_clean("a run and its config", serialize_value(run))
        assert_clean("a run's job snapshot", serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
        plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        assert_clean("a run's execution plan", serialize_value(plan))
        events = instance.all_logs(run.run_id)
        assert_clean("a run's event log", serialize_value(events))
        for event in events:
            if event.asset_materialization:
                materializations += 1
                assert_clean("materialization metadata", serialize_value(event.asset_materialization.metadata))
    assert materializations >= 5  # csv_bars and the four backtest assets

    # Everything written to disk: instance storage, compute logs, reports, catalog, SQLite warehouse.
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert_clean(str(path.relative_to(tmp_path)), path.read_bytes())
    with Warehouse.open(settings.resolved_warehouse_url).transaction() as connection:
        rows = connection.execute(text("SELECT * FROM backtest_runs")).all()
    assert rows and all(MARK not in str(row) for row in rows)
    if bucket:
        objects = ObjectStore(f"s3://{bucket['bucket']}", settings.s3_options())
        keys = objects.list()
        assert any(k.startswith("catalog/manifests/") for k in keys) and any(k.endswith("/metrics.json") for k in keys)
        for key in keys:
            assert_clean(f"s3 object {key}", objects.get(key))


def test_a_failing_warehouse_logs_no_password(secret_env, instance, postgres_url, monkeypatch):
    """The error of a database that cannot be opened names the database, not the URL's password."""
    missing = make_url(secret_url(postgres_url)).set(database="ntrader_no_such_db")
    monkeypatch.setenv(WAREHOUSE_URL_VAR, missing.render_as_string(hide_password=False))
    settings = get_settings()
    pipeline = Pipeline(settings, instance, build_definitions(settings))
    with pytest.raises(Exception, match="ntrader_no_such_db"):
        pipeline.import_csv(ORCL_DAILY, "ORCL")
    (run,) = instance.get_runs()
    assert_clean("a failed run's event log", serialize_value(instance.all_logs(run.run_id)))


def test_the_cli_reads_a_password_url_from_dotenv_and_stores_only_its_name(postgres_url, tmp_path):
    """`ntrader` run where `.env` holds the warehouse URL, as docs/settings.md allows."""
    home = tmp_path / "home"
    (tmp_path / ".env").write_text(
        f"NTRADER_WAREHOUSE_URL={secret_url(postgres_url)}\nNTRADER_HOME={home}\n"
        f"NTRADER_STRATEGY_CONFIGS_DIR={REPO_ROOT / 'strategy_configs'}\nDAGSTER_HOME={home / 'dagster'}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ntrader_pipeline.cli",
            "data",
            "import-csv",
            "--file",
            str(ORCL_DAILY),
            "--symbol",
            "ORCL",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert Warehouse.open(postgres_url).bar_inventory("ORCL")[0]["bars"] == 5036  # the URL's database
    for path in home.rglob("*"):
        if path.is_file():
            assert_clean(str(path.relative_to(home)), path.read_bytes())


# --- the UI of the compose deployment -----------------------------------------------------------


def interpolate(value: str, variables: dict[str, str]) -> str:
    """docker compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        assert op != ":?", f"compose needs {name}: {arg}"
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def compose_dagster_environment(dotenv: dict[str, str]) -> dict[str, str]:
    """The environment docker compose gives the webserver and the daemon: .env, then `environment`."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["dagster-webserver"]
    assert service["env_file"] == ".env"
    return {**dotenv, **{k: interpolate(str(v), dotenv) for k, v in service["environment"].items()}}


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


LOCATIONS = "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }"
RESOURCES = """{ allTopLevelResourceDetailsOrError(repositorySelector: {repositoryLocationName: "%s",
  repositoryName: "__repository__"}) { __typename ... on ResourceDetailsList { results { name
  configuredValues { key value type } configFields { name defaultValueAsJson } } } } }"""


@pytest.mark.slow  # a real webserver
def test_the_ui_shows_the_compose_warehouse_password_by_name_only(postgres_url, tmp_path):
    url = make_url(postgres_url)
    dotenv = {**SECRETS, "POSTGRES_USER": url.username, "POSTGRES_DB": url.database}
    environment = compose_dagster_environment(dotenv)
    password = environment["DAGSTER_POSTGRES_PASSWORD"]
    assert MARK in password and password in environment[WAREHOUSE_URL_VAR]  # compose puts it in the URL
    # Of .env's secrets, the Dagster containers get only the ones they read: Postgres's, and the S3
    # keys their runs reach the bucket with (scale profile); the UI below must show none of them.
    assert {name for name in SECRETS if MARK in environment[name]} == {
        "DAGSTER_POSTGRES_PASSWORD",
        "NTRADER_S3_ACCESS_KEY_ID",
        "NTRADER_S3_SECRET_ACCESS_KEY",
    }
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    # The compose network's host names and container paths, as seen from this machine.
    environment.update(
        DAGSTER_HOME=str(home),
        DAGSTER_POSTGRES_HOST=url.host,
        DAGSTER_POSTGRES_PORT=str(url.port),
        NTRADER_HOME=str(tmp_path / "ntrader"),
        NTRADER_WAREHOUSE_URL=environment[WAREHOUSE_URL_VAR].replace("@postgres:5432/", f"@{url.host}:{url.port}/"),
    )
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    log = tmp_path / "webserver.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            cwd=REPO_ROOT,
            env={**base, **environment},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        location = wait_for_location(server, port, log)
        answer = json.dumps(graphql(port, RESOURCES % location))
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert_clean("the UI's resource view", answer)
    assert_clean("the webserver's log", log.read_bytes())
    resources = {r["name"]: r for r in json.loads(answer)["data"]["allTopLevelResourceDetailsOrError"]["results"]}
    shown = {v["key"]: v for v in resources["stores"]["configuredValues"]}
    assert shown["warehouse_url"] == {"key": "warehouse_url", "value": WAREHOUSE_URL_VAR, "type": "ENV_VAR"}


def wait_for_location(server: subprocess.Popen, port: int, log: Path, timeout: float = 240) -> str:
    """The code location's name once the webserver has loaded it (a generous bound, not a speed test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            entries = graphql(port, LOCATIONS)["data"]["workspaceOrError"]["locationEntries"]
        except OSError:
            entries = []
        loaded = [
            e["name"] for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
        ]
        if loaded:
            return loaded[0]
        failed = [e for e in entries if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
        assert not failed, log.read_text()
        time.sleep(1)
    raise AssertionError(f"the webserver did not load the code location in {timeout} s:\n{log.read_text()}")
