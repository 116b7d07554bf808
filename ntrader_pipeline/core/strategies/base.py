"""A NautilusTrader strategy that turns a per-bar signal into a target position.

Subclasses say only *where* they want to be (long, flat or short) on each bar; this base sizes
the order, honours the long-only switch and the strategy-side risk controls, and moves the
position there with market orders, which fill at the bar's close (NautilusTrader's bar execution).

Equity, for sizing and for the drawdown kill switch, is the strategy's own cash ledger (starting
balance − Σ signed fill notional − Σ commissions) plus the position at the bar's close: the same
mark-to-market definition the backtest result uses, whatever the account type.
"""

from __future__ import annotations

import math
from decimal import Decimal
from enum import IntEnum

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Quantity
from nautilus_trader.trading.strategy import Strategy

from ntrader_pipeline.core.strategies import RISK_FIELDS  # noqa: F401 - also importable from here

SIZING_MODES = ("percent_equity", "fixed")


class Target(IntEnum):
    SHORT = -1
    FLAT = 0
    LONG = 1


class SignalStrategyConfig(StrategyConfig, frozen=True):
    """Parameters every signal strategy shares.

    sizing: "percent_equity" buys ``equity_percent`` % of current equity; "fixed" buys
    ``fixed_quantity`` shares. Risk limits (None = off) come from the YAML's ``backtest.risk``.
    """

    instrument_id: InstrumentId
    bar_type: BarType
    sizing: str = "percent_equity"
    equity_percent: float = 95.0
    fixed_quantity: int = 100
    allow_short: bool = False
    max_position_shares: int | None = None
    max_notional_per_order: float | None = None
    max_drawdown_pct: float | None = None

    def __post_init__(self) -> None:
        if self.sizing not in SIZING_MODES:
            raise ValueError(f"sizing must be one of {', '.join(SIZING_MODES)}, not {self.sizing!r}")
        if not 0 < self.equity_percent <= 100:
            raise ValueError("equity_percent must be above 0 and at most 100")
        if self.fixed_quantity <= 0:
            raise ValueError("fixed_quantity must be a positive number of shares")
        if self.max_position_shares is not None and self.max_position_shares <= 0:
            raise ValueError("max_position_shares must be positive")
        if self.max_notional_per_order is not None and self.max_notional_per_order <= 0:
            raise ValueError("max_notional_per_order must be positive")
        if self.max_drawdown_pct is not None and not 0 < self.max_drawdown_pct < 100:
            raise ValueError("max_drawdown_pct must be between 0 and 100")


