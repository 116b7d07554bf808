"""Run one strategy on one bar series in NautilusTrader's ``BacktestEngine``.

The result is plain data (frames and decimals) that knows nothing of the engine, so metrics,
ledgers and reports can be computed, stored and reproduced without it. Equity is marked to
market at every bar: the account's cash balance as the engine kept it, plus the position (from the
engine's fills) valued at the bar's close. NautilusTrader's account report alone is cash only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from importlib.metadata import version

import numpy as np
import pandas as pd
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money

from ntrader_pipeline.core.bars import BarSeries, to_nautilus_bars
from ntrader_pipeline.core.calendar import EXCHANGE
from ntrader_pipeline.core.instruments import make_equity
from ntrader_pipeline.core.strategy_specs import StrategySpec

FILL_CONVENTION = "market orders sent on a bar fill at that bar's close"
FILL_COLUMNS = ["ts_event", "side", "quantity", "price", "commission", "position_id"]


@dataclass(frozen=True)
class BacktestResult:
    """Everything a backtest produced that metrics, ledgers and reports need."""

    strategy: str  # the spec's name (partition key)
    run_id: str
    symbol: str
    bar_type: str
    spec: dict
    starting_balance: Decimal
    data_hash: str
    bar_count: int
    start_ns: int
    end_ns: int
    price_precision: int
    equity: pd.DataFrame  # ts_event, close, position, cash, equity (one row per bar)
    fills: pd.DataFrame  # FILL_COLUMNS; quantity, price and commission are exact Decimals
    versions: dict = field(default_factory=dict)


def window(series: BarSeries, start: date | None, end: date | None) -> BarSeries:
    """The bars whose close falls on a date in [start, end] (exchange-local dates)."""
    frame = series.frame
    if start is None and end is None:
        return series
    local_day = pd.to_datetime(frame["ts_event"], utc=True).dt.tz_convert("America/New_York").dt.date
    mask = np.ones(len(frame), dtype=bool)
    if start is not None:
        mask &= (local_day >= start).to_numpy()
    if end is not None:
        mask &= (local_day <= end).to_numpy()
    return BarSeries(
        series.symbol, series.timeframe, frame[mask].reset_index(drop=True),
        series.price_precision, series.source, series.notes,
    )


def versions() -> dict[str, str]:
    return {pkg: version(pkg) for pkg in ("nautilus_trader", "ntrader-pipeline", "pandas")}


def run_backtest(
    series: BarSeries,
    spec: StrategySpec,
    venue: str,
    run_id: str,
    start: date | None = None,
    end: date | None = None,
) -> BacktestResult:
    """Run ``spec`` over ``series`` (optionally cut to [start, end]) and collect the result."""
    start = start or spec.backtest.start
    end = end or spec.backtest.end
    series = window(series, start, end)
    if len(series) == 0:
        raise ValueError(f"no {series.symbol} bars between {start or 'the start'} and {end or 'the end'}")

    instrument = make_equity(series.symbol, venue, series.price_precision)
    bar_type = series.bar_type(venue)
    balance = spec.backtest.starting_balance
    engine = BacktestEngine(
        BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False)
    )
    try:
        engine.add_venue(
            venue=Venue(venue),
            oms_type=OmsType.NETTING,
            account_type=AccountType.CASH,
            base_currency=USD,
            starting_balances=[Money(balance, USD)],
        )
        engine.add_instrument(instrument)
        engine.add_data(to_nautilus_bars(series, venue))
        registered = spec.registered
        config = registered.config_cls(
            instrument_id=instrument.id, bar_type=bar_type, **spec.config
        )
        engine.add_strategy(registered.strategy_cls(config))
        engine.run()
        fills = _fills_frame(engine)
        cash = _cash_frame(engine, venue)
    finally:
        engine.dispose()

    return BacktestResult(
        strategy=spec.name,
        run_id=run_id,
        symbol=series.symbol,
        bar_type=str(bar_type),
        spec=spec.canonical(),
        starting_balance=balance,
        data_hash=series.content_hash(),
        bar_count=len(series),
        start_ns=series.first_ns,
        end_ns=series.last_ns,
        price_precision=series.price_precision,
        equity=mark_to_market(series.frame, fills, cash),
        fills=fills,
        versions={**versions(), "calendar": EXCHANGE, "fills": FILL_CONVENTION},
    )


def _fills_frame(engine: BacktestEngine) -> pd.DataFrame:
    """Every fill, in the order the engine made them (time, then order sequence)."""
    rows = []
    for order in engine.cache.orders():
        sequence = int(str(order.client_order_id).rsplit("-", 1)[1])
        for event in order.events:
            if type(event).__name__ != "OrderFilled":
                continue
            rows.append(
                {
                    "ts_event": event.ts_event,
                    "sequence": sequence,
                    "side": 1 if event.order_side == OrderSide.BUY else -1,
                    "quantity": event.last_qty.as_decimal(),
                    "price": Decimal(str(event.last_px)),  # as_decimal() drops trailing zeros
                    "commission": event.commission.as_decimal(),
                    "position_id": str(event.position_id),
                }
            )
    frame = pd.DataFrame(rows, columns=[*FILL_COLUMNS, "sequence"])
    frame = frame.sort_values(["ts_event", "sequence"], kind="stable")
    return frame[FILL_COLUMNS].reset_index(drop=True)


def _cash_frame(engine: BacktestEngine, venue: str) -> pd.DataFrame:
    """The account's cash balance after each of its state changes (start, every fill)."""
    account = engine.portfolio.account(Venue(venue))
    return pd.DataFrame(
        {
            "ts_event": [event.ts_event for event in account.events],
            "cash": [event.balances[0].total.as_decimal() for event in account.events],
        }
    )


def mark_to_market(bars: pd.DataFrame, fills: pd.DataFrame, cash: pd.DataFrame) -> pd.DataFrame:
    """Equity at every bar close: the account's cash then, plus the position valued at the close.

    A fill stamped at a bar's time (bar execution fills at the close) counts in that bar.
    """
    ts = bars["ts_event"].to_numpy(dtype=np.int64)
    close = bars["close"].to_numpy(dtype=np.float64)
    signed_qty = fills["side"].to_numpy(dtype=np.float64) * fills["quantity"].to_numpy(dtype=np.float64)
    filled = np.searchsorted(fills["ts_event"].to_numpy(dtype=np.int64), ts, side="right")
    position = np.concatenate([[0.0], np.cumsum(signed_qty)])[filled]
    changed = np.searchsorted(cash["ts_event"].to_numpy(dtype=np.int64), ts, side="right")
    balance = cash["cash"].to_numpy(dtype=np.float64)[np.maximum(changed - 1, 0)]
    return pd.DataFrame(
        {"ts_event": ts, "close": close, "position": position, "cash": balance, "equity": balance + position * close}
    )
