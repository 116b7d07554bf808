"""The trade ledger: one row per round trip (flat → position → flat), in exact decimals.

Built from the engine's fills rather than its position snapshots, so a netting account that reuses
one position id still yields one row per round trip (numbered ``<position id>-<n>``). A position
still open at the end is not a round trip and is not in the ledger; the equity curve carries it.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd

LEDGER_COLUMNS = [
    "position_id",
    "side",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "quantity",
    "commission",
    "realized_pnl",
    "return_pct",
    "holding_seconds",
]
AVERAGE_PLACES = Decimal("1e-10")  # an average of several fills that is not on the tick keeps ten places


def _ts(ns: int) -> pd.Timestamp:
    return pd.Timestamp(int(ns), tz="UTC")


def trade_ledger(fills: pd.DataFrame) -> pd.DataFrame:
    trips: list[dict] = []
    position = Decimal(0)
    trip: dict = {}  # the round trip being built; a new one starts whenever the position is flat
    for fill in fills.itertuples(index=False):  # one row per fill, not per bar
        remaining = fill.quantity
        while remaining > 0:
            if position == 0:
                trip = {
                    "side": fill.side,
                    "entry_ts": fill.ts_event,
                    "position_id": fill.position_id,
                    "in_qty": Decimal(0),
                    "in_value": Decimal(0),
                    "out_qty": Decimal(0),
                    "out_value": Decimal(0),
                    "commission": Decimal(0),
                    "tick": Decimal(1).scaleb(fill.price.as_tuple().exponent),
                }
            opening = fill.side == trip["side"]
            qty = remaining if opening else min(remaining, abs(position))
            share = qty / fill.quantity
            trip["commission"] += fill.commission * share
            if opening:
                trip["in_qty"] += qty
                trip["in_value"] += qty * fill.price
                position += fill.side * qty
            else:
                trip["out_qty"] += qty
                trip["out_value"] += qty * fill.price
                position += fill.side * qty
                if position == 0:
                    trips.append(_close(trip, fill.ts_event, len(trips) + 1))
            remaining -= qty
    return pd.DataFrame(trips, columns=LEDGER_COLUMNS)


def _average(value: Decimal, quantity: Decimal, tick: Decimal) -> Decimal:
    """Volume-weighted price, written to the instrument's decimals when it lies on the tick."""
    average = value / quantity
    on_tick = average.quantize(tick)
    return on_tick if on_tick == average else average.quantize(AVERAGE_PLACES)


def _close(trip: dict, exit_ts: int, number: int) -> dict:
    side = trip["side"]
    gross = (trip["out_value"] - trip["in_value"]) * side
    pnl = gross - trip["commission"]
    return {
        "position_id": f"{trip['position_id']}-{number}",
        "side": "LONG" if side > 0 else "SHORT",
        "entry_time": _ts(trip["entry_ts"]),
        "exit_time": _ts(exit_ts),
        "entry_price": _average(trip["in_value"], trip["in_qty"], trip["tick"]),
        "exit_price": _average(trip["out_value"], trip["out_qty"], trip["tick"]),
        "quantity": trip["in_qty"],
        "commission": trip["commission"],
        "realized_pnl": pnl,
        "return_pct": float(pnl / trip["in_value"] * 100),
        "holding_seconds": (exit_ts - trip["entry_ts"]) // 1_000_000_000,
    }
