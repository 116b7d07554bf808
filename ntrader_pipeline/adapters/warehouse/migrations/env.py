"""Alembic environment: runs on the connection the warehouse hands in (SQLite or Postgres).

The revision is kept in ``ntrader_alembic_version``, not alembic's default ``alembic_version``:
the deployment keeps Dagster's storage and the warehouse in one Postgres database, and Dagster
stamps its own revision into ``alembic_version``. Sharing that table made the warehouse's first
migration fail ("Can't locate revision"). A warehouse created before the rename is adopted: its
revision moves to the new table when ``alembic_version`` holds one of ours.
"""

from alembic import context
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from ntrader_pipeline.adapters.warehouse.tables import VERSION_TABLE, metadata

LEGACY_VERSION_TABLE = "alembic_version"


def adopt_legacy_version(connection, script: ScriptDirectory) -> None:
    """Carry an older warehouse's revision over from ``alembic_version`` (left as it was)."""
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE in tables or LEGACY_VERSION_TABLE not in tables:
        return
    versions = [row[0] for row in connection.execute(text(f"SELECT version_num FROM {LEGACY_VERSION_TABLE}"))]
    ours = {revision.revision for revision in script.walk_revisions()}
    if len(versions) == 1 and versions[0] in ours:
        MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).stamp(script, versions[0])


connection = context.config.attributes["connection"]
adopt_legacy_version(connection, ScriptDirectory.from_config(context.config))
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
