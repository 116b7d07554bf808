"""equity_curve: mark-to-market equity and drawdown of every run at every bar.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "equity_curve",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("backtest_runs.run_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("timestamp", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("equity", sa.Float, nullable=False),
        sa.Column("drawdown", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("equity_curve")
