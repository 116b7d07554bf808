"""What IB has been asked, kept in the warehouse so every process and run shares it.

- ``WarehouseLedger``: the pacing ledger. Each reservation runs in one transaction under a lock
  (a Postgres advisory lock; on SQLite the first statement is a write, which takes the database's
  write lock), so two fetch processes never both take the last slot of a window. Times are epoch
  seconds: every process must read the same clock.
- ``ListingDates``: IB's head time stamp per symbol and kind of data, asked once. Sessions before
  it are never requested again, so a rerun over a pre-listing range sends nothing.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import delete, insert, select, text

from ntrader_pipeline.adapters.ibkr.pacing import PacingLimits, SentRequest, horizon, pacing_delay
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.adapters.warehouse.tables import ibkr_listings, ibkr_requests

PACING_LOCK = 0x1B4B_9ACE  # advisory lock id of the pacing ledger (Postgres)


class WarehouseLedger:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    def reserve(self, contract: str, key: Hashable, now: float, limits: PacingLimits) -> float:
        """Record the request and return 0 when it may go at ``now``; else the seconds to wait."""
        key_text = repr(key)
        with self.warehouse.transaction() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": PACING_LOCK})
            connection.execute(delete(ibkr_requests).where(ibkr_requests.c.sent_at < now - horizon(limits)))
            rows = connection.execute(
                select(ibkr_requests.c.sent_at, ibkr_requests.c.contract, ibkr_requests.c.request_key)
                .order_by(ibkr_requests.c.sent_at, ibkr_requests.c.id)
            ).all()
            sent = [SentRequest(at, c, k) for at, c, k in rows]
            wait = pacing_delay(sent, contract, key_text, now, limits)
            if wait == 0:
                connection.execute(insert(ibkr_requests).values(sent_at=now, contract=contract, request_key=key_text))
            return wait

    def sent_since(self, since: float) -> list[SentRequest]:
        with self.warehouse.engine.connect() as connection:
            rows = connection.execute(
                select(ibkr_requests.c.sent_at, ibkr_requests.c.contract, ibkr_requests.c.request_key)
                .where(ibkr_requests.c.sent_at >= since)
                .order_by(ibkr_requests.c.sent_at)
            ).all()
        return [SentRequest(at, c, k) for at, c, k in rows]


def wall_clock() -> float:
    return time.time()


class ListingDates:
    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    def get(self, symbol: str, what_to_show: str, use_rth: bool) -> pd.Timestamp | None:
        with self.warehouse.engine.connect() as connection:
            value = connection.execute(
                select(ibkr_listings.c.head_timestamp).where(
                    ibkr_listings.c.symbol == symbol,
                    ibkr_listings.c.what_to_show == what_to_show,
                    ibkr_listings.c.use_rth == use_rth,
                )
            ).scalar()
        if value is None:
            return None
        stamp = pd.Timestamp(value)  # SQLite hands back naive UTC
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")

    def put(self, symbol: str, what_to_show: str, use_rth: bool, head: pd.Timestamp) -> None:
        key = (ibkr_listings.c.symbol == symbol, ibkr_listings.c.what_to_show == what_to_show,
               ibkr_listings.c.use_rth == use_rth)
        with self.warehouse.transaction() as connection:
            connection.execute(delete(ibkr_listings).where(*key))
            connection.execute(
                insert(ibkr_listings).values(
                    symbol=symbol, what_to_show=what_to_show, use_rth=use_rth,
                    head_timestamp=head.tz_convert("UTC").to_pydatetime(), asked_at=datetime.now(UTC),
                )
            )
