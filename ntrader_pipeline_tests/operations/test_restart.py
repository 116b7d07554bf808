"""A restart in the middle of an import: the real ``dagster-webserver`` and ``dagster-daemon`` are
killed with everything they started (SIGKILL to both process groups, as a container restart does)
while an inbox import is mid-write, then started again on the same instance.

Nobody is left to end the killed run. After the restart the daemon's run monitoring must find its
process gone and fail it, ``run_retries`` must run the import again, and the file waiting behind
it must be imported too: no run slot held for good, nothing left in the inbox. Before the restart,
the inbox sensor must say why the second file waits. Both instance files are driven: the
deployment's (``dagster.yaml``, Postgres) and the embedded one (``pipeline.INSTANCE_YAML``, SQLite).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.storage.tags import PARENT_RUN_ID_TAG

from ntrader_pipeline.adapters.run_processes import process_started
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.inbox import ARCHIVE
from ntrader_pipeline.definitions import INGEST_JOB
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.pipeline import INSTANCE_YAML
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.support import ORCL_DAILY, REPO_ROOT

from .soak import patched_environ
from .stack import DagsterStack, StackError, instance_environment, wait_for

TIMEOUT = 900  # a hang-catcher: each wait ends as soon as what it waits for has happened


def write_orcl(path: Path, first: str, last: str) -> int:
    """ORCL's bundled daily bars from ``first`` to ``last`` (inclusive) as a Yahoo file; its rows."""
    frame = pd.read_csv(ORCL_DAILY)
    part = frame[(frame["Date"] >= first) & (frame["Date"] <= last)]
    part.to_csv(path, index=False)
    return len(part)


@pytest.fixture(params=["deployed", "embedded"])
def stack_settings(request, tmp_path):
    """The environment of one instance file: (env, settings, instance file text)."""
    strategies = tmp_path / "strategy_configs"
    strategies.mkdir()
    shutil.copy(REPO_ROOT / "strategy_configs" / "sma_crossover.yaml", strategies)
    if request.param == "deployed":
        database = request.getfixturevalue("postgres_url")
        env = {**instance_environment(tmp_path, database), "NTRADER_WAREHOUSE_URL": database}
        instance_file = (REPO_ROOT / "dagster.yaml").read_text()
    else:  # Dagster's storage and the warehouse in SQLite files under the home
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
        env = {**inherited, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
        instance_file = INSTANCE_YAML
    env.update(
        {
            "NTRADER_HOME": str(tmp_path / "home"),
            "NTRADER_STRATEGY_CONFIGS_DIR": str(strategies),
            "NTRADER_INBOX_DIR": str(tmp_path / "inbox"),
            "NTRADER_INBOX_SENSOR_INTERVAL": "2",
            "NTRADER_AUTOMATION_SENSOR_INTERVAL": "5",
            "DAGSTER_GRPC_TIMEOUT_SECONDS": "180",
        }
    )
    home = Path(env["DAGSTER_HOME"])
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_file)
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    workspace["load_from"][0]["python_module"]["working_directory"] = str(tmp_path)
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    settings = Settings(
        home=tmp_path / "home",
        strategy_configs_dir=strategies,
        inbox_dir=tmp_path / "inbox",
        warehouse_url=env.get("NTRADER_WAREHOUSE_URL"),
    )
    return env, settings


def inbox_state(instance: DagsterInstance, inbox: Path) -> str:
    """The inbox's files and every import run with its status and tags: what a hang leaves to read."""
    files = sorted(str(p.relative_to(inbox)) for p in inbox.rglob("*") if p.is_file())
    runs = [
        f"{r.dagster_run.run_id} {r.dagster_run.status.value} {dict(r.dagster_run.tags)}"
        for r in instance.get_run_records(RunsFilter(job_name=INGEST_JOB))
    ]
    return "inbox files: " + ", ".join(files) + "\nimport runs:\n" + "\n".join(runs)


