"""Fills on bars without volume: the liquidity rule applies only where volume is known.

NautilusTrader's bar execution offers a quarter of a bar's volume at each price it walks (open,
high, low, close; at least one share) and fills the rest of a market order one tick worse. Index
and some vendor files carry volume 0, which it reads as "no liquidity": one share filled at the
close and the rest a tick worse. ``KnownVolumeFillModel`` gives an order sent on a volume-0 bar
unlimited liquidity at the bar's price instead; on every other bar it returns None, which keeps
the engine's own rule exactly.
"""

from __future__ import annotations

from collections.abc import Iterable

from nautilus_trader.backtest.models import FillModel
from nautilus_trader.model.book import OrderBook
from nautilus_trader.model.data import BookOrder
from nautilus_trader.model.enums import BookType, OrderSide
from nautilus_trader.model.objects import Quantity

UNLIMITED_SHARES = 1_000_000_000


class KnownVolumeFillModel(FillModel):
    """Unlimited liquidity at the best price for orders created at a volume-0 bar's time."""

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
