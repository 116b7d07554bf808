"""The SQL warehouse (Postgres in deployments, SQLite embedded): bars, runs, metrics and trades.

Every write happens inside a transaction the caller can see, so ingestion can tie the table write
to the catalog swap, and a failed write raises instead of being logged and forgotten. The
warehouse also names the locks every process that shares it can take (``Warehouse.lock``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, delete, event, func, insert, select
from sqlalchemy import text as sql_text

from ntrader_pipeline.adapters.locks import file_lock
from ntrader_pipeline.adapters.warehouse.retry import DEFAULT_RETRIES, Retries, is_database_error, with_retries
from ntrader_pipeline.adapters.warehouse.tables import (
    SCHEMA_REVISION,
    VERSION_TABLE,
    backtest_metrics,
    backtest_runs,
    equity_curve,
    market_data,
    store_publishes,
    trades,
)
from ntrader_pipeline.core.metric_registry import Metrics
from ntrader_pipeline.core.records import RunRecord, StoredResult

if TYPE_CHECKING:
    import pandas as pd

    from ntrader_pipeline.core.bars import BarSeries

MIGRATIONS = Path(__file__).parent / "migrations"

T = TypeVar("T")


MIGRATION_LOCK_KEY = 0x6E74_7261_6465_72  # "ntrader": the advisory lock every migrating process takes


class Warehouse:
    @classmethod
    @lru_cache(maxsize=16)
    def open(cls, url: str, retries: Retries = DEFAULT_RETRIES) -> Warehouse:
        """One migrated warehouse per URL per process (migrating costs a round of queries)."""
        warehouse = cls(url, retries)
        warehouse.migrate()
        return warehouse

    def __init__(self, url: str, retries: Retries = DEFAULT_RETRIES):
        self.url = url
        self.retries = retries
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # pre-ping: a pooled connection a server restart or pg_terminate_backend killed is replaced
        # on checkout instead of failing the next query.
        self.engine: Engine = create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the newest alembic revision (idempotent, and safe when concurrent).

        Commands started at once on a new warehouse would each see no schema, each create it and
        each stamp the version table, leaving two rows ("more than one head") that fail every
        later command. So one process migrates at a time and the others then find it done: on
        Postgres under a transaction-level advisory lock, on SQLite under a file lock beside the
        database file.
        """
        if self.schema_is_current():
            return
        from alembic import command  # imported only to migrate: about 1 s that most opens skip
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))

        def upgrade(connection: Connection) -> None:
            if self.dialect == "postgresql":
                connection.execute(sql_text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

        with self._migration_lock():
            self.run("migrating the warehouse schema", upgrade)

    def schema_is_current(self) -> bool:
        """Whether the version table names exactly the newest revision (one query, no alembic)."""
        try:
            with self.engine.connect() as connection:
                versions = connection.execute(sql_text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        except Exception as exc:
            if not is_database_error(exc):
                raise
            return False  # no table yet, or no server: the locked migration below settles or reports it
        return versions == [SCHEMA_REVISION]

    def _migration_lock(self):
        database = self.engine.url.database if self.dialect == "sqlite" else None
        if not database or database == ":memory:":
            return nullcontext()  # Postgres locks in the transaction; an in-memory SQLite is private
        return file_lock(Path(f"{database}.migrate.lock"))

    @contextmanager
    def lock(self, name: str, wait: bool = True) -> Iterator[bool]:
        """An exclusive lock named ``name`` among every process that shares this warehouse.

        On Postgres a session advisory lock on a connection of its own: the server drops it when the
        holder's connection ends, so a killed worker on another machine never leaves it stale. A SQLite
        warehouse is one machine's, so a file lock beside the database file does the same there.
        With ``wait=False`` the block gets False instead of waiting when another process holds it.
        """
        if self.dialect != "postgresql":
            folder = Path(self.engine.url.database or ".").resolve().parent / ".ntrader-locks"
            with file_lock(folder / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock", wait) as held:
                yield held
            return
        key = lock_key(name)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if wait:
                connection.execute(sql_text("SELECT pg_advisory_lock(:key)"), {"key": key})
            elif not connection.execute(sql_text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
                yield False
                return
            try:
                yield True
            finally:
                connection.execute(sql_text("SELECT pg_advisory_unlock(:key)"), {"key": key})

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    def run(self, operation: str, work: Callable[[Connection], T]) -> T:
        """``work`` in one transaction, run again whole after a transient failure (see ``retry``)."""

        def attempt() -> T:
            with self.engine.connect() as connection:
                transaction = connection.begin()
                try:
                    result = work(connection)
                    transaction.commit()
                except BaseException:
                    # Closing rolls back whatever state the failure left: SQLite even keeps a
                    # transaction open after a failed COMMIT, which pooling would hand on.
                    connection.invalidate()
                    raise
                return result

        return self.retrying(operation, attempt)

    def read(self, operation: str, work: Callable[[Connection], T]) -> T:
        """``work`` (reads only) on a connection of its own, run again whole after a transient
        failure (a restarting server), like ``run``; any other failure is one clean ``WarehouseError``."""

        def attempt() -> T:
            with self.engine.connect() as connection:
                return work(connection)

        return self.retrying(operation, attempt)

    def retrying(self, operation: str, work: Callable[[], T]) -> T:
        """``work`` (one whole transaction or read), again after a transient failure (see ``retry``)."""
        return with_retries(self.url, operation, work, self.retries)

    def dispose(self) -> None:
        self.engine.dispose()

    # --- market data -------------------------------------------------------------------------

    def upsert_bars(self, connection: Connection, series: BarSeries, bar_type: str) -> int:
        """Insert or replace ``series``' bars (key: symbol, bar type, timestamp).

        Postgres gets the rows by COPY (straight into the table when none of them exists yet,
        else through a temporary table and ``INSERT ... ON CONFLICT``); SQLite by
        executemany, one batch of plain tuples at a time (no per-row dicts or SQLAlchemy binds).
        """
        from ntrader_pipeline.adapters.warehouse.bulk import copy_bars, insert_bars_sqlite

        if len(series) == 0:
            return 0
        if self.dialect == "postgresql":
            return copy_bars(connection, series, bar_type)
        return insert_bars_sqlite(connection, series, bar_type)

    def mark_publish(self, connection: Connection, publish_id: str, bar_type: str) -> None:
        """Record, inside the bars' transaction, which catalog publish this commit belongs to."""
        connection.execute(delete(store_publishes).where(store_publishes.c.bar_type == bar_type))
        connection.execute(
            insert(store_publishes),
            [{"publish_id": publish_id, "bar_type": bar_type, "published_at": datetime.now(UTC)}],
        )

    def publish_committed(self, publish_id: str, bar_type: str) -> bool:
        """Whether the transaction that marked ``publish_id`` committed.

        Asked by inserting the same key: on Postgres that waits for a transaction still holding
        it (its client was killed but the server has not noticed yet), so the answer is final.
        The probe is rolled back either way.
        """
        row = {"publish_id": publish_id, "bar_type": bar_type, "published_at": datetime.now(UTC)}

        def probe() -> bool:
            with self.engine.connect() as connection, connection.begin() as transaction:
                if self.dialect == "postgresql":
                    connection.exec_driver_sql("SET LOCAL lock_timeout = '120s'")
                claim = self._insert(store_publishes).values(row).on_conflict_do_nothing()
                inserted = connection.execute(claim.returning(store_publishes.c.publish_id)).first()
                transaction.rollback()
                return inserted is None  # the key was taken: by the committed transaction

        return self.retrying(f"checking the unfinished publish of {bar_type}", probe)

    def bar_inventory(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """One row per stored series: symbol, bar type, source, bar count, first and last time."""
        query = (
            select(
                market_data.c.symbol,
                market_data.c.bar_type,
                market_data.c.data_source.label("source"),
                func.count().label("bars"),
                func.min(market_data.c.timestamp).label("first"),
                func.max(market_data.c.timestamp).label("last"),
            )
            .group_by(market_data.c.symbol, market_data.c.bar_type, market_data.c.data_source)
            .order_by(market_data.c.symbol, market_data.c.bar_type)
        )
        if symbol:
            query = query.where(market_data.c.symbol == symbol.upper())
        rows = self.read("listing stored bars", lambda c: [dict(row._mapping) for row in c.execute(query)])
        for row in rows:
            row["bars"] = int(row["bars"])
            row["first"], row["last"] = _as_utc(row["first"]), _as_utc(row["last"])
        return rows

    def count_bars(self, symbol: str, bar_type: str) -> int:
        query = select(func.count()).where(market_data.c.symbol == symbol, market_data.c.bar_type == bar_type)
        return int(self.read(f"counting {bar_type} bars", lambda c: c.execute(query).scalar_one()))

    # --- backtest results --------------------------------------------------------------------

    def save_run(
        self,
        run: RunRecord,
        metrics: Mapping[str, Any],
        trade_rows: Sequence[Mapping[str, Any]],
        curve: pd.DataFrame,
    ) -> None:
        """Store one backtest's run record, metrics, trades and equity curve in one transaction.

        ``curve`` has one row per bar: timestamp (UTC), equity and drawdown.
        """
        from ntrader_pipeline.adapters.warehouse.bulk import insert_curve

        run_id = run.run_id
        metric_rows = [
            {
                "run_id": run_id,
                "name": name,
                "value": float(value) if isinstance(value, int | float | Decimal) else None,
                "text": None if value is None or isinstance(value, int | float | Decimal) else str(value),
            }
            for name, value in metrics.items()
            if not isinstance(value, bool)
        ]

        def write(connection: Connection) -> None:  # delete then insert: a retry writes nothing twice
            connection.execute(delete(backtest_runs).where(backtest_runs.c.run_id == run_id))
            connection.execute(insert(backtest_runs), [run.row()])
            if metric_rows:
                connection.execute(insert(backtest_metrics), metric_rows)
            if trade_rows:
                connection.execute(insert(trades), [{"run_id": run_id, **t} for t in trade_rows])
            if len(curve):
                insert_curve(connection, run_id, curve)

        self.run(f"saving backtest run {run_id}", write)

    def get_run(self, run_id: str) -> RunRecord | None:
        query = select(backtest_runs).where(backtest_runs.c.run_id == run_id)
        row = self.read(f"reading run {run_id}", lambda c: c.execute(query).first())
        return RunRecord.from_row(row._mapping) if row else None

    def get_metrics(self, run_id: str) -> Metrics:
        """A run's metrics in their types: stored as floats, counts come back as integers."""
        query = select(backtest_metrics).where(backtest_metrics.c.run_id == run_id)
        rows = self.read(f"reading the metrics of run {run_id}", lambda c: c.execute(query).all())
        return Metrics.of({r.name: (r.text if r.text is not None else r.value) for r in rows})

    def get_trades(self, run_id: str) -> list[dict[str, Any]]:
        query = select(trades).where(trades.c.run_id == run_id).order_by(trades.c.entry_time)
        rows = self.read(f"reading the trades of run {run_id}", lambda c: c.execute(query).all())
        return [dict(r._mapping) for r in rows]

    def list_runs(self, strategy: str | None = None, symbol: str | None = None) -> list[RunRecord]:
        query = select(backtest_runs).order_by(backtest_runs.c.created_at.desc())
        if strategy:
            query = query.where(backtest_runs.c.strategy == strategy)
        if symbol:
            query = query.where(backtest_runs.c.symbol == symbol.upper())
        return self.read("listing backtest runs", lambda c: [RunRecord.from_row(r._mapping) for r in c.execute(query)])

    def get_equity_curve(self, run_id: str) -> pd.DataFrame:
        """timestamp (UTC), equity and drawdown of a stored run, one row per bar in time order."""
        import numpy as np
        import pandas as pd

        query = (
            select(equity_curve.c.timestamp, equity_curve.c.equity, equity_curve.c.drawdown)
            .where(equity_curve.c.run_id == run_id)
            .order_by(equity_curve.c.timestamp)
        )
        rows = self.read(f"reading the equity curve of run {run_id}", lambda c: c.execute(query).all())
        return pd.DataFrame(
            {
                "timestamp": pd.to_datetime([r.timestamp for r in rows], utc=True).as_unit("ns"),
                "equity": np.array([r.equity for r in rows], dtype=np.float64),
                "drawdown": np.array([r.drawdown for r in rows], dtype=np.float64),
            }
        )

    def list_results(self, strategy: str | None = None, symbol: str | None = None) -> list[StoredResult]:
        """Stored runs (newest first), each with its metrics."""
        runs = self.list_runs(strategy, symbol)
        by_run: dict[str, dict[str, Any]] = {run.run_id: {} for run in runs}
        if by_run:
            query = select(backtest_metrics).where(backtest_metrics.c.run_id.in_(list(by_run)))
            rows = self.read("reading backtest metrics", lambda c: c.execute(query).all())
            for r in rows:
                by_run[r.run_id][r.name] = r.text if r.text is not None else r.value
        return [StoredResult(run, Metrics.of(by_run[run.run_id])) for run in runs]

    def latest_results(self) -> list[StoredResult]:
        """The newest stored run of every strategy × symbol, with its metrics."""
        latest: dict[tuple[str, str], StoredResult] = {}
        for result in self.list_results():  # newest first
            latest.setdefault((result.record.strategy, result.record.symbol), result)
        return [latest[key] for key in sorted(latest)]

    def _insert(self, table: Table) -> Any:
        """The dialect's own INSERT (it has ``on_conflict_do_nothing``)."""
        from sqlalchemy.dialects import postgresql, sqlite

        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (what Postgres advisory locks are named by)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def _as_utc(value: Any) -> datetime:
    """SQLite hands timestamps back naive (they were stored as UTC); Postgres as aware."""
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