def failure_message(instance: DagsterInstance, run_id: str) -> str:
    events = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    return events[-1].message if events else ""


def test_a_run_killed_with_the_daemon_is_failed_retried_and_frees_its_slot(tmp_path, stack_settings):
    env, settings = stack_settings
    inbox, faults = settings.resolved_inbox_dir, tmp_path / "faults"
    inbox.mkdir(parents=True)
    history = write_orcl(tmp_path / "ORCL_history.csv", "2010-01-01", "2013-12-31")
    recent = write_orcl(tmp_path / "ORCL_2014.csv", "2014-01-01", "2014-12-31")
    paused_env = {**env, "NTRADER_FAULT_PAUSE_AT": "staged", "NTRADER_FAULT_DIR": str(faults)}
    with patched_environ({k: v for k, v in env.items() if k.startswith("DAGSTER_")}):
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
    try:
        with DagsterStack(tmp_path / "workspace.yaml", paused_env, tmp_path / "logs-before", cwd=tmp_path) as stack:
            shutil.move(tmp_path / "ORCL_history.csv", inbox / "ORCL_history.csv")
            wait_for("the import to stop mid-write", lambda: list(faults.glob("staged.*")), TIMEOUT)
            [killed] = instance.get_run_records(RunsFilter(job_name=INGEST_JOB))
            assert killed.dagster_run.status == DagsterRunStatus.STARTED
            shutil.move(tmp_path / "ORCL_2014.csv", inbox / "ORCL_2014.csv")
            reason = f"ORCL_2014.csv waits: import run {killed.dagster_run.run_id} of ORCL is still STARTED"

            def said_why() -> bool:
                return any(reason in (t.get("skipReason") or "") for t in stack.sensor_ticks("inbox_csv_sensor", 10))

            wait_for("the inbox sensor to say why ORCL_2014.csv waits", said_why, TIMEOUT)
            stack.kill()
        pid = int(next(faults.glob("staged.*")).suffix.lstrip("."))
        wait_for("the run's process to go with its daemon", lambda: process_started(pid) is None, 60)
        assert instance.get_run_by_id(killed.dagster_run.run_id).status == DagsterRunStatus.STARTED

        with DagsterStack(tmp_path / "workspace.yaml", env, tmp_path / "logs-after", cwd=tmp_path) as stack:
            restarted = time.monotonic()
            run_id = killed.dagster_run.run_id

            def failed() -> bool:
                stack.check_alive()
                return instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE

            wait_for("run monitoring to fail the killed run", failed, TIMEOUT)
            detected = time.monotonic() - restarted
            assert re.search(rf"its process \(pid {pid} on [^)]+\) is gone", failure_message(instance, run_id))

            def filed() -> bool:
                stack.check_alive()
                return all((inbox / ARCHIVE / name).exists() for name in ("ORCL_history.csv", "ORCL_2014.csv"))

            try:
                wait_for("both files to be imported and archived", filed, TIMEOUT)
            except StackError as error:  # say where each file and each import run ended up
                raise StackError(f"{error}\n{inbox_state(instance, inbox)}") from error
            print(f"the killed run was failed {detected:.0f} s after the restarted stack loaded its code")
        [retry] = instance.get_run_records(RunsFilter(tags={PARENT_RUN_ID_TAG: run_id}))
        assert retry.dagster_run.status == DagsterRunStatus.SUCCESS  # run_retries ran the killed import again
        imports = instance.get_run_records(RunsFilter(job_name=INGEST_JOB))
        assert sorted(r.dagster_run.status.value for r in imports) == ["FAILURE", "SUCCESS", "SUCCESS"]
        assert not list(inbox.glob("*.csv"))
        series = PipelineStores.from_settings(settings).catalog().read("ORCL", Timeframe.DAILY)
        assert len(series) == history + recent
    finally:
        instance.dispose()
