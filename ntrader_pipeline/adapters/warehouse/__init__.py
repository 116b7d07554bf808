"""The SQL warehouse (Postgres in deployments, SQLite embedded): bars, runs, metrics and trades.

Every write happens inside a transaction the caller can see, so ingestion can tie the table write
to the catalog swap, and a failed write raises instead of being logged and forgotten.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, delete, event, func, insert, select

from ntrader_pipeline.adapters.warehouse.tables import (
    backtest_metrics,
    backtest_runs,
    equity_curve,
    market_data,
    metadata,
    trades,
)
from ntrader_pipeline.core.bars import PRICE_COLUMNS, BarSeries

MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = ["Warehouse", "metadata", "market_data", "backtest_runs", "backtest_metrics", "trades", "equity_curve"]


def _utc(ns: np.ndarray) -> list[datetime]:
    return list(pd.to_datetime(ns, utc=True).to_pydatetime())


def decimals(values: np.ndarray, precision: int) -> list[Decimal]:
    """Floats that carry ``precision`` decimals, as the exact Decimals they stand for."""
    return [Decimal(text) for text in np.char.mod(f"%.{precision}f", values)]


class Warehouse:
    @classmethod
    @lru_cache(maxsize=16)
    def open(cls, url: str) -> Warehouse:
        """One migrated warehouse per URL per process (migrating costs a round of queries)."""
        warehouse = cls(url)
        warehouse.migrate()
        return warehouse

    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self) -> None:
        """Bring the schema to the newest alembic revision (idempotent)."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    def dispose(self) -> None:
        self.engine.dispose()

    # --- market data -------------------------------------------------------------------------

    def upsert_bars(self, connection: Connection, series: BarSeries, bar_type: str) -> int:
        """Insert or replace ``series``' bars (key: symbol, bar type, timestamp)."""
        frame = series.frame
        now = datetime.now(UTC)
        columns = {c: decimals(frame[c].to_numpy(), series.price_precision) for c in PRICE_COLUMNS}
        volumes = decimals(frame["volume"].to_numpy(), 0)
        rows = [
            {
                "symbol": series.symbol,
                "bar_type": bar_type,
                "timestamp": ts,
                "open": columns["open"][i],
                "high": columns["high"][i],
                "low": columns["low"][i],
                "close": columns["close"][i],
                "volume": volumes[i],
                "data_source": series.source,
                "ingested_at": now,
            }
            for i, ts in enumerate(_utc(frame["ts_event"].to_numpy()))
        ]
        if not rows:
            return 0
        statement = self._insert(market_data)
        key = ["symbol", "bar_type", "timestamp"]
        statement = statement.on_conflict_do_update(
            index_elements=key,
            set_={c: statement.excluded[c] for c in rows[0] if c not in key},
        )
        connection.execute(statement, rows)
        return len(rows)

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
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def count_bars(self, symbol: str, bar_type: str) -> int:
        query = select(func.count()).where(
            market_data.c.symbol == symbol, market_data.c.bar_type == bar_type
        )
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # --- backtest results --------------------------------------------------------------------

    def save_run(
        self,
        run: Mapping[str, Any],
        metrics: Mapping[str, Any],
        trade_rows: Sequence[Mapping[str, Any]],
        curve: pd.DataFrame,
    ) -> None:
        """Store one backtest's run record, metrics, trades and equity curve in one transaction.

        ``curve`` has one row per bar: timestamp (UTC), equity and drawdown.
        """
        metric_rows = [
            {
                "run_id": run["run_id"],
                "name": name,
                "value": float(value) if isinstance(value, int | float | Decimal) else None,
                "text": None if value is None or isinstance(value, int | float | Decimal) else str(value),
            }
            for name, value in metrics.items()
            if not isinstance(value, bool)
        ]
        curve_rows = [
            {"run_id": run["run_id"], "timestamp": ts, "equity": equity, "drawdown": dd}
            for ts, equity, dd in zip(
                curve["timestamp"].dt.to_pydatetime(),
                curve["equity"].to_numpy(dtype=np.float64).tolist(),
                curve["drawdown"].to_numpy(dtype=np.float64).tolist(),
                strict=True,
            )
        ]
        with self.transaction() as connection:
            connection.execute(delete(backtest_runs).where(backtest_runs.c.run_id == run["run_id"]))
            connection.execute(insert(backtest_runs), [dict(run)])
            if metric_rows:
                connection.execute(insert(backtest_metrics), metric_rows)
            if trade_rows:
                connection.execute(insert(trades), [{"run_id": run["run_id"], **t} for t in trade_rows])
            if curve_rows:
                connection.execute(insert(equity_curve), curve_rows)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(backtest_runs).where(backtest_runs.c.run_id == run_id)
            ).first()
        return dict(row._mapping) if row else None

    def get_metrics(self, run_id: str) -> dict[str, Any]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(backtest_metrics).where(backtest_metrics.c.run_id == run_id)
            ).all()
        return {r.name: (r.text if r.text is not None else r.value) for r in rows}

    def get_trades(self, run_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(trades).where(trades.c.run_id == run_id).order_by(trades.c.entry_time)
            ).all()
        return [dict(r._mapping) for r in rows]

    def list_runs(self, strategy: str | None = None, symbol: str | None = None) -> list[dict[str, Any]]:
        query = select(backtest_runs).order_by(backtest_runs.c.created_at.desc())
        if strategy:
            query = query.where(backtest_runs.c.strategy == strategy)
        if symbol:
            query = query.where(backtest_runs.c.symbol == symbol.upper())
        with self.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(query)]

    def get_equity_curve(self, run_id: str) -> pd.DataFrame:
        """timestamp (UTC), equity and drawdown of a stored run, one row per bar in time order."""
        query = (
            select(equity_curve.c.timestamp, equity_curve.c.equity, equity_curve.c.drawdown)
            .where(equity_curve.c.run_id == run_id)
            .order_by(equity_curve.c.timestamp)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return pd.DataFrame(
            {
                "timestamp": pd.to_datetime([r.timestamp for r in rows], utc=True).as_unit("ns"),
                "equity": np.array([r.equity for r in rows], dtype=np.float64),
                "drawdown": np.array([r.drawdown for r in rows], dtype=np.float64),
            }
        )

    def list_results(self, strategy: str | None = None, symbol: str | None = None) -> list[dict[str, Any]]:
        """Stored runs (newest first), each with its metrics under ``"metrics"``."""
        runs = self.list_runs(strategy, symbol)
        by_run: dict[str, dict[str, Any]] = {run["run_id"]: {} for run in runs}
        if by_run:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    select(backtest_metrics).where(backtest_metrics.c.run_id.in_(list(by_run)))
                ).all()
            for r in rows:
                by_run[r.run_id][r.name] = r.text if r.text is not None else r.value
        return [{**run, "metrics": by_run[run["run_id"]]} for run in runs]

    def latest_results(self) -> list[dict[str, Any]]:
        """The newest stored run of every strategy × symbol, with its metrics."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for run in self.list_results():  # newest first
            latest.setdefault((run["strategy"], run["symbol"]), run)
        return [latest[key] for key in sorted(latest)]

    def _insert(self, table):
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        return dialect_insert(table)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
