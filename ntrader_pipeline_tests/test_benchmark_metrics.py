"""Benchmark-relative figures against empyrical on fixed data, and on real runs against buy and
hold of the same symbol or another one."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metrics import benchmark_for, compute_metrics, relative_figures
from ntrader_pipeline.core.strategy_specs import StrategySpecError, parse_spec
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY


def fixed_returns(seed: int = 5, n: int = 750) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2020-01-02", periods=n, tz="UTC") + pd.Timedelta(hours=21)
    bench = pd.Series(rng.normal(0.0004, 0.012, n), index=index)
    strategy = 0.0002 + 0.7 * bench + pd.Series(rng.normal(0, 0.006, n), index=index)
    return strategy, bench


def test_relative_figures_match_empyrical():
    r, b = fixed_returns()
    got = relative_figures(r, b)
    alpha, beta = empyrical.alpha_beta(r, b)
    assert got["alpha"] == pytest.approx(alpha, rel=1e-10)
    assert got["beta"] == pytest.approx(beta, rel=1e-10)
    assert got["information_ratio"] == pytest.approx(empyrical.excess_sharpe(r, b) * math.sqrt(252), rel=1e-10)
    assert got["correlation"] == pytest.approx(r.corr(b), rel=1e-10)
    assert got["up_capture"] == pytest.approx(empyrical.up_capture(r, b), rel=1e-10)
    assert got["down_capture"] == pytest.approx(empyrical.down_capture(r, b), rel=1e-10)
    assert 0.6 < got["beta"] < 0.8


def test_tracking_error_is_the_annualised_std_of_active_returns_as_numpy_empyrical_and_quantstats_have_it():
    import quantstats as qs

    r, b = fixed_returns()
    got = relative_figures(r, b)
    active = r.to_numpy() - b.to_numpy()
    by_hand = math.sqrt(np.sum((active - active.mean()) ** 2) / (len(active) - 1)) * math.sqrt(252)
    assert got["tracking_error"] == pytest.approx(by_hand, rel=1e-12)
    assert got["tracking_error"] == pytest.approx(empyrical.annual_volatility(r - b), rel=1e-10)
    # quantstats has no tracking-error function: its information ratio divides by the same std, per day
    naive = r.index.tz_localize(None)  # quantstats compares against tz-naive dates
    qs_ir = qs.stats.information_ratio(r.set_axis(naive), b.set_axis(naive))
    assert got["information_ratio"] == pytest.approx(qs_ir * math.sqrt(252), rel=1e-10)
    assert got["information_ratio"] * got["tracking_error"] == pytest.approx(active.mean() * 252, rel=1e-10)
    assert relative_figures(b, b)["tracking_error"] == 0.0 and relative_figures(b, b)["information_ratio"] is None


def test_only_common_days_count_and_short_series_are_undefined():
    r, b = fixed_returns(n=40)
    got = relative_figures(r.iloc[5:], b.iloc[:30])
    alpha, beta = empyrical.alpha_beta(r.iloc[5:30], b.iloc[5:30])
    assert got["beta"] == pytest.approx(beta) and got["alpha"] == pytest.approx(alpha)
    assert all(v is None for v in relative_figures(r.iloc[:1], b.iloc[:1]).values())


SPEC = {"strategy": "sma_crossover", "config": {"fast_period": 10, "slow_period": 30}}


@pytest.fixture(scope="module")
def orcl():
    return read_bar_csv(ORCL_DAILY, "ORCL")


def test_the_default_benchmark_is_buy_and_hold_of_the_symbol(orcl):
    result = run_backtest(orcl, parse_spec("sma", SPEC, "test"), "XNAS", "bh")
    m = compute_metrics(result, trade_ledger(result.fills))
    closes = orcl.frame["close"]
    assert m["benchmark"] == "ORCL"
    assert m["benchmark_return"] == pytest.approx(closes.iloc[-1] / closes.iloc[0] - 1, rel=1e-12)
    assert m["beta"] is not None and 0 < m["beta"] < 1  # in the market part of the time
    assert m["correlation"] is not None and 0 < m["correlation"] < 1


def test_another_stored_symbol_as_benchmark(orcl):
    nvda = read_bar_csv(NVDA_DAILY, "NVDA")
    spec = parse_spec("sma", {**SPEC, "benchmark": "NVDA"}, "test")
    result = run_backtest(orcl, spec, "XNAS", "vs-nvda")
    read = {"NVDA": nvda.frame[["ts_event", "close"]]}.get
    m = compute_metrics(result, trade_ledger(result.fills), benchmark_for(result, read))
    first = max(orcl.frame["ts_event"].iloc[0], nvda.frame["ts_event"].iloc[0])
    in_span = nvda.frame[nvda.frame["ts_event"] >= first]["close"]
    assert m["benchmark"] == "NVDA"
    assert m["benchmark_return"] == pytest.approx(in_span.iloc[-1] / in_span.iloc[0] - 1, rel=1e-12)
    unknown = run_backtest(orcl, parse_spec("s", {**SPEC, "benchmark": "SPY"}, "t"), "XNAS", "x")
    assert unknown.spec["benchmark"] == "SPY"  # stored with the run, so reproduce measures the same
    with pytest.raises(ValueError, match="benchmark SPY: no stored bars"):
        benchmark_for(unknown, lambda symbol: None)


def test_a_benchmark_must_look_like_a_symbol():
    with pytest.raises(StrategySpecError, match="benchmark"):
        parse_spec("sma", {**SPEC, "benchmark": "spy; rm"}, "file.yaml")
