"""ibkr_requests and ibkr_listings: IB's pacing ledger and listing dates, shared by every process.

Revision ID: 0005
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ibkr_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sent_at", sa.Float, nullable=False, index=True),  # epoch seconds
        sa.Column("contract", sa.String(64), nullable=False),
        sa.Column("request_key", sa.String(512), nullable=False),
        sa.Column("pending", sa.Boolean, nullable=False),  # reserved, answer not seen yet
    )
    op.create_table(
        "ibkr_listings",
        sa.Column("symbol", sa.String(64), primary_key=True),
        sa.Column("what_to_show", sa.String(32), primary_key=True),
        sa.Column("use_rth", sa.Boolean, primary_key=True),
        sa.Column("head_timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ibkr_listings")
    op.drop_table("ibkr_requests")
