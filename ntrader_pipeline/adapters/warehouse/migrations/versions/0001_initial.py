"""market_data, backtest_runs, backtest_metrics and trades.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Exact decimals: NUMERIC on Postgres, text on SQLite (see tables.ExactDecimal).
DECIMAL = sa.Numeric(28, 10).with_variant(sa.String(40), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "market_data",
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("bar_type", sa.String(128), primary_key=True),
        sa.Column("timestamp", TS, primary_key=True),
        sa.Column("open", DECIMAL, nullable=False),
        sa.Column("high", DECIMAL, nullable=False),
        sa.Column("low", DECIMAL, nullable=False),
        sa.Column("close", DECIMAL, nullable=False),
        sa.Column("volume", DECIMAL, nullable=False),
        sa.Column("data_source", sa.String(32), nullable=False),
        sa.Column("ingested_at", TS, nullable=False),
    )
    op.create_table(
        "backtest_runs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("strategy", sa.String(128), nullable=False, index=True),
        sa.Column("symbol", sa.String(32), nullable=False, index=True),
        sa.Column("bar_type", sa.String(128), nullable=False),
        sa.Column("dagster_run_id", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("start", TS),
        sa.Column("end", TS),
        sa.Column("bar_count", sa.Integer, nullable=False),
        sa.Column("data_hash", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("versions", sa.JSON, nullable=False),
        sa.Column("report_dir", sa.String(1024)),
    )
    op.create_table(
        "backtest_metrics",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("backtest_runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float),
        sa.Column("text", sa.String(64)),
    )
    op.create_table(
        "trades",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("backtest_runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("position_id", sa.String(128), primary_key=True),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("entry_time", TS, nullable=False),
        sa.Column("exit_time", TS),
        sa.Column("entry_price", DECIMAL, nullable=False),
        sa.Column("exit_price", DECIMAL),
        sa.Column("quantity", DECIMAL, nullable=False),
        sa.Column("commission", DECIMAL, nullable=False),
        sa.Column("realized_pnl", DECIMAL, nullable=False),
        sa.Column("return_pct", sa.Float),
        sa.Column("holding_seconds", sa.BigInteger),
    )


def downgrade() -> None:
    for table in ("trades", "backtest_metrics", "backtest_runs", "market_data"):
        op.drop_table(table)
