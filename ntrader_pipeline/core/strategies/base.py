"""A NautilusTrader strategy that turns a per-bar signal into a target position.

Subclasses say only *where* they want to be (long, flat or short) on each bar; this base sizes
the order, honours the long-only switch and the strategy-side risk controls, and moves the
position there with market orders. ``fill: bar_close`` (the default) sends them while handling
the bar, so they fill at its close (NautilusTrader's bar execution); ``fill: next_open`` keeps the
decision and sends the orders on the next bar's open (a trade at the open price that the backtest
adds before each bar), sized at that price, so they fill at the open.

Bars before a run's first bar can be handed over as ``warmup``: they go through NautilusTrader's
path for historical bars (``handle_bar(bar, historical=True)``: the registered indicators, then
``on_historical_data``), where the signal is followed but nothing is traded, so the run's first
bar is decided exactly as a run that started earlier would decide it.

Equity, for sizing and for the drawdown kill switch, is the strategy's own cash ledger (starting
balance − Σ signed fill notional − Σ commissions) plus the position at the bar's close: the same
mark-to-market definition the backtest result uses, whatever the account type.
"""

from __future__ import annotations

import math
from decimal import Decimal
from enum import IntEnum

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType, TradeTick
from nautilus_trader.model.enums import OrderSide, TimeInForce
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Price, Quantity
from nautilus_trader.trading.strategy import Strategy

from ntrader_pipeline.core.strategies import RISK_FIELDS  # noqa: F401 - also importable from here

