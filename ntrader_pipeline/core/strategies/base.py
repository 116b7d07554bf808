"""A NautilusTrader strategy that turns a per-bar signal into a target position.

Subclasses say only *where* they want to be (long, flat or short) on each bar; this base sizes
the order, honours the long-only switch and moves the position there with market orders, which
fill at the bar's close (NautilusTrader's bar execution).
"""

from __future__ import annotations

import math
from decimal import Decimal
from enum import IntEnum

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Quantity
from nautilus_trader.trading.strategy import Strategy


class Target(IntEnum):
    SHORT = -1
    FLAT = 0
    LONG = 1


class SignalStrategyConfig(StrategyConfig, frozen=True):
    """Parameters every signal strategy shares.

    sizing: "percent_equity" buys ``equity_percent`` % of current equity; "fixed" buys
    ``fixed_quantity`` shares.
    """

    instrument_id: InstrumentId
    bar_type: BarType
    sizing: str = "percent_equity"
    equity_percent: float = 95.0
    fixed_quantity: int = 100
    allow_short: bool = False


class SignalStrategy(Strategy):
    """Moves the position to ``target(bar)`` on every bar where the signal is defined."""

    def __init__(self, config: SignalStrategyConfig):
        super().__init__(config)
        self.instrument: Instrument | None = None

    # --- to override -------------------------------------------------------------------------

    def indicators(self) -> list:
        """Indicators fed with every bar before ``target`` is asked."""
        return []

    def target(self, bar: Bar) -> Target | None:
        """Where the position should be after this bar, or None to leave it as it is."""
        raise NotImplementedError

    # --- lifecycle ---------------------------------------------------------------------------

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        if self.instrument is None:
            raise RuntimeError(f"instrument {self.config.instrument_id} is not in the cache")
        for indicator in self.indicators():
            self.register_indicator_for_bars(self.config.bar_type, indicator)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if not all(indicator.initialized for indicator in self.indicators()):
            return
        wanted = self.target(bar)
        if wanted is None:
            return
        if wanted is Target.SHORT and not self.config.allow_short:
            wanted = Target.FLAT
        self.move_to(wanted, bar)

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)

    # --- order handling ----------------------------------------------------------------------

    def current_side(self) -> Target:
        net = self.portfolio.net_position(self.config.instrument_id)
        return Target.LONG if net > 0 else Target.SHORT if net < 0 else Target.FLAT

    def equity(self, price: float) -> float:
        """Cash plus the open position at ``price``: what percent-of-equity sizing is based on."""
        account = self.portfolio.account(self.config.instrument_id.venue)
        cash = account.balance_total(self.instrument.quote_currency).as_double()
        return cash + float(self.portfolio.net_position(self.config.instrument_id)) * price

    def order_quantity(self, price: float) -> int:
        if self.config.sizing == "fixed":
            return self.config.fixed_quantity
        return math.floor(self.equity(price) * self.config.equity_percent / 100.0 / price)

    def move_to(self, wanted: Target, bar: Bar) -> None:
        current = self.current_side()
        if wanted == current:
            return
        net = self.portfolio.net_position(self.config.instrument_id)
        if current is not Target.FLAT:
            self.submit_market(OrderSide.SELL if net > 0 else OrderSide.BUY, abs(net))
        if wanted is not Target.FLAT:
            # After closing, equity is the cash the close will realise at this bar's price.
            quantity = self.order_quantity(bar.close.as_double())
            if quantity > 0:
                self.submit_market(OrderSide.BUY if wanted is Target.LONG else OrderSide.SELL, quantity)

    def submit_market(self, side: OrderSide, quantity: Decimal | int) -> None:
        order = self.order_factory.market(
            instrument_id=self.config.instrument_id,
            order_side=side,
            quantity=Quantity.from_str(str(quantity)),
            time_in_force=TimeInForce.GTC,
        )
        self.submit_order(order)
