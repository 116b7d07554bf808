"""Metric definitions on hand-built equity with known answers, and against NautilusTrader's statistics."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.analysis import CAGR, CalmarRatio, MaxDrawdown, ReturnsVolatility, SharpeRatio, SortinoRatio

from ntrader_pipeline.core.backtest import FILL_COLUMNS, BacktestResult, run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metrics import compute_metrics, daily_returns, equity_curve, metric_differences
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS

NO_FILLS = pd.DataFrame(columns=FILL_COLUMNS)


def held_result(stamps: pd.DatetimeIndex, closes: list[float], shares: float = 1000.0) -> BacktestResult:
    """A buy-and-hold account: ``shares`` held from before the first bar, no cash, no fills."""
    ts = stamps.as_unit("ns").asi8
    close = np.array(closes, dtype=np.float64)
    equity = pd.DataFrame({"ts_event": ts, "close": close, "position": shares, "cash": 0.0, "equity": close * shares})
    return BacktestResult(
        strategy="hold",
        run_id="hand",
        symbol="TEST",
        bar_type="TEST.XNAS-1-DAY-LAST-EXTERNAL",
        spec={},
        starting_balance=Decimal(100000),
        data_hash="0" * 64,
        bar_count=len(ts),
        start_ns=int(ts[0]),
        end_ns=int(ts[-1]),
        price_precision=2,
        equity=equity,
        fills=NO_FILLS,
    )


def daily_closes(closes: list[float]) -> BacktestResult:
    days = pd.bdate_range("2024-03-04", periods=len(closes)) + pd.Timedelta(
        hours=21
    )  # 21:00 UTC: same New York date in EST and EDT
    return held_result(days.tz_localize("UTC"), closes)


def test_one_twenty_percent_drawdown_with_a_known_recovery():
    closes = [100.0, 110.0, 120.0, 108.0, 96.0, 100.0, 115.0, 120.0, 125.0]
    result = daily_closes(closes)
    stamps = pd.to_datetime(result.equity["ts_event"], utc=True)
    m = compute_metrics(result, trade_ledger(NO_FILLS))

    assert m["max_drawdown"] == pytest.approx(-0.20, abs=1e-12)  # 120 → 96
    assert m["max_drawdown_peak"] == stamps[2].isoformat()
    assert m["max_drawdown_trough"] == stamps[4].isoformat()
    assert m["max_drawdown_recovery"] == stamps[7].isoformat()  # first close back at 120
    assert m["max_drawdown_duration_days"] == (stamps[7] - stamps[2]).days
    assert m["total_return"] == pytest.approx(0.25, abs=1e-12)
    assert m["benchmark_return"] == pytest.approx(0.25, abs=1e-12)
    assert m["daily_returns"] == 8
    assert m["cagr"] == pytest.approx(1.25 ** (252 / 8) - 1, rel=1e-12)
    assert m["calmar_ratio"] == pytest.approx(m["cagr"] / 0.20, rel=1e-12)
    assert m["exposure"] == 1.0
    assert m["trade_count"] == 0


def test_a_drawdown_never_recovered_has_no_recovery_and_lasts_to_the_end():
    result = daily_closes([100.0, 120.0, 96.0, 110.0])
    stamps = pd.to_datetime(result.equity["ts_event"], utc=True)
    m = compute_metrics(result, trade_ledger(NO_FILLS))
    assert m["max_drawdown"] == pytest.approx(-0.20, abs=1e-12)
    assert m["max_drawdown_recovery"] is None
    assert m["max_drawdown_duration_days"] == (stamps[3] - stamps[1]).days


def test_undefined_ratios_are_none_not_zero_or_infinite():
    flat = compute_metrics(daily_closes([50.0] * 6), trade_ledger(NO_FILLS))
    assert flat["sharpe_ratio"] is None and flat["sortino_ratio"] is None and flat["calmar_ratio"] is None
    assert flat["volatility"] == 0.0 and flat["max_drawdown"] == 0.0 and flat["max_drawdown_peak"] is None
    for key in (
        "win_rate",
        "profit_factor",
        "expectancy",
        "average_win",
        "average_loss",
        "largest_win",
        "largest_loss",
    ):
        assert flat[key] is None, key
    rising = compute_metrics(daily_closes([50.0, 51.0, 53.0, 54.0]), trade_ledger(NO_FILLS))
    assert rising["sortino_ratio"] is None  # no down day: no downside deviation
    assert rising["sharpe_ratio"] is not None and rising["sharpe_ratio"] > 0
    single = compute_metrics(daily_closes([50.0]), trade_ledger(NO_FILLS))
    assert single["daily_returns"] == 0 and single["cagr"] is None and single["volatility"] is None
    assert all(not (isinstance(v, float) and not math.isfinite(v)) for v in [*flat.values(), *single.values()])


def test_intraday_max_drawdown_is_bar_level_while_nautilus_compounds_daily_closes():
    """Two days of 1-minute bars whose worst point is inside day 1: bar level sees it, daily closes do not."""
    day1 = pd.date_range("2024-03-04 14:31", periods=4, freq="min", tz="UTC")
    day2 = pd.date_range("2024-03-05 14:31", periods=4, freq="min", tz="UTC")
    closes = [100.0, 80.0, 95.0, 100.0, 101.0, 99.0, 100.0, 90.0]
    m = compute_metrics(held_result(day1.append(day2), closes), trade_ledger(NO_FILLS))
    assert m["max_drawdown"] == pytest.approx(-0.20, abs=1e-12)  # 100 → 80 inside day 1
    assert m["daily_returns"] == 1  # one change of daily close: 100 → 90
    assert m["max_drawdown_daily"] == pytest.approx(-0.10, abs=1e-12)


@pytest.fixture(scope="module")
def orcl_run():
    series = read_bar_csv(ORCL_DAILY, "ORCL")
    spec = load_spec(STRATEGY_CONFIGS / "sma_crossover.yaml")
    result = run_backtest(series, spec, "XNAS", "orcl", None, date(2002, 12, 31))
    return result, compute_metrics(result, trade_ledger(result.fills))


def test_our_definitions_match_nautilus_statistics_on_daily_returns(orcl_run):
    result, m = orcl_run
    returns = daily_returns(equity_curve(result))
    r = returns.to_numpy()
    by_ns = {int(ts.value): float(v) for ts, v in returns.items()}
    mean, std = r.mean(), r.std(ddof=1)
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    nautilus = {
        cls.__name__: cls().calculate_from_returns(by_ns)
        for cls in (SharpeRatio, SortinoRatio, ReturnsVolatility, CAGR, CalmarRatio, MaxDrawdown)
    }
    # the stated formulas, written out here ...
    assert nautilus["SharpeRatio"] == pytest.approx(mean / std * math.sqrt(252), rel=1e-9)
    assert nautilus["SortinoRatio"] == pytest.approx(mean / downside * math.sqrt(252), rel=1e-9)
    assert nautilus["ReturnsVolatility"] == pytest.approx(std * math.sqrt(252), rel=1e-9)
    # ... and our figures (bar-level equity; daily bars here) equal NautilusTrader's
    assert m["sharpe_ratio"] == pytest.approx(nautilus["SharpeRatio"], rel=1e-9)
    assert m["sortino_ratio"] == pytest.approx(nautilus["SortinoRatio"], rel=1e-9)
    assert m["volatility"] == pytest.approx(nautilus["ReturnsVolatility"], rel=1e-9)
    assert m["cagr"] == pytest.approx(nautilus["CAGR"], rel=1e-9)
    assert m["calmar_ratio"] == pytest.approx(nautilus["CalmarRatio"], rel=1e-9)
    assert m["max_drawdown"] == pytest.approx(nautilus["MaxDrawdown"], rel=1e-9)
    assert m["max_drawdown"] < -0.05 and m["trade_count"] > 5  # a run with something to measure


def test_metric_differences_name_each_changed_metric():
    assert metric_differences({"run_id": "a", "x": 1.0, "y": None}, {"run_id": "b", "x": 1.0, "y": None}) == []
    assert metric_differences({"x": 1.0, "y": 2.0}, {"x": 1.0, "y": 2.5, "z": 3}) == [("y", 2.0, 2.5), ("z", None, 3)]
