"""When and at what price orders fill: at a bar's close (NautilusTrader's bar execution) or at the
next bar's open, and on bars without volume with the liquidity rule only where volume is known.

**Next open.** NautilusTrader fills a market order at the price its matching engine holds when the
order arrives. While a bar is handled that is the bar's close, and a latency model only moves the
arrival to that same close or to the next bar's close (the engine walks a bar's open, high, low and
close in one step, at the bar's time, before any strategy sees it); it rejects the ``AT_THE_OPEN``
time in force. So a ``fill: next_open`` run adds one trade per bar at the bar's open, before the
bar (``open_ticks``): the matching engine moves to the open, the strategy (subscribed to trades)
sends the orders the previous bar decided, and they fill at the open as at any price. The trade
offers what the engine offers at a bar's open, a quarter of the bar's volume; the bar that follows
starts at the price the market already holds, so the engine skips its open.

**Volume 0.**
NautilusTrader's bar execution offers a quarter of a bar's volume at each price it walks (open,
high, low, close; at least one share) and fills the rest of a market order one tick worse. Index
and some vendor files carry volume 0, which it reads as "no liquidity": one share filled at the
close and the rest a tick worse. ``KnownVolumeFillModel`` gives an order sent on a volume-0 bar
unlimited liquidity at the bar's price instead; on every other bar it returns None, which keeps
the engine's own rule exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder, TradeTick
from nautilus_trader.model.enums import AggressorSide, BookType, OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Quantity

from ntrader_pipeline.core.bars import SIZE_PRECISION, BarSeries
from ntrader_pipeline.core.calendar import session_dates, session_open_ns
from ntrader_pipeline.core.timeframes import Timeframe

UNLIMITED_SHARES = 1_000_000_000


class KnownVolumeFillModel(FillModel):
    """Unlimited liquidity at the best price for orders created at the given times: a volume-0 bar's
    close (bar_close), or its open (next_open)."""

    def __init__(self, zero_volume_ts: Iterable[int]) -> None:
        super().__init__()
        self.zero_volume_ts = frozenset(int(ts) for ts in zero_volume_ts)

    def get_orderbook_for_fill_simulation(self, instrument, order, best_bid, best_ask):
        if order.ts_init not in self.zero_volume_ts:
            return None  # volume known: the engine's quarter-of-volume rule
        book = OrderBook(instrument_id=instrument.id, book_type=BookType.L2_MBP)
        size = Quantity(UNLIMITED_SHARES, instrument.size_precision)
        book.add(BookOrder(OrderSide.BUY, best_bid, size, 1), 0, 0)
        book.add(BookOrder(OrderSide.SELL, best_ask, size, 2), 0, 0)
        return book


def open_times_ns(series: BarSeries) -> np.ndarray:
    """When each bar opens: a daily bar at its session's open (the series' calendar), an intraday bar one interval
    before its close (the previous bar's close when bars are contiguous; that bar comes first)."""
    ts = series.frame["ts_event"].to_numpy(dtype=np.int64)
    if series.timeframe is not Timeframe.DAILY:
        return ts - series.timeframe.nanos
    days = session_dates(series.frame["ts_event"].to_numpy(dtype=np.int64), series.calendar)
    return session_open_ns(pd.Series(days), series.calendar)


def open_ticks(series: BarSeries, instrument_id: InstrumentId) -> list[TradeTick]:
    """One trade per bar at its open price and open time, sized as the engine sizes a bar's open
    (a quarter of its volume in whole shares, at least one)."""
    frame = series.frame
    ts = np.array(open_times_ns(series), dtype=np.uint64, order="C")
    quarter = np.maximum(np.floor(frame["volume"].to_numpy(dtype=np.float64) / 4), 1.0)
    return TradeTick.from_raw_arrays_to_list(
        instrument_id,
        series.price_precision,
        SIZE_PRECISION,
        np.array(frame["open"].to_numpy(dtype=np.float64), dtype=np.float64, copy=True, order="C"),
        np.array(quarter, dtype=np.float64, copy=True, order="C"),
        np.full(len(frame), int(AggressorSide.NO_AGGRESSOR), dtype=np.uint8),
        [f"open-{i}" for i in range(len(frame))],
        ts,
        ts.copy(),
    )
