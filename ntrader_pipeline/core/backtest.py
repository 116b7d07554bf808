"""Run one strategy on one bar series in NautilusTrader's ``BacktestEngine``.

The result is plain data (frames and decimals) that knows nothing of the engine, so metrics,
ledgers and reports can be computed, stored and reproduced without it. Equity is marked to
market at every bar: cash rebuilt from the engine's fills (settled in cents as its account does),
plus the position valued at the bar's close, the same for CASH and MARGIN accounts; every run
reconciles its final equity with the engine's own account. NautilusTrader's account report alone
is cash only.

A run may be warmed up: with ``warmup=True`` the strategy first follows every bar of the series
before the run's first bar (indicators and signals; no orders, no equity), so a window of a longer
history is decided bar for bar as that history would decide it. The equity, fills, metrics, bar
count and dates describe the run's own bars; the data hash covers every bar the strategy saw, the
warm-up included, since those decide its trades.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from importlib.metadata import version
from typing import Literal

import numpy as np
import pandas as pd
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide, OrderStatus
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money

from ntrader_pipeline.core.bars import BarSeries, to_nautilus_bars
from ntrader_pipeline.core.calendar import DEFAULT_CALENDAR, calendar_timezone
from ntrader_pipeline.core.fee_model import PerShareFeeModel
from ntrader_pipeline.core.fees import CENT
from ntrader_pipeline.core.instruments import make_equity
from ntrader_pipeline.core.strategies.base import warmup_of
from ntrader_pipeline.core.strategy_specs import (
    CHECK_BAR_TYPE,
    CHECK_INSTRUMENT,
    StrategySpec,
    build_strategy_config,
    resolve_strategy,
)

FILL_CONVENTIONS = {
    "bar_close": "market orders sent on a bar fill at that bar's close",
    "next_open": "market orders decided on a bar fill at the next bar's open",
}
FILL_CONVENTION = FILL_CONVENTIONS["bar_close"]
FILL_COLUMNS = ["ts_event", "side", "quantity", "price", "commission", "position_id"]
# USD per fill: a MARGIN account books realized PnL rounded to cents per fill, the cash ledger
# rounds each fill's notional; the two may differ by cent roundings, never by more.
RECONCILE_CENTS_PER_FILL = 0.01


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
    # Every risk control that triggered or order the engine refused, in time order:
    # ts_event, control, action, detail.
    risk_events: list[dict] = field(default_factory=list)
    # The engine's own final account: type, balance and unrealized PnL (what equity reconciles to).
    engine_account: dict = field(default_factory=dict)


def window(series: BarSeries, start: date | None, end: date | None) -> BarSeries:
    """The bars whose close falls on a date in [start, end] (exchange-local dates)."""
    frame = series.frame
    if start is None and end is None:
        return series
    zone = calendar_timezone(series.calendar)
    local = pd.to_datetime(frame["ts_event"], utc=True).dt.tz_convert(zone).dt.tz_localize(None)
    local_day = local.to_numpy(dtype="datetime64[D]")  # not a date object per bar
    mask = np.ones(len(frame), dtype=bool)
    if start is not None:
        mask &= local_day >= np.datetime64(start, "D")
    if end is not None:
        mask &= local_day <= np.datetime64(end, "D")
    return replace(series, frame=frame[mask].reset_index(drop=True), recheck=None)


def bars_to_trade(series: BarSeries, spec: StrategySpec, start: date | None, end: date | None) -> BarSeries:
    """The bars a run of ``spec`` trades: the window given, else the spec's; ValueError when empty.

    Callers check this before starting a run, so a request that can only fail is refused up front.
    """
    start = start or spec.backtest.start
    end = end or spec.backtest.end
    bars = window(series, start, end)
    if len(bars) == 0:
        raise ValueError(f"no {series.symbol} bars between {start or 'the start'} and {end or 'the end'}")
    return bars


def bars_before(series: BarSeries, ts_ns: int) -> BarSeries:
    """The bars of ``series`` that close before ``ts_ns``: what warms up a run starting there."""
    frame = series.frame
    before = frame[frame["ts_event"].to_numpy(dtype=np.int64) < ts_ns].reset_index(drop=True)
    return replace(series, frame=before, recheck=None)


def versions() -> dict[str, str]:
    return {pkg: version(pkg) for pkg in ("nautilus_trader", "ntrader-pipeline", "pandas")}


def run_versions(fill: str, calendar: str = DEFAULT_CALENDAR) -> dict[str, str]:
    """What a run's numbers depend on besides its inputs: packages, the series' exchange calendar
    (its sessions, next-open fills) and fill convention."""
    return {**versions(), "calendar": calendar, "fills": FILL_CONVENTIONS[fill]}


def run_backtest(
    series: BarSeries,
    spec: StrategySpec,
    venue: str,
    run_id: str,
    start: date | None = None,
    end: date | None = None,
    strategy_modules: Sequence[str] = (),
    warmup: bool = False,
) -> BacktestResult:
    """Run ``spec`` over ``series`` (optionally cut to [start, end]) and collect the result.

    ``strategy_modules`` is the operator's allowlist for a spec naming its own classes.
    ``warmup``: the strategy first follows every bar of ``series`` before the window (see above).
    """
    traded = bars_to_trade(series, spec, start, end)
    warm = bars_before(series, traded.first_ns) if warmup else None
    strategy_cls, config_cls = resolve_strategy(spec, strategy_modules)
    instrument = make_equity(traded.symbol, venue, traded.price_precision)
    bar_type = traded.bar_type(venue)
    fill = spec.backtest.fill
    config = build_strategy_config(
        config_cls, spec.config, str(instrument.id), str(bar_type), spec.backtest.risk, spec.source, fill
    )
    balance = spec.backtest.starting_balance
    engine = BacktestEngine(engine_config())
    try:
        engine.add_venue(
            venue=Venue(venue),
            oms_type=OmsType.NETTING,
            base_currency=USD,
            starting_balances=[Money(balance, USD)],
            fee_model=PerShareFeeModel(spec.backtest.fees.schedule()),
            **fill_settings(traded, fill),
            **account_settings(config.allow_short),
        )
        engine.add_instrument(instrument)
        engine.add_data(to_nautilus_bars(traded, venue), sort=False)
        if fill == "next_open":
            from ntrader_pipeline.core.fills import open_ticks

            engine.add_data(open_ticks(traded, instrument.id), sort=False)
        engine.sort_data()  # stable: a bar comes before an open stamped at its own close
        strategy = strategy_cls(config)
        if warm is not None and len(warm):
            strategy.warmup = to_nautilus_bars(warm, venue)
        engine.add_strategy(strategy)
        engine.run()
        fills = _fills_frame(engine)
        risk_events = sorted([*strategy.risk_events, *_refused_orders(engine)], key=lambda e: e["ts_event"])
        engine_account = _engine_account(engine, venue, instrument.id)
    finally:
        engine.dispose()

    equity = mark_to_market(traded.frame, fills, cash_from_fills(fills, balance), fills_at_open=fill == "next_open")
    reconcile(equity, engine_account, len(fills))
    seen = traded if warm is None or not len(warm) else _joined(warm, traded)
    return BacktestResult(
        strategy=spec.name,
        run_id=run_id,
        symbol=traded.symbol,
        bar_type=str(bar_type),
        spec=spec.canonical(),
        starting_balance=balance,
        data_hash=seen.content_hash(),
        bar_count=len(traded),
        start_ns=traded.first_ns,
        end_ns=traded.last_ns,
        price_precision=traded.price_precision,
        equity=equity,
        fills=fills,
        versions={**run_versions(fill, traded.calendar), "account": engine_account["type"]},
        risk_events=risk_events,
        engine_account=engine_account,
    )


def warmup_bars(spec: StrategySpec, strategy_modules: Sequence[str] = ()) -> int:
    """The bars ``spec``'s strategy needs before its first signal (``SignalStrategy.warmup_bars``)."""
    strategy_cls, config_cls = resolve_strategy(spec, strategy_modules)
    config = build_strategy_config(
        config_cls, spec.config, CHECK_INSTRUMENT, CHECK_BAR_TYPE, spec.backtest.risk, spec.source, spec.backtest.fill
    )
    return warmup_of(strategy_cls, config)


