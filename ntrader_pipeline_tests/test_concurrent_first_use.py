"""Commands started at once on a brand-new home: every one succeeds, and so does the next.

They race to create the Dagster home and to migrate the warehouse. Eight real `ntrader` processes
run once, on the embedded setup (each pays ~5-7 s of imports); the warehouse's migration race is
also run by threads, cheaply, on SQLite and on Postgres.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline_tests.support import NVDA_DAILY, STRATEGY_CONFIGS

SYMBOLS = [f"SYM{n}" for n in range(7)]
HANG = 600  # seconds: only a hang takes this long, even with eight processes on two cores


def ntrader_env(home: Path, warehouse_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}
    env.update(NTRADER_HOME=str(home), NTRADER_STRATEGY_CONFIGS_DIR=str(STRATEGY_CONFIGS))
    if warehouse_url:
        env["NTRADER_WAREHOUSE_URL"] = warehouse_url
    return env


def start(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ntrader_pipeline.cli", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow  # eight fresh processes
def test_eight_commands_at_once_on_a_new_home_all_succeed(tmp_path: Path):
    bars = tmp_path / "bars.csv"
    bars.write_text("\n".join(NVDA_DAILY.read_text().splitlines()[:31]) + "\n")
    env = ntrader_env(tmp_path / "home", None)

    commands = [["data", "import-csv", "--file", str(bars), "--symbol", s] for s in SYMBOLS] + [["data", "list"]]
    processes = [start(args, env, tmp_path) for args in commands]
    outcomes = [(args, p.wait(timeout=HANG), p.stdout.read(), p.stderr.read()) for args, p in zip(commands, processes)]

    failed = [(args[-1], code, err.strip().splitlines()[-3:]) for args, code, _, err in outcomes if code != 0]
    assert failed == []
    later = subprocess.run(
        [sys.executable, "-m", "ntrader_pipeline.cli", "data", "list", "--format", "json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG,
    )
    assert later.returncode == 0, later.stderr
    assert sorted((row["symbol"], row["bars"]) for row in json.loads(later.stdout)) == [(s, 30) for s in SYMBOLS]


def _first_use(url: str, ready, failures) -> None:
    """One process's first use of the warehouse (its own engine), started with the others."""
    warehouse = Warehouse(url)
    try:
        ready.wait(timeout=HANG)
        warehouse.migrate()
    except BaseException as error:  # noqa: BLE001 - reported by the test
        failures.put(f"{type(error).__name__}: {error}".splitlines()[0])
    finally:
        warehouse.dispose()


def test_concurrent_first_migrations_leave_one_schema_version(warehouse_url: str):
    """Eight processes migrate one new warehouse at once (forked: no import cost)."""
    fork = multiprocessing.get_context("fork")
    ready, failures = fork.Barrier(8), fork.Queue()
    workers = [fork.Process(target=_first_use, args=(warehouse_url, ready, failures)) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=HANG)

    assert [worker.exitcode for worker in workers] == [0] * 8
    assert [failures.get() for _ in range(failures.qsize())] == []
    later = Warehouse(warehouse_url)
    try:
        later.migrate()
        with later.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM ntrader_alembic_version")).scalar() == 1
    finally:
        later.dispose()
