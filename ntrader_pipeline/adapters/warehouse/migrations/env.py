"""Alembic environment: runs on the connection the warehouse hands in (SQLite or Postgres)."""

from alembic import context

from ntrader_pipeline.adapters.warehouse.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
