"""store_publishes: which catalog publish a market_data commit belongs to, for crash recovery.

An import writes its row inside the transaction that replaces the bars, so after a kill the row
says whether that transaction committed, and the catalog is rolled forward or back to match.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_publishes",
        sa.Column("publish_id", sa.String(32), primary_key=True),
        sa.Column("bar_type", sa.String(128), nullable=False, index=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_publishes")
