"""Warehouse tables (SQLAlchemy Core). Alembic migrations create them; this module only names them."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
)
from sqlalchemy.types import TypeDecorator


class ExactDecimal(TypeDecorator):
    """NUMERIC on Postgres; text on SQLite, which would otherwise round decimals through floats."""

    impl = Numeric(28, 10)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(28, 10))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value if isinstance(value, Decimal) else Decimal(str(value))
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        return None if value is None else Decimal(str(value)).normalize()


# Where the warehouse keeps its alembic revision (not ``alembic_version``: see migrations/env.py),
# and the newest revision: a warehouse already there opens without importing alembic.
VERSION_TABLE = "ntrader_alembic_version"
SCHEMA_REVISION = "0005"

metadata = MetaData()

market_data = Table(
    "market_data",
    metadata,
    Column("symbol", String(32), primary_key=True),
    Column("bar_type", String(128), primary_key=True),
    Column("timestamp", DateTime(timezone=True), primary_key=True),
    Column("open", ExactDecimal, nullable=False),
    Column("high", ExactDecimal, nullable=False),
    Column("low", ExactDecimal, nullable=False),
    Column("close", ExactDecimal, nullable=False),
    Column("volume", ExactDecimal, nullable=False),
    Column("data_source", String(32), nullable=False),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
)

backtest_runs = Table(
    "backtest_runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("strategy", String(128), nullable=False, index=True),
    Column("symbol", String(32), nullable=False, index=True),
    Column("bar_type", String(128), nullable=False),
    Column("dagster_run_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("start", DateTime(timezone=True)),
    Column("end", DateTime(timezone=True)),
    Column("bar_count", Integer, nullable=False),
    Column("data_hash", String(64), nullable=False),
    Column("config", JSON, nullable=False),
    Column("versions", JSON, nullable=False),
    Column("report_dir", String(1024)),
    Column("risk_events", JSON),  # risk controls that fired and orders refused, in time order
)

backtest_metrics = Table(
    "backtest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("backtest_runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", Float),  # numeric metrics; NULL where the metric is undefined
    Column("text", String(64)),  # timestamps (ISO-8601 UTC) and other non-numeric metrics
)

trades = Table(
    "trades",
    metadata,
    Column("run_id", String(32), ForeignKey("backtest_runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("position_id", String(128), primary_key=True),
    Column("side", String(8), nullable=False),
    Column("entry_time", DateTime(timezone=True), nullable=False),
    Column("exit_time", DateTime(timezone=True)),
    Column("entry_price", ExactDecimal, nullable=False),
    Column("exit_price", ExactDecimal),
    Column("quantity", ExactDecimal, nullable=False),
    Column("commission", ExactDecimal, nullable=False),
    Column("realized_pnl", ExactDecimal, nullable=False),
    Column("return_pct", Float),
    Column("holding_seconds", BigInteger),
)

equity_curve = Table(
    "equity_curve",
    metadata,
    Column("run_id", String(32), ForeignKey("backtest_runs.run_id", ondelete="CASCADE"), primary_key=True),
    Column("timestamp", DateTime(timezone=True), primary_key=True),
    Column("equity", Float, nullable=False),  # mark-to-market at the bar close
    Column("drawdown", Float, nullable=False),  # equity / running max − 1
)

store_publishes = Table(  # the last catalog publish of each series whose bars committed to market_data
    "store_publishes",
    metadata,
    Column("publish_id", String(32), primary_key=True),
    Column("bar_type", String(128), nullable=False, index=True),
    Column("published_at", DateTime(timezone=True), nullable=False),
)

# Every historical request sent to IB by any process, so all of them keep IB's pacing together.
ibkr_requests = Table(
    "ibkr_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sent_at", Float, nullable=False, index=True),  # epoch seconds
    Column("contract", String(64), nullable=False),
    Column("request_key", String(512), nullable=False),
    Column("pending", Boolean, nullable=False),  # reserved, answer not seen yet: counts as "now"
)

# IB's head time stamp (earliest bar) per symbol and kind of data: nothing before it is requested.
ibkr_listings = Table(
    "ibkr_listings",
    metadata,
    Column("symbol", String(64), primary_key=True),
    Column("what_to_show", String(32), primary_key=True),
    Column("use_rth", Boolean, primary_key=True),
    Column("head_timestamp", DateTime(timezone=True), nullable=False),
    Column("asked_at", DateTime(timezone=True), nullable=False),
)
