"""The warehouse keeps its schema revision apart from Dagster's, as the deployment shares one database."""

from __future__ import annotations

import shutil

from dagster import DagsterInstance
from sqlalchemy import inspect, text

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline_tests.support import REPO_ROOT
from ntrader_pipeline_tests.support.databases import set_deployment_postgres_env


def test_warehouse_migrates_in_the_database_dagster_already_uses(postgres_url, tmp_path, monkeypatch):
    """docker-compose gives Dagster and the warehouse one database; Dagster stamps `alembic_version` first."""
    set_deployment_postgres_env(postgres_url, monkeypatch)
    shutil.copy(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    warehouse = Warehouse(postgres_url)
    try:
        warehouse.migrate()  # failed with "Can't locate revision" (Dagster's) before
        assert warehouse.bar_inventory() == []
        instance.get_runs()  # and Dagster still reads its own storage
    finally:
        warehouse.dispose()
        instance.dispose()


def test_a_warehouse_versioned_in_alembic_version_is_adopted(sqlite_url):
    """A warehouse made before the rename keeps its data and just moves its revision."""
    warehouse = Warehouse(sqlite_url)
    warehouse.migrate()
    with warehouse.transaction() as connection:
        connection.execute(text("ALTER TABLE ntrader_alembic_version RENAME TO alembic_version"))
    [head] = _versions(warehouse, "alembic_version")
    warehouse.migrate()  # would try to create existing tables if the old revision were ignored
    warehouse.migrate()
    assert _versions(warehouse, "ntrader_alembic_version") == [head]
    assert "market_data" in inspect(warehouse.engine).get_table_names()
    warehouse.dispose()


def _versions(warehouse: Warehouse, table: str) -> list[str]:
    with warehouse.engine.connect() as connection:
        return [row[0] for row in connection.execute(text(f"SELECT version_num FROM {table}"))]
