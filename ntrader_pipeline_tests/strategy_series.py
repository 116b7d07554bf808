"""Hand-made bar series for strategy tests, and a shortcut to run a YAML-shaped spec on them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ntrader_pipeline.core.backtest import BacktestResult, run_backtest
from ntrader_pipeline.core.bars import BarSeries, Timeframe
from ntrader_pipeline.core.strategy_specs import parse_spec

VENUE = "XNAS"


def daily_series(closes, symbol: str = "TEST", volume: float = 1e9) -> BarSeries:
    """Daily bars closing at ``closes`` (rounded to cents) on consecutive weekdays, open = high =
    low = close so the typical price is the close; volume so large no order is split."""
    close = np.round(np.asarray(closes, dtype=np.float64), 2)
    days = pd.bdate_range("2020-01-02", periods=len(close))
    ts = (days.tz_localize("America/New_York") + pd.Timedelta(hours=16)).tz_convert("UTC").as_unit("ns").asi8
    frame = pd.DataFrame({"ts_event": ts, "open": close, "high": close, "low": close, "close": close, "volume": volume})
    return BarSeries(symbol, Timeframe.DAILY, frame, 2)


def run(
    series: BarSeries, strategy: str, config: dict | None = None, backtest: dict | None = None, **extra: Any
) -> BacktestResult:
    data = {"strategy": strategy, "config": config or {}, "backtest": backtest or {}, **extra}
    spec = parse_spec(f"test_{strategy}", data, f"{strategy}.yaml")
    return run_backtest(series, spec, VENUE, "test-run")


def bar_index(series: BarSeries, ts_event: int) -> int:
    return int(np.searchsorted(series.frame["ts_event"].to_numpy(), ts_event))
