"""When and where orders fill: at the bar's close (bar_close), or at the next bar's open
(next_open) for entries, exits, the exit on a window's last bar and risk-limit exits; on volume-0
bars (index files) whole at that price, not one tick worse because the engine read volume 0 as no
liquidity; and equity marked at every close from the fills."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from ntrader_pipeline.core.backtest import fill_settings, run_backtest
from ntrader_pipeline.core.bars import BarSeries
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.fills import open_times_ns
from ntrader_pipeline.core.strategy_specs import load_spec, parse_spec
from ntrader_pipeline.core.timeframes import Timeframe
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS


@pytest.fixture(scope="module")
def orcl() -> BarSeries:
    return read_bar_csv(ORCL_DAILY, "ORCL")


def sma(fill: str, fast: int = 10, slow: int = 30, risk: dict | None = None):
    backtest = {"fill": fill, **({"risk": risk} if risk else {})}
    config = {"fast_period": fast, "slow_period": slow}
    return parse_spec("sma", {"strategy": "sma_crossover", "config": config, "backtest": backtest}, "sma.yaml")


def bar_of(series: BarSeries, fills: pd.DataFrame) -> np.ndarray:
    """The index of the bar whose open each fill is stamped at (its open time, from the calendar)."""
    opens = open_times_ns(series)
    index = np.searchsorted(opens, fills["ts_event"].to_numpy(dtype=np.int64))
    assert (opens[index] == fills["ts_event"].to_numpy()).all(), "a fill not stamped at a bar's open"
    return index


def test_orders_on_volume_zero_bars_fill_whole_at_the_close(orcl):
    frame = orcl.frame.copy()
    frame["volume"] = 0.0
    index_like = BarSeries(orcl.symbol, orcl.timeframe, frame, orcl.price_precision, orcl.source, orcl.notes)
    spec = load_spec(STRATEGY_CONFIGS / "sma_crossover.yaml")
    with_volume = run_backtest(orcl, spec, "XNAS", "volume", None, date(1999, 12, 31))
    without = run_backtest(index_like, spec, "XNAS", "no-volume", None, date(1999, 12, 31))

    close_at = dict(zip(frame["ts_event"], frame["close"]))
    assert len(without.fills) > 10
    assert all(float(f.price) == close_at[f.ts_event] for f in without.fills.itertuples())
    assert without.fills.groupby("ts_event").size().max() == 1  # one fill per order, not 1 share + the rest
    pd.testing.assert_frame_equal(without.fills, with_volume.fills)
    assert fill_settings(orcl) == {}  # a file with volume keeps the engine's own fill model


def test_next_open_fills_every_order_at_the_open_of_the_bar_after_its_signal(orcl):
    at_close = run_backtest(orcl, sma("bar_close"), "XNAS", "close")
    at_open = run_backtest(orcl, sma("next_open"), "XNAS", "open")
    frame = orcl.frame
    index = bar_of(orcl, at_open.fills)
    assert len(at_open.fills) > 150
    # the price is the bar's open, to the file's last decimal
    assert [f"{p}" for p in at_open.fills["price"]] == [f"{frame['open'].iat[i]:.6f}" for i in index]
    # the signal bar is the one before: where the same strategy fills at the close
    signal_bars = np.searchsorted(frame["ts_event"].to_numpy(), at_close.fills["ts_event"].to_numpy())
    assert sorted(set(index - 1)) == sorted(set(signal_bars))
    # sized at the open: 95 % of the cash then, in whole shares
    first = at_open.fills.iloc[0]
    assert int(first.quantity) == int(100000 * 0.95 / float(first.price))
    assert at_open.versions["fills"] == "market orders decided on a bar fill at the next bar's open"
    assert at_open.spec["backtest"]["fill"] == "next_open"


def test_next_open_exits_on_the_last_bar_at_its_open_and_a_last_bar_signal_never_trades(orcl):
    closes = run_backtest(orcl, sma("bar_close"), "XNAS", "close", None, date(1996, 12, 31)).fills
    exit_ts = int(closes[closes["side"] < 0]["ts_event"].iloc[2])  # an exit signal's bar
    days = pd.to_datetime(orcl.frame["ts_event"], utc=True).dt.tz_convert("America/New_York").dt.date
    signal = int(np.flatnonzero(orcl.frame["ts_event"].to_numpy() == exit_ts)[0])

    # the window ends one bar after the signal: the exit fills at the open of the window's last bar
    until_next = run_backtest(orcl, sma("next_open"), "XNAS", "w", None, days.iat[signal + 1])
    last = until_next.fills.iloc[-1]
    assert last.side == -1 and bar_of(orcl, until_next.fills)[-1] == signal + 1
    assert float(last.price) == orcl.frame["open"].iat[signal + 1]
    assert until_next.equity["position"].iloc[-1] == 0

    # the window ends on the signal's bar: there is no next open, so nothing fills and the position stays
    until_signal = run_backtest(orcl, sma("next_open"), "XNAS", "w", None, days.iat[signal])
    assert until_signal.fills.iloc[-1].side == 1 and until_signal.equity["position"].iloc[-1] > 0


def test_next_open_kill_switch_flattens_at_the_next_open(orcl):
    result = run_backtest(
        orcl, sma("next_open", risk={"max_drawdown_pct": 30}), "XNAS", "kill", None, date(2003, 12, 31)
    )
    halt = [e for e in result.risk_events if e["control"] == "max_drawdown_pct"]
    assert len(halt) == 1 and halt[0]["detail"].endswith("at the next open")
    trigger = int(np.flatnonzero(orcl.frame["ts_event"].to_numpy() == halt[0]["ts_event"])[0])
    after = result.fills[result.fills["ts_event"] > halt[0]["ts_event"]]
    assert len(after) == 1 and after["side"].iat[0] == -1  # the flattening, then nothing: halted
    assert bar_of(orcl, after)[0] == trigger + 1
    assert float(after["price"].iat[0]) == orcl.frame["open"].iat[trigger + 1]
    assert result.equity["position"].iat[trigger] > 0 and (result.equity["position"].iloc[trigger + 1 :] == 0).all()


def test_next_open_exit_split_under_the_notional_limit_fills_every_piece_at_the_open(orcl):
    spec = parse_spec(
        "sma",
        {
            "strategy": "sma_crossover",
            "config": {"fast_period": 10, "slow_period": 30, "sizing": "fixed", "fixed_quantity": 16000},
            "backtest": {"fill": "next_open", "risk": {"max_notional_per_order": 40000}},
        },
        "sma.yaml",
    )
    result = run_backtest(orcl, spec, "XNAS", "split", None, date(1995, 12, 31))
    exits = result.fills[result.fills["side"] < 0]
    assert len(exits) == 2 and exits["ts_event"].nunique() == 1  # one exit in two orders
    bar = bar_of(orcl, exits)[0]
    assert all(float(p) == orcl.frame["open"].iat[bar] for p in exits["price"])
    assert all(q * p <= 40000 for q, p in zip(exits["quantity"], exits["price"], strict=True))
    denied = [e for e in result.risk_events if e["control"] == "max_notional_per_order"]
    assert denied  # a later entry is refused, priced at the open it would have filled at
    bar = int(np.flatnonzero(open_times_ns(orcl) == denied[0]["ts_event"])[0])
    assert f"16000 shares at {orcl.frame['open'].iat[bar]:.6f} is" in denied[0]["detail"]


def minute_bars(orcl: BarSeries) -> BarSeries:
    """780 contiguous one-minute bars over two sessions, with ORCL's daily prices as their values."""
    minute = 60_000_000_000
    first = [pd.Timestamp(f"2024-01-0{d} 14:31", tz="UTC").value for d in (2, 3)]
    ts = np.concatenate([start + minute * np.arange(390) for start in first])
    frame = orcl.frame.iloc[: len(ts)].copy()
    frame["ts_event"] = ts
    return BarSeries("ORCL", Timeframe.MIN1, frame.reset_index(drop=True), orcl.price_precision)