def _joined(first: BarSeries, then: BarSeries) -> BarSeries:
    frame = pd.concat([first.frame, then.frame], ignore_index=True)
    return replace(then, frame=frame, recheck=None)


def engine_config() -> BacktestEngineConfig:
    """Quiet, analysis-free engine.

    The per-order notional limit is not given to NautilusTrader's RiskEngine: with bars only (no
    quotes or trade ticks) it skips every MARKET order's risk checks ("no prices"), so the limit
    would never trigger. ``SignalStrategy`` enforces it before submitting and records the denial.
    """
    return BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False)


def fill_settings(series: BarSeries, fill: str = "bar_close") -> dict:
    """Bars with volume 0 (volume unknown) get ``KnownVolumeFillModel``, keyed by when their orders
    are sent (the bar's close, or its open under next_open); a series with volume on every bar
    keeps the engine's default fill model untouched."""
    volume = series.frame["volume"].to_numpy()
    if not (volume == 0).any():
        return {}
    from ntrader_pipeline.core.fills import KnownVolumeFillModel, open_times_ns

    sent = open_times_ns(series) if fill == "next_open" else series.frame["ts_event"].to_numpy()
    return {"fill_model": KnownVolumeFillModel(sent[volume == 0])}


def account_settings(allow_short: bool) -> dict:
    """Long-only runs use a CASH account (no borrowing; the engine checks the cash); short selling
    needs a MARGIN account, at leverage 1."""
    if allow_short:
        return {"account_type": AccountType.MARGIN, "default_leverage": Decimal(1)}
    return {"account_type": AccountType.CASH}


