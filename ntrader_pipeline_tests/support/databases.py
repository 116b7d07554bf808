"""Fresh Postgres databases for tests and benchmarks: created empty, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from ntrader_pipeline.adapters.warehouse import Warehouse

if TYPE_CHECKING:
    import pytest


@contextmanager
def fresh_database(admin: Engine, prefix: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin`` (an AUTOCOMMIT engine); its URL.

    Dropped on the way out, even with clients still connected (``WITH (FORCE)``), after this
    process's pooled warehouse connections are let go.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        Warehouse.open.cache_clear()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def set_deployment_postgres_env(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``DAGSTER_POSTGRES_*`` variables docker-compose gives the repo ``dagster.yaml``, for this database."""
    url = make_url(postgres_url)
    for key, value in {
        "DAGSTER_POSTGRES_HOST": url.host,
        "DAGSTER_POSTGRES_PORT": str(url.port),
        "DAGSTER_POSTGRES_USER": url.username,
        "DAGSTER_POSTGRES_PASSWORD": url.password or "",
        "DAGSTER_POSTGRES_DB": url.database,
    }.items():
        monkeypatch.setenv(key, value)
