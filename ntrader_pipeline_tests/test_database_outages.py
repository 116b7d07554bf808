"""Database outages mid-run: the write is retried whole and succeeds, and failures read cleanly.

The server really terminates the import's and the backtest's connections (``pg_terminate_backend``)
while they are writing: a watcher holds a table lock the write needs, waits until the write is
blocked on it (its rows already sent, nothing committed), terminates that backend and lets go.
An unreachable server must fail with one line naming the database and the operation, never the
password and never SQL.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance
from sqlalchemy import create_engine, text

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.pipeline import Pipeline
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.conftest import ORCL_DAILY, STRATEGY_CONFIGS
from ntrader_pipeline_tests.test_crash_recovery import expected_hash, repriced, stored_content


class TerminateWhenBlocked(threading.Thread):
    """Locks ``table`` until a backend of the database waits on it, then terminates that backend."""

    def __init__(self, url: str, table: str):
        super().__init__(daemon=True)
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.holder = create_engine(url).connect()
        self.holder.begin()
        self.holder.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))  # writers wait, readers do not
        self.terminated: list[int] = []

    def run(self) -> None:
        try:
            with self.engine.connect() as watcher:
                deadline = time.monotonic() + 300
                while not self.terminated and time.monotonic() < deadline:
                    blocked = watcher.execute(text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )).scalars().all()
                    for pid in blocked:
                        watcher.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                        self.terminated.append(pid)
                    time.sleep(0.02)
        finally:
            self.holder.rollback()
            self.holder.close()
            self.engine.dispose()


def test_import_and_backtest_retry_after_their_connections_are_terminated_mid_write(tmp_path, postgres_url, caplog):
    caplog.set_level(logging.WARNING, logger="ntrader_pipeline.warehouse")
    settings = Settings(home=tmp_path / "home", strategy_configs_dir=STRATEGY_CONFIGS, warehouse_url=postgres_url)
    pipeline = Pipeline.open(settings, DagsterInstance.ephemeral())
    pipeline.import_csv(ORCL_DAILY, "ORCL")
    new_file = repriced(tmp_path / "ORCL_repriced.csv")

    watcher = TerminateWhenBlocked(postgres_url, "store_publishes")  # the import's last statement
    watcher.start()
    stored = pipeline.import_csv(new_file, "ORCL")
    watcher.join(timeout=60)

    assert len(watcher.terminated) == 1 and stored["bars_written"] == 5036
    assert "terminating connection due to administrator command; retrying" in caplog.text
    store = MarketDataStore(BarCatalog(settings.resolved_catalog_path, "XNAS"), Warehouse.open(postgres_url))
    new = expected_hash(new_file)
    assert stored_content(store) == (new, new)
    assert not any((settings.resolved_catalog_path / ".staging").rglob("*"))

    watcher = TerminateWhenBlocked(postgres_url, "backtest_runs")
    watcher.start()
    metrics = pipeline.run_backtest("sma_crossover", "ORCL")
    watcher.join(timeout=60)

    assert len(watcher.terminated) == 1
    [run] = store.warehouse.list_runs(symbol="ORCL")
    assert run["run_id"] == metrics["run_id"] and run["data_hash"] == new
    assert store.warehouse.get_metrics(run["run_id"])["trade_count"] == metrics["trade_count"] > 0
    assert len(store.warehouse.get_trades(run["run_id"])) == metrics["trade_count"]  # written once, whole


@pytest.mark.parametrize("command", [["data", "list"], ["data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL"]])
def test_an_unreachable_database_fails_in_one_line_without_password_or_sql(ntrader_home, monkeypatch, command):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    monkeypatch.setenv("NTRADER_WAREHOUSE_URL", "postgresql+psycopg://ntrader:s3cret-pw@127.0.0.1:9/ntrader")
    monkeypatch.setenv("NTRADER_DB_RETRIES", "2")
    monkeypatch.setenv("NTRADER_DB_RETRY_BACKOFF", "0.01")

    result = CliRunner().invoke(cli, command)

    assert result.exit_code == 1
    line = result.stderr.splitlines()[-1]  # after any "retrying" lines the log may print
    assert line.startswith("error: migrating the warehouse schema failed on postgresql database ntrader on 127.0.0.1:9 "
                           "after 3 attempts: connection failed")
    assert "s3cret" not in result.output + result.stderr
    assert "SQL" not in line and "SELECT" not in line.upper()
