"""Exclusive locks between processes: a file lock on one machine, the warehouse across machines.

Both die with their holder (the OS drops a file lock, Postgres an advisory lock with its
connection), so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from ntrader_pipeline.adapters.warehouse import Warehouse


@contextmanager
def file_lock(path: Path, wait: bool = True, shared: bool = False) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs.

    The lock dies with its process, so a crash never leaves a stale lock behind. With
    ``wait=False`` the block gets False instead of waiting when another process holds it.
    ``shared``: a lock many holders share, excluding only the exclusive one (readers vs a writer).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``name`` (what Postgres advisory locks are named by)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def warehouse_lock(warehouse: Warehouse, name: str, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock named ``name`` among every process that shares ``warehouse``.

    On Postgres a session advisory lock on a connection of its own: the server drops it when the
    holder's connection ends, so a killed worker on another machine never leaves it stale. A SQLite
    warehouse is one machine's, so a file lock beside the database file does the same there.
    With ``wait=False`` the block gets False instead of waiting when another process holds it.
    """
    if warehouse.dialect != "postgresql":
        folder = Path(warehouse.engine.url.database or ".").resolve().parent / ".ntrader-locks"
        with file_lock(folder / f"{hashlib.sha256(name.encode()).hexdigest()[:32]}.lock", wait) as held:
            yield held
        return
    key = lock_key(name)
    with warehouse.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if wait:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        elif not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar():
            yield False
            return
        try:
            yield True
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
