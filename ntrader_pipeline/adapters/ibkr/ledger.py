"""What IB has been asked, kept in the warehouse so every process and run shares it.

- ``WarehouseLedger``: the pacing ledger. Each reservation runs in one transaction under a lock
  (a Postgres advisory lock; on SQLite the first statement is a write, which takes the database's
  write lock), so two fetch processes never both take the last slot of a window. A request
  counts as "now" while in flight and as sent when its answer came: a loaded process may send
  well after it reserved, and IB counts arrivals. Times are epoch seconds: every process must
  read the same clock.
- ``ListingDates``: IB's head time stamp per symbol and kind of data, asked once. Sessions before
  it are never requested again, so a rerun over a pre-listing range sends nothing.

Every read and write is one whole transaction, run again after a transient failure like every
warehouse call (``Warehouse.run``/``read``): a restarting database does not fail a fetch.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import delete, insert, or_, select, text, update

from ntrader_pipeline.adapters.ibkr.pacing import IN_FLIGHT_LIMIT, PacingLimits, SentRequest, horizon, pacing_delay
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.adapters.warehouse.tables import ibkr_listings, ibkr_requests

PACING_LOCK = 0x1B4B_9ACE  # advisory lock id of the pacing ledger (Postgres)


class WarehouseLedger:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse
        self._pending: dict[tuple[str, str], int] = {}  # (contract, key) -> row id of our reservation

    def reserve(self, contract: str, key: Hashable, now: float, limits: PacingLimits, pending: bool = False) -> float:
        """Record the request and return 0 when it may go at ``now``; else the seconds to wait."""
        key_text = repr(key)
        columns = ibkr_requests.c

        def work(connection) -> tuple[float, int | None]:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": PACING_LOCK})
            connection.execute(
                delete(ibkr_requests).where(
                    or_(
                        (columns.sent_at < now - horizon(limits)) & ~columns.pending,
                        columns.sent_at < now - horizon(limits) - IN_FLIGHT_LIMIT,
                    )
                )
            )
            rows = connection.execute(
                select(columns.sent_at, columns.contract, columns.request_key, columns.pending).order_by(
                    columns.sent_at, columns.id
                )
            ).all()
            sent = [SentRequest(at, c, k, p) for at, c, k, p in rows]
            wait = pacing_delay(sent, contract, key_text, now, limits)
            if wait > 0:
                return wait, None
            row = connection.execute(
                insert(ibkr_requests)
                .values(sent_at=now, contract=contract, request_key=key_text, pending=pending)
                .returning(columns.id)
            ).scalar_one()
            return 0.0, row

        wait, row = self.warehouse.run("reserving an IB request in the pacing ledger", work)
        if row is not None and pending:
            self._pending[(contract, key_text)] = row
        return wait

    def confirm(self, contract: str, key: Hashable, at: float) -> None:
        """The request's answer came at ``at``: from now on it counts as sent then."""
        row = self._pending.pop((contract, repr(key)), None)
        if row is None:
            return
        statement = update(ibkr_requests).where(ibkr_requests.c.id == row).values(sent_at=at, pending=False)
        self.warehouse.run("confirming an IB request in the pacing ledger", lambda c: c.execute(statement))

    def sent_since(self, since: float) -> list[SentRequest]:
        c = ibkr_requests.c
        query = select(c.sent_at, c.contract, c.request_key, c.pending).where(c.sent_at >= since).order_by(c.sent_at)
        rows = self.warehouse.read("reading the IB pacing ledger", lambda connection: connection.execute(query).all())
        return [SentRequest(at, c, k, p) for at, c, k, p in rows]


def wall_clock() -> float:
    return time.time()


class ListingDates:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    def get(self, symbol: str, what_to_show: str, use_rth: bool) -> pd.Timestamp | None:
        query = select(ibkr_listings.c.head_timestamp).where(
            ibkr_listings.c.symbol == symbol,
            ibkr_listings.c.what_to_show == what_to_show,
            ibkr_listings.c.use_rth == use_rth,
        )
        value = self.warehouse.read(f"reading the IB listing date of {symbol}", lambda c: c.execute(query).scalar())
        if value is None:
            return None
        stamp = pd.Timestamp(value)  # SQLite hands back naive UTC
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")

    def put(self, symbol: str, what_to_show: str, use_rth: bool, head: pd.Timestamp) -> None:
        key = (
            ibkr_listings.c.symbol == symbol,
            ibkr_listings.c.what_to_show == what_to_show,
            ibkr_listings.c.use_rth == use_rth,
        )
        row = {
            "symbol": symbol,
            "what_to_show": what_to_show,
            "use_rth": use_rth,
            "head_timestamp": head.tz_convert("UTC").to_pydatetime(),
            "asked_at": datetime.now(UTC),
        }

        def work(connection) -> None:  # delete then insert: a retry writes nothing twice
            connection.execute(delete(ibkr_listings).where(*key))
            connection.execute(insert(ibkr_listings).values(**row))

        self.warehouse.run(f"storing the IB listing date of {symbol}", work)
