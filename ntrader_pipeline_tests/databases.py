"""Fresh Postgres databases for tests and benchmarks: created empty, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

from ntrader_pipeline.adapters.warehouse import Warehouse


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