def _refused_orders(engine: BacktestEngine) -> list[dict]:
    """Orders the RiskEngine denied or the venue rejected: recorded, never silently dropped."""
    events = []
    for order in engine.cache.orders():
        if order.status not in (OrderStatus.DENIED, OrderStatus.REJECTED):
            continue
        last = order.events[-1]
        reason = str(getattr(last, "reason", ""))
        if order.status == OrderStatus.DENIED:
            control, action = "risk_engine", "order denied"
        else:
            control, action = "venue", "order rejected"
        events.append(
            {
                "ts_event": last.ts_event,
                "control": control,
                "action": action,
                "detail": f"{order.side_string()} {order.quantity}: {reason}",
            }
        )
    return events


def _engine_account(engine: BacktestEngine, venue: str, instrument_id) -> dict:
    account = engine.portfolio.account(Venue(venue))
    unrealized = engine.portfolio.unrealized_pnl(instrument_id)
    return {
        "type": account.type.name,
        "balance": account.balance_total(USD).as_decimal(),
        "unrealized_pnl": unrealized.as_decimal() if unrealized is not None else Decimal(0),
        "net_position": Decimal(str(engine.portfolio.net_position(instrument_id))),
    }


def reconcile(equity: pd.DataFrame, engine_account: dict, fill_count: int) -> None:
    """Final mark-to-market equity must equal the engine's: for CASH its balance plus the position
    at the last close, for MARGIN its balance plus unrealized PnL. A mismatch is a bug; stop."""
    last = equity.iloc[-1]
    if engine_account["type"] == "CASH":
        expected = float(engine_account["balance"]) + float(engine_account["net_position"]) * last["close"]
    else:
        expected = float(engine_account["balance"] + engine_account["unrealized_pnl"])
    tolerance = RECONCILE_CENTS_PER_FILL * (fill_count + 1)
    if abs(last["equity"] - expected) > tolerance or last["position"] != float(engine_account["net_position"]):
        raise RuntimeError(
            f"equity does not reconcile with the engine's {engine_account['type']} account: "
            f"{last['equity']:.2f} computed, {expected:.2f} by the engine"
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


def cash_from_fills(fills: pd.DataFrame, starting_balance: Decimal) -> pd.DataFrame:
    """Cash after each fill, exactly: starting balance − Σ signed notional − Σ commissions.

    Each fill's notional settles in whole cents (half up), as the engine's account does.
    The first row (ts 0) is the starting balance; the shape ``mark_to_market`` reads.
    """
    cash = [Decimal(starting_balance)]
    for side, quantity, price, commission in zip(
        fills["side"], fills["quantity"], fills["price"], fills["commission"], strict=True
    ):
        notional = (quantity * price).quantize(CENT, rounding=ROUND_HALF_UP)
        cash.append(cash[-1] - side * notional - commission)
    return pd.DataFrame({"ts_event": [0, *fills["ts_event"].tolist()], "cash": cash})


def mark_to_market(
    bars: pd.DataFrame, fills: pd.DataFrame, cash: pd.DataFrame, fills_at_open: bool = False
) -> pd.DataFrame:
    """Equity at every bar close: the cash then, plus the position valued at the close.

    A fill stamped at a bar's time (bar execution fills at the close) counts in that bar. With
    ``fills_at_open`` every fill is at some bar's open, which for contiguous intraday bars is the
    previous bar's close time: a fill counts from the first bar closing after it.
    """
    side: Literal["left", "right"] = "left" if fills_at_open else "right"
    ts = bars["ts_event"].to_numpy(dtype=np.int64)
    close = bars["close"].to_numpy(dtype=np.float64)
    signed_qty = fills["side"].to_numpy(dtype=np.float64) * fills["quantity"].to_numpy(dtype=np.float64)
    filled = np.searchsorted(fills["ts_event"].to_numpy(dtype=np.int64), ts, side=side)
    position = np.concatenate([[0.0], np.cumsum(signed_qty)])[filled]
    changed = np.searchsorted(cash["ts_event"].to_numpy(dtype=np.int64), ts, side=side)
    balance = cash["cash"].to_numpy(dtype=np.float64)[np.maximum(changed - 1, 0)]
    return pd.DataFrame(
        {"ts_event": ts, "close": close, "position": position, "cash": balance, "equity": balance + position * close}
    )