def test_next_open_on_contiguous_minute_bars_marks_each_fill_from_the_bar_it_opens(orcl):
    """A minute bar opens at the previous bar's close time: its fills still count from its own close."""
    bars = minute_bars(orcl)
    result = run_backtest(bars, sma("next_open"), "XNAS", "minute")
    assert len(result.fills) >= 10
    frame = bars.frame
    ts = frame["ts_event"].to_numpy()
    for fill in result.fills.itertuples():
        bar = int(np.flatnonzero(ts - 60_000_000_000 == fill.ts_event)[0])
        assert float(fill.price) == frame["open"].iat[bar]
    # equity by hand: the cash after every fill at or before the bar's open, plus the position at its close
    cash, position, expected = 100000.0, 0.0, []
    fills = list(result.fills.itertuples())
    for bar_ts, close in zip(ts, frame["close"], strict=True):
        while fills and fills[0].ts_event < bar_ts:
            fill = fills.pop(0)
            notional = float((fill.quantity * fill.price).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP"))
            cash -= fill.side * notional + float(fill.commission)
            position += fill.side * float(fill.quantity)
        expected.append(cash + position * close)
    assert result.equity["equity"].to_numpy() == pytest.approx(np.array(expected), abs=1e-6)


def test_next_open_on_volume_zero_bars_fills_whole_at_the_open(orcl):
    frame = orcl.frame.copy()
    frame["volume"] = 0.0
    index_like = BarSeries(orcl.symbol, orcl.timeframe, frame, orcl.price_precision, orcl.source, orcl.notes)
    with_volume = run_backtest(orcl, sma("next_open"), "XNAS", "volume", None, date(1999, 12, 31))
    without = run_backtest(index_like, sma("next_open"), "XNAS", "no-volume", None, date(1999, 12, 31))
    assert without.fills.groupby("ts_event").size().max() == 1
    pd.testing.assert_frame_equal(without.fills, with_volume.fills)
