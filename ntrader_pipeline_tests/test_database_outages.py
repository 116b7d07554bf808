"""Database outages mid-run: the write is retried whole and succeeds, and failures read cleanly.

The server really terminates the import's and the backtest's connections (``pg_terminate_backend``)
while they are writing: a watcher holds a table lock the write needs, waits until the write is
blocked on it (its rows already sent, nothing committed), terminates that backend and lets go.
A restart is played at the wire (the shared server cannot be restarted): a proxy in front of the
real server drops every connection mid-write and, for a while, answers new ones as a starting
Postgres does (SQLSTATE 57P03). An unreachable server must fail with one line naming the
database and the operation, never the password and never SQL.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
import time

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.pipeline import Pipeline
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS
from ntrader_pipeline_tests.test_crash_recovery import expected_hash, repriced, stored_content

pytestmark = pytest.mark.slow  # connections terminated and a server restarted mid-write


class TerminateWhenBlocked(threading.Thread):
    """Locks ``table`` until a backend of the database waits on it, then terminates that backend
    (or, with ``action``, does that instead)."""

    def __init__(self, url: str, table: str, action=None, mode: str = "EXCLUSIVE"):
        super().__init__(daemon=True)
        self.action = action
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.holder = create_engine(url).connect()
        self.holder.begin()
        # EXCLUSIVE: writers wait, readers do not. ACCESS EXCLUSIVE: readers wait too.
        self.holder.execute(text(f"LOCK TABLE {table} IN {mode} MODE"))
        self.terminated: list[int] = []

    def run(self) -> None:
        try:
            with self.engine.connect() as watcher:
                deadline = time.monotonic() + 300
                while not self.terminated and time.monotonic() < deadline:
                    blocked = (
                        watcher.execute(
                            text(
                                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                            )
                        )
                        .scalars()
                        .all()
                    )
                    for pid in blocked:
                        if self.action is None:
                            watcher.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                        else:
                            self.action()
                        self.terminated.append(pid)
                    time.sleep(0.02)
        finally:
            self.holder.rollback()
            self.holder.close()
            self.engine.dispose()


@pytest.fixture
def orcl_stored(tmp_path, postgres_url, caplog):
    """ORCL imported into a Postgres warehouse, and a repriced copy of its file to import over it."""
    caplog.set_level(logging.WARNING, logger="ntrader_pipeline.warehouse")
    settings = Settings(home=tmp_path / "home", strategy_configs_dir=STRATEGY_CONFIGS, warehouse_url=postgres_url)
    pipeline = Pipeline.open(settings, DagsterInstance.ephemeral())
    pipeline.import_csv(ORCL_DAILY, "ORCL")
    return settings, pipeline, repriced(tmp_path / "ORCL_repriced.csv")


def test_import_and_backtest_retry_after_their_connections_are_terminated_mid_write(orcl_stored, postgres_url, caplog):
    settings, pipeline, new_file = orcl_stored

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
    assert run.run_id == metrics["run_id"] and run.data_hash == new
    assert store.warehouse.get_metrics(run.run_id)["trade_count"] == metrics["trade_count"] > 0
    assert len(store.warehouse.get_trades(run.run_id)) == metrics["trade_count"]  # written once, whole


def test_an_append_survives_a_terminated_connection_while_it_reads_the_stored_sources(
    orcl_stored, postgres_url, caplog
):
    """Before an append, the import reads which sources the series already holds: a retried read too."""
    settings, pipeline, new_file = orcl_stored

    watcher = TerminateWhenBlocked(postgres_url, "market_data", mode="ACCESS EXCLUSIVE")
    watcher.start()
    stored = pipeline.import_csv(new_file, "ORCL")
    watcher.join(timeout=60)

    assert len(watcher.terminated) == 1 and stored["bars_written"] == 5036
    assert "checking the sources of ORCL" in caplog.text and "retrying" in caplog.text
    store = MarketDataStore(BarCatalog(settings.resolved_catalog_path, "XNAS"), Warehouse.open(postgres_url))
    new = expected_hash(new_file)
    assert stored_content(store) == (new, new)


STARTING_UP = b"".join(  # ErrorResponse: FATAL 57P03, as a server in recovery answers a login
    [b"SFATAL\0", b"VFATAL\0", b"C57P03\0", b"Mthe database system is starting up\0", b"\0"]
)


class RestartingProxy(threading.Thread):
    """TCP proxy to the real server; ``restart()`` drops every connection and refuses logins for a while."""

    def __init__(self, upstream_port: int):
        super().__init__(daemon=True)
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down_until = 0.0
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.refused = 0

    def restart(self, down_for: float = 1.5) -> None:
        with self.lock:
            self.down_until = time.monotonic() + down_for
            for client, server in self.pairs:
                for end in (client, server):
                    end.close()
            self.pairs.clear()

    def run(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                threading.Thread(target=self._refuse, args=(client,), daemon=True).start()
                continue
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self.lock:
                self.pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _refuse(self, client: socket.socket) -> None:
        with client:
            length, code = struct.unpack("!ii", client.recv(8))
            if code == 80877103:  # SSLRequest: no SSL, then the real startup message
                client.sendall(b"N")
                (length,) = struct.unpack("!i", client.recv(4))
            client.recv(length)
            client.sendall(b"E" + struct.pack("!i", 4 + len(STARTING_UP)) + STARTING_UP)
            self.refused += 1

    @staticmethod
    def _pump(client: socket.socket, server: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, server)
        selector.register(server, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in selector.select():
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            client.close()
            server.close()

    def stop(self) -> None:
        self.listener.close()


def test_an_import_survives_a_database_restart_mid_write(tmp_path, postgres_url, caplog):
    caplog.set_level(logging.WARNING, logger="ntrader_pipeline.warehouse")
    real = make_url(postgres_url)
    proxy = RestartingProxy(real.port or 5432)
    proxy.start()
    through_proxy = real.set(port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(home=tmp_path / "home", strategy_configs_dir=STRATEGY_CONFIGS, warehouse_url=through_proxy)
    pipeline = Pipeline.open(settings, DagsterInstance.ephemeral())
    pipeline.import_csv(ORCL_DAILY, "ORCL")
    new_file = repriced(tmp_path / "ORCL_repriced.csv")

    restarting = TerminateWhenBlocked(postgres_url, "store_publishes", action=proxy.restart)
    restarting.start()
    try:
        stored = pipeline.import_csv(new_file, "ORCL")
    finally:
        restarting.join(timeout=60)
        proxy.stop()

    assert stored["bars_written"] == 5036 and proxy.refused >= 1
    assert "the database system is starting up; retrying" in caplog.text
    store = MarketDataStore(BarCatalog(settings.resolved_catalog_path, "XNAS"), Warehouse.open(postgres_url))
    new = expected_hash(new_file)
    assert stored_content(store) == (new, new)
    assert not any((settings.resolved_catalog_path / ".staging").rglob("*"))


@pytest.mark.parametrize(
    "command", [["data", "list"], ["data", "import-csv", "--file", str(ORCL_DAILY), "--symbol", "ORCL"]]
)
def test_an_unreachable_database_fails_in_one_line_without_password_or_sql(ntrader_home, monkeypatch, command):
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))
    monkeypatch.setenv("NTRADER_WAREHOUSE_URL", "postgresql+psycopg://ntrader:s3cret-pw@127.0.0.1:9/ntrader")
    monkeypatch.setenv("NTRADER_DB_RETRIES", "2")
    monkeypatch.setenv("NTRADER_DB_RETRY_BACKOFF", "0.01")

    result = CliRunner().invoke(cli, command)

    assert result.exit_code == 1
    line = result.stderr.splitlines()[-1]  # after any "retrying" lines the log may print
    assert line.startswith(
        "error: the warehouse database is unreachable: postgresql database ntrader on 127.0.0.1:9 (connection failed"
    )
    assert "s3cret" not in result.output + result.stderr
    assert "SQL" not in line and "SELECT" not in line.upper()