SIZING_MODES = ("percent_equity", "fixed")
BAR_CLOSE, NEXT_OPEN = "bar_close", "next_open"
FILL_MODES = (BAR_CLOSE, NEXT_OPEN)


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
    fill: str = BAR_CLOSE  # set from the YAML's ``backtest.fill``, never from its ``config``

    def __post_init__(self) -> None:
        if self.fill not in FILL_MODES:
            raise ValueError(f"fill must be one of {', '.join(FILL_MODES)}, not {self.fill!r}")
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
        # next_open: where the last bar decided to go, done at the next bar's open.
        self.pending: Target | None = None
        # Bars before the run's first bar, oldest first: followed on start, never traded.
        self.warmup: list[Bar] = []

    # --- to override -------------------------------------------------------------------------

    def indicators(self) -> list:
        """Indicators fed with every bar before ``target`` is asked."""
        return []

    def observe(self, bar: Bar) -> None:
        """Update state kept outside ``indicators()`` with ``bar`` (warm-up bars too), before ``target``."""

    def target(self, bar: Bar) -> Target | None:
        """Where the position should be after this bar, or None to leave it as it is."""
        raise NotImplementedError

    def warmup_bars(self) -> int:
        """Bars needed before the first signal: the longest ``period`` among ``indicators()``."""
        return max((int(getattr(indicator, "period", 0)) for indicator in self.indicators()), default=0)

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def next_open(self) -> bool:
        return self.config.fill == NEXT_OPEN

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        if self.instrument is None:
            raise RuntimeError(f"instrument {self.config.instrument_id} is not in the cache")
        account = self.portfolio.account(self.config.instrument_id.venue)
        self.cash = account.balance_total(self.instrument.quote_currency).as_decimal()
        self.peak_equity = float(self.cash)
        for indicator in self.indicators():
            self.register_indicator_for_bars(self.config.bar_type, indicator)
        warmup, self.warmup = self.warmup, []
        for bar in warmup:
            self.handle_bar(bar, historical=True)  # indicators, then on_historical_data
        self.subscribe_bars(self.config.bar_type)
        if self.next_open:
            self.subscribe_trade_ticks(self.config.instrument_id)

    def on_historical_data(self, data) -> None:
        """A warm-up bar: follow the signal (so crosses are seen as in a longer run), trade nothing.

        Only the last warm-up bar's decision survives, for the first bar's open under next_open."""
        if isinstance(data, Bar):
            self.observe(data)
            self.pending = self.signal(data)

    def on_bar(self, bar: Bar) -> None:
        self.observe(bar)
        if self.halted:
            return
        if self.kill_switch_triggered(bar):
            return
        wanted = self.signal(bar)
        if self.next_open:
            self.pending = wanted  # done on the next bar's open, if there is one
        elif wanted is not None:
            self.move_to(wanted, bar.close, bar.ts_event)

    def on_trade_tick(self, tick: TradeTick) -> None:
        """next_open: the open of the next bar (sent before that bar): do what the last bar decided."""
        wanted, self.pending = self.pending, None
        if wanted is not None:
            self.move_to(wanted, tick.price, tick.ts_event)

    def signal(self, bar: Bar) -> Target | None:
        """``target(bar)`` once every indicator is ready; a short becomes flat when shorts are off."""
        if not all(indicator.initialized for indicator in self.indicators()):
            return None
        wanted = self.target(bar)
        if wanted is Target.SHORT and not self.config.allow_short:
            wanted = Target.FLAT
        return wanted

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

    def record_risk_event(self, ts_event: int, control: str, action: str, detail: str) -> None:
        self.risk_events.append({"ts_event": ts_event, "control": control, "action": action, "detail": detail})

    def kill_switch_triggered(self, bar: Bar) -> bool:
        """Flatten and halt for good once equity falls ``max_drawdown_pct`` % below its peak (at a
        bar's close); the flattening fills at that close, or at the next open under next_open."""
        equity = self.equity(bar.close.as_double())
        self.peak_equity = max(self.peak_equity, equity)
        limit = self.config.max_drawdown_pct
        if limit is None:
            return False
        drawdown = equity / self.peak_equity - 1.0
        if drawdown > -limit / 100.0:
            return False
        net = self.portfolio.net_position(self.config.instrument_id)
        where = "at the next open" if self.next_open else f"at {bar.close}"
        self.record_risk_event(
            bar.ts_event,
            "max_drawdown_pct",
            "flattened and halted",
            f"equity {equity:.2f} is {-drawdown:.2%} below its peak {self.peak_equity:.2f} "
            f"(limit {limit}%); closed {net} shares {where}",
        )
        if self.next_open:
            self.pending = Target.FLAT
        else:
            self.close_out(net, bar.close.as_double())
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

    def move_to(self, wanted: Target, at: Price, ts_event: int) -> None:
        """Orders that take the position to ``wanted``, sized at the price ``at`` (the bar's close,
        or the next open under next_open), which is where they fill."""
        current = self.current_side()
        if wanted == current:
            return
        price = at.as_double()
        equity = self.equity(price)  # before any order of this bar: closing does not change it
        net = self.portfolio.net_position(self.config.instrument_id)
        if current is not Target.FLAT:
            self.close_out(net, price)
        if wanted is not Target.FLAT:
            quantity = self.order_quantity(equity, price)
            limit = self.config.max_position_shares
            if limit is not None and quantity > limit:
                self.record_risk_event(
                    ts_event,
                    "max_position_shares",
                    "order reduced",
                    f"{wanted.name} entry of {quantity} shares cut to the limit of {limit}",
                )
                quantity = limit
            notional_limit = self.config.max_notional_per_order
            if notional_limit is not None and quantity * price > notional_limit:
                self.record_risk_event(
                    ts_event,
                    "max_notional_per_order",
                    "order denied",
                    f"{wanted.name} entry of {quantity} shares at {at} is {quantity * price:,.2f} USD, "
                    f"above the limit of {notional_limit:,.2f} USD",
                )
                return
            if wanted is Target.LONG and not self.config.allow_short and quantity * price > equity:
                self.record_risk_event(
                    ts_event,
                    "cash",
                    "order denied",
                    f"LONG entry of {quantity} shares at {at} costs {quantity * price:,.2f} USD; "
                    f"the cash account holds {equity:,.2f} USD",
                )
                return
            if quantity > 0:
                self.submit_market(OrderSide.BUY if wanted is Target.LONG else OrderSide.SELL, quantity)

    def close_out(self, net, price: float) -> None:
        """Close the position; split into orders under the per-order notional limit (at ``price``)
        so an exit is never denied for being too large."""
        remaining = abs(Decimal(str(net)))
        if remaining == 0:
            return
        side = OrderSide.SELL if net > 0 else OrderSide.BUY
        chunk = remaining
        if self.config.max_notional_per_order is not None:
            chunk = Decimal(math.floor(self.config.max_notional_per_order / price)) or remaining
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


def warmup_of(strategy_cls: type[SignalStrategy], config: SignalStrategyConfig) -> int:
    """The bars a strategy built from ``config`` needs before its first signal: its own
    ``warmup_bars()``, the one rule that validation and the walk-forward's warm-up both use."""
    return int(strategy_cls(config).warmup_bars())
