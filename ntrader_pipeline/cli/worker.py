"""``ntrader worker``: a Celery worker that executes the daemon's runs (the "scale" deployment).

A worker shares everything with the other machines: the Dagster instance (Postgres), the warehouse
(Postgres), the broker, the catalog and the reports. Started without one of them it would write a
private SQLite warehouse or catalog under a relative ``.ntrader`` that no one else sees, so it
refuses to start and names each missing setting instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

import click

BROKER_URL_VAR = "NTRADER_CELERY_BROKER_URL"  # the same names as adapters.celery_runs (not imported here)
BACKEND_URL_VAR = "NTRADER_CELERY_BACKEND_URL"
SHARED_LOCATIONS = ("NTRADER_CATALOG_PATH", "NTRADER_REPORTS_DIR")


def missing_worker_settings(environ: Mapping[str, str]) -> list[str]:
    """What keeps this environment from running shared runs, one reason each (empty: ready)."""
    problems = []
    warehouse = environ.get("NTRADER_WAREHOUSE_URL", "")
    if not warehouse:
        problems.append("NTRADER_WAREHOUSE_URL is not set (the shared Postgres warehouse)")
    elif warehouse.startswith("sqlite"):
        problems.append(
            "NTRADER_WAREHOUSE_URL is SQLite, which no other worker sees; use the shared Postgres warehouse"
        )
    problems += _instance_problems(environ.get("DAGSTER_HOME", ""), environ)
    for name in (BROKER_URL_VAR, BACKEND_URL_VAR):
        if not environ.get(name):
            problems.append(f"{name} is not set (e.g. redis://host:6379/0)")
    for name in SHARED_LOCATIONS:
        value = environ.get(name, "")
        if not value:
            problems.append(f"{name} is not set (a shared folder or an object-storage URL)")
        elif "://" not in value and not Path(value).is_absolute():
            problems.append(f"{name}={value} is a relative path, local to this worker's working directory")
    strategies = Path(environ.get("NTRADER_STRATEGY_CONFIGS_DIR", "strategy_configs"))
    if not any(strategies.glob("*.yaml")):  # the code location's strategies, deployed with the code
        problems.append(f"NTRADER_STRATEGY_CONFIGS_DIR: no strategy files in {strategies.resolve()}")
    return problems


def _instance_problems(home: str, environ: Mapping[str, str]) -> list[str]:
    import yaml

    if not home:
        return ["DAGSTER_HOME is not set (a folder holding the Postgres-backed dagster.yaml)"]
    path = Path(home) / "dagster.yaml"
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        return [f"DAGSTER_HOME: cannot read {path}: {exc}"]
    problems = []
    storages = [config.get("storage") or {}] + [config.get(k) or {} for k in ("run_storage", "event_log_storage")]
    if not any("postgres" in s or str(s.get("module", "")).startswith("dagster_postgres") for s in storages):
        problems.append(f"DAGSTER_HOME: {path} does not keep runs in Postgres (see deploy/dagster.scale.yaml)")
    if (config.get("run_launcher") or {}).get("class") != "WorkerCheckedCeleryRunLauncher":
        problems.append(f"DAGSTER_HOME: {path} does not send runs to workers (see deploy/dagster.scale.yaml)")
    problems += [
        f"{name} is not set (read by {path})"
        for name in _env_references(config)
        if name not in environ and name not in (BROKER_URL_VAR, BACKEND_URL_VAR)
    ]  # those: below
    return problems


def _env_references(config) -> list[str]:
    """The variables an instance file reads (``{env: NAME}`` values), in order, once each."""
    found, stack = [], [config]
    while stack:
        value = stack.pop(0)
        if isinstance(value, dict):
            if set(value) == {"env"} and isinstance(value["env"], str):
                found.append(value["env"])
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return list(dict.fromkeys(found))


@click.command()
@click.option("--name", default=None, help="Worker name, unique in the pool (default: ntrader-<pid>@<host>).")
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Runs this worker executes at once (one process each; a backtest uses one core).",
)
@click.option("--loglevel", default="INFO", show_default=True)
def worker(name: str | None, concurrency: int, loglevel: str) -> None:
    """Execute the daemon's queued runs on this machine (deployment mode "scale").

    Needs NTRADER_WAREHOUSE_URL (Postgres), DAGSTER_HOME with the Postgres instance of
    deploy/dagster.scale.yaml and the variables it reads, NTRADER_CELERY_BROKER_URL,
    NTRADER_CELERY_BACKEND_URL, shared NTRADER_CATALOG_PATH and NTRADER_REPORTS_DIR, and the
    strategy files; refuses to start, naming what is missing, otherwise.
    """
    if problems := missing_worker_settings(os.environ):
        raise click.ClickException("this worker would not share its results; missing:\n  " + "\n  ".join(problems))
    from ntrader_pipeline.adapters.celery_runs import QUEUE, celery_app  # imports Dagster and Celery

    app = celery_app(os.environ[BROKER_URL_VAR], os.environ[BACKEND_URL_VAR])
    app.worker_main(
        [
            "worker",
            f"--hostname={name or f'ntrader-{os.getpid()}@{socket.gethostname()}'}",
            f"--concurrency={concurrency}",
            f"--loglevel={loglevel}",
            f"--queues={QUEUE}",
            # Peers need not know each other (no gossip, no start-up sync): less broker traffic per worker.
            "--without-gossip",
            "--without-mingle",
        ]
    )