class SignalStrategy(Strategy):
    """Moves the position to ``target(bar)`` on every bar where the signal is defined."""

    def __init__(self, config: SignalStrategyConfig):
        super().__init__(config)
        self.instrument: Instrument | None = None
        self.cash = Decimal(0)
        self.peak_equity = 0.0
        self.halted = False
        self.risk_events: list[dict] = []

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
        account = self.portfolio.account(self.config.instrument_id.venue)
        self.cash = account.balance_total(self.instrument.quote_currency).as_decimal()
        self.peak_equity = float(self.cash)
        for indicator in self.indicators():
            self.register_indicator_for_bars(self.config.bar_type, indicator)
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        if self.halted:
            return
        if self.kill_switch_triggered(bar):
            return
        if not all(indicator.initialized for indicator in self.indicators()):
            return
        wanted = self.target(bar)
        if wanted is None:
            return
        if wanted is Target.SHORT and not self.config.allow_short:
            wanted = Target.FLAT
        self.move_to(wanted, bar)

    def on_order_filled(self, event: OrderFilled) -> None:
        signed = event.last_qty.as_decimal() * event.last_px.as_decimal()
        if event.order_side == OrderSide.BUY:
            self.cash -= signed
        else:
            self.cash += signed
        self.cash -= event.commission.as_decimal()

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)

    # --- risk controls -----------------------------------------------------------------------

    def record_risk_event(self, bar: Bar, control: str, action: str, detail: str) -> None:
        self.risk_events.append({"ts_event": bar.ts_event, "control": control, "action": action, "detail": detail})

    def kill_switch_triggered(self, bar: Bar) -> bool:
        """Flatten and halt for good once equity falls ``max_drawdown_pct`` % below its peak."""
        equity = self.equity(bar.close.as_double())
        self.peak_equity = max(self.peak_equity, equity)
        limit = self.config.max_drawdown_pct
        if limit is None:
            return False
        drawdown = equity / self.peak_equity - 1.0
        if drawdown > -limit / 100.0:
            return False
        net = self.portfolio.net_position(self.config.instrument_id)
        self.record_risk_event(
            bar,
            "max_drawdown_pct",
            "flattened and halted",
            f"equity {equity:.2f} is {-drawdown:.2%} below its peak {self.peak_equity:.2f} "
            f"(limit {limit}%); closed {net} shares at {bar.close}",
        )
        self.close_out(net, bar)
        self.halted = True
        return True

    # --- order handling ----------------------------------------------------------------------

    def current_side(self) -> Target:
        net = self.portfolio.net_position(self.config.instrument_id)
        return Target.LONG if net > 0 else Target.SHORT if net < 0 else Target.FLAT

    def equity(self, price: float) -> float:
        """Cash plus the open position at ``price``: what percent-of-equity sizing is based on."""
        return float(self.cash) + float(self.portfolio.net_position(self.config.instrument_id)) * price

    def order_quantity(self, equity: float, price: float) -> int:
        if self.config.sizing == "fixed":
            return self.config.fixed_quantity
        return math.floor(equity * self.config.equity_percent / 100.0 / price)

    def move_to(self, wanted: Target, bar: Bar) -> None:
        current = self.current_side()
        if wanted == current:
            return
        price = bar.close.as_double()
        equity = self.equity(price)  # before any order of this bar: closing does not change it
        net = self.portfolio.net_position(self.config.instrument_id)
        if current is not Target.FLAT:
            self.close_out(net, bar)
        if wanted is not Target.FLAT:
            quantity = self.order_quantity(equity, price)
            limit = self.config.max_position_shares
            if limit is not None and quantity > limit:
                self.record_risk_event(
                    bar,
                    "max_position_shares",
                    "order reduced",
                    f"{wanted.name} entry of {quantity} shares cut to the limit of {limit}",
                )
                quantity = limit
            notional_limit = self.config.max_notional_per_order
            if notional_limit is not None and quantity * price > notional_limit:
                self.record_risk_event(
                    bar,
                    "max_notional_per_order",
                    "order denied",
                    f"{wanted.name} entry of {quantity} shares at {bar.close} is {quantity * price:,.2f} USD, "
                    f"above the limit of {notional_limit:,.2f} USD",
                )
                return
            if wanted is Target.LONG and not self.config.allow_short and quantity * price > equity:
                self.record_risk_event(
                    bar,
                    "cash",
                    "order denied",
                    f"LONG entry of {quantity} shares at {bar.close} costs {quantity * price:,.2f} USD; "
                    f"the cash account holds {equity:,.2f} USD",
                )
                return
            if quantity > 0:
                self.submit_market(OrderSide.BUY if wanted is Target.LONG else OrderSide.SELL, quantity)

    def close_out(self, net, bar: Bar) -> None:
        """Close the position; split into orders under the per-order notional limit so an exit
        is never denied for being too large."""
        remaining = abs(Decimal(str(net)))
        if remaining == 0:
            return
        side = OrderSide.SELL if net > 0 else OrderSide.BUY
        chunk = remaining
        if self.config.max_notional_per_order is not None:
            chunk = Decimal(math.floor(self.config.max_notional_per_order / bar.close.as_double())) or remaining
        while remaining > 0:
            quantity = min(chunk, remaining)
            self.submit_market(side, quantity)
            remaining -= quantity

    def submit_market(self, side: OrderSide, quantity: Decimal | int) -> None:
        order = self.order_factory.market(
            instrument_id=self.config.instrument_id,
            order_side=side,
            quantity=Quantity.from_str(str(quantity)),
            time_in_force=TimeInForce.GTC,
        )
        self.submit_order(order)
