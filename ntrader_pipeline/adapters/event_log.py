"""Dagster's event log in one SQLite file, writing a batch of events in one transaction.

Why: a backfill batch of N backtest partitions writes 8 N asset events (4 "planned" when the run
is created, 4 materializations when the step ends), and Dagster's SQLite storage commits each one
on its own, several times (the event, its tags, the asset's row): most of a partition's cost
beside a sub-second engine run (``bench/backtest_overhead.py``). Dagster already hands these
events over in batches (one per asset) when ``DAGSTER_EVENT_BATCH_SIZE`` is set, but its SQLite
storages then still write them one by one; ``store_event_batch`` below writes a batch in two
transactions, with the same rows the one-by-one path writes.

Each transaction also waits for one disk flush fewer: the file is in WAL mode (Dagster sets it) and
every connection here uses ``synchronous=NORMAL``, SQLite's setting for WAL. A process killed
mid-run loses nothing committed; a power cut or an operating-system crash may lose the last events
committed before it (never the warehouse's rows, which are another database). About a fifth of a
one-partition run, measured on a busy two-core machine.

The instance loads this module (``dagster.yaml``'s ``event_log_storage``) in every process that
opens it: the daemon creating a backfill's runs, the run's own process, the ``ntrader`` command.
Importing it turns batches on there (``enable_event_batches``), unless the environment already
says otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as db
from dagster import EventLogEntry
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.pool import NullPool

EVENT_BATCH_SIZE = "1000"  # events of one batch Dagster buffers before a write; a batch is one asset's


def enable_event_batches() -> None:
    """Have Dagster hand asset events to the storage in batches (its own switch, read per event)."""
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)


enable_event_batches()


class BatchedSqliteEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """``ConsolidatedSqliteEventLogStorage`` whose batches are one transaction for the events and
    one for their index rows, instead of two or three commits per event; ``synchronous=NORMAL``."""

    @contextmanager
    def _connect(self) -> Iterator[db.Connection]:
        """Dagster's ``_connect`` (a new engine, one transaction) with ``synchronous=NORMAL``."""
        engine = db.create_engine(
            self._conn_string, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
        )
        db.event.listen(engine, "connect", _synchronous_normal)
        with engine.connect() as conn, conn.begin():
            yield conn

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not events:
            return
        with self._connect() as conn:  # one transaction: the events, in order
            ids = [_inserted_id(conn.execute(self.prepare_insert_event(e))) for e in events]
        indexed = [
            (event, event_id)
            for event, event_id in zip(events, ids, strict=True)
            if event.dagster_event is not None
            and event.dagster_event_type in ASSET_EVENTS
            and event.dagster_event.asset_key
        ]
        if indexed:
            with self.index_transaction() as conn:  # as ``store_event`` does, for every event at once
                for event, event_id in indexed:
                    self._store_asset_event_tags(conn, [event], [event_id])
                    self._store_asset_event(conn, event, event_id)
        for event, event_id in zip(events, ids, strict=True):
            if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(event, event_id)


def _synchronous_normal(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _inserted_id(result) -> int:
    """The primary key an INSERT gave its row."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the event log's INSERT returned no primary key")
    return key[0]
