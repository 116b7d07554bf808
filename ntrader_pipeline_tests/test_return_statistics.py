"""The tearsheet's statistics of daily returns against quantstats and empyrical on fixed data, the
risk-free rate from a strategy file, and the benchmark's own figures on a real run.

Where the libraries define a figure differently from ours the test says how, and docs/conventions.md
Conventions say so too: quantstats' VaR and CVaR are parametric (ours are historical, as
empyrical's), and quantstats groups months and years in UTC (ours in exchange time).
"""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metric_registry import BENCHMARK_OF, BY_NAME
from ntrader_pipeline.core.metrics import (
    benchmark_curve,
    compute_metrics,
    daily_rate,
    daily_returns,
    equity_curve,
    max_streak,
    own_benchmark,
    period_returns,
    relative_figures,
    return_figures,
    trade_stats,
)
from ntrader_pipeline.core.strategy_specs import StrategySpecError, parse_spec
from ntrader_pipeline_tests.support import ORCL_DAILY

ANNUAL_RF = 0.04
RF = daily_rate(ANNUAL_RF)


def fixed_returns(seed: int = 11, n: int = 800) -> tuple[pd.Series, pd.Series]:
    """A strategy that is flat (exactly 0) on about half the days, and its market."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2019-01-02", periods=n, tz="UTC") + pd.Timedelta(hours=21)
    market = pd.Series(rng.standard_t(4, n) * 0.01 + 0.0003, index=index)
    invested = rng.random(n) < 0.5
    strategy = pd.Series(np.where(invested, market.to_numpy() * 1.2 + 0.0002, 0.0), index=index)
    return strategy, market


def curve_of(returns: pd.Series) -> pd.DataFrame:
    """Equity compounding ``returns`` from 100,000, with a first point the day before."""
    stamps = pd.DatetimeIndex([returns.index[0] - pd.Timedelta(days=1)]).append(returns.index)
    equity = 100_000 * np.concatenate([[1.0], np.cumprod(1 + returns.to_numpy())])
    return pd.DataFrame({"timestamp": stamps, "equity": equity, "drawdown": equity / np.maximum.accumulate(equity) - 1})


def naive(returns: pd.Series) -> pd.Series:
    """The series as quantstats reads it: naive dates (21:00 UTC is the same day in New York)."""
    return pd.Series(returns.to_numpy(), index=returns.index.tz_localize(None).normalize())


@pytest.fixture(scope="module")
def figures():
    strategy, market = fixed_returns()
    return strategy, market, return_figures(curve_of(strategy), strategy, RF)


def test_the_daily_curve_gives_back_the_returns_it_was_built_from():
    strategy, _ = fixed_returns()
    rebuilt = daily_returns(curve_of(strategy))
    np.testing.assert_allclose(rebuilt.to_numpy(), strategy.to_numpy(), rtol=1e-9, atol=1e-15)


def test_moments_kelly_and_extremes_match_quantstats(figures):
    strategy, _, got = figures
    r = naive(strategy)
    assert got["skew"] == pytest.approx(qs.stats.skew(r), rel=1e-12)
    assert got["kurtosis"] == pytest.approx(qs.stats.kurtosis(r), rel=1e-12)
    assert got["kelly_criterion"] == pytest.approx(qs.stats.kelly_criterion(r), rel=1e-12)
    assert got["best_day"] == qs.stats.best(r) and got["worst_day"] == qs.stats.worst(r)
    # quantstats' "month" groups January of every year together; its report uses "ME" (year and month)
    assert got["best_month"] == pytest.approx(qs.stats.best(r, aggregate="ME"), rel=1e-12)
    assert got["worst_month"] == pytest.approx(qs.stats.worst(r, aggregate="ME"), rel=1e-12)
    assert got["best_year"] == pytest.approx(qs.stats.best(r, aggregate="YE"), rel=1e-12)
    assert got["worst_year"] == pytest.approx(qs.stats.worst(r, aggregate="YE"), rel=1e-12)
    assert -1 < got["kurtosis"] and 0 < got["kelly_criterion"] < 1


def test_ratios_with_a_risk_free_rate_match_quantstats_and_empyrical(figures):
    strategy, _, got = figures
    r = naive(strategy)
    assert got["sharpe_ratio"] == pytest.approx(qs.stats.sharpe(r, rf=ANNUAL_RF, periods=252), rel=1e-9)
    assert got["sharpe_ratio"] == pytest.approx(empyrical.sharpe_ratio(r, risk_free=RF), rel=1e-9)
    assert got["sortino_ratio"] == pytest.approx(qs.stats.sortino(r, rf=ANNUAL_RF, periods=252), rel=1e-9)
    assert got["sortino_ratio"] == pytest.approx(empyrical.sortino_ratio(r, required_return=RF), rel=1e-9)
    assert got["omega_ratio"] == pytest.approx(qs.stats.omega(r, rf=ANNUAL_RF, periods=252), rel=1e-12)
    assert got["omega_ratio"] == pytest.approx(empyrical.omega_ratio(r, risk_free=RF), rel=1e-12)
    psr = qs.stats.probabilistic_sharpe_ratio(r, rf=ANNUAL_RF, periods=252)
    assert got["probabilistic_sharpe_ratio"] == pytest.approx(psr, rel=1e-9)
    assert got["volatility"] == pytest.approx(empyrical.annual_volatility(r), rel=1e-9)  # no rf in it
    # the rate lowers each one
    without = return_figures(curve_of(strategy), strategy)
    for name in ("sharpe_ratio", "sortino_ratio", "omega_ratio", "probabilistic_sharpe_ratio"):
        assert got[name] < without[name], name
    assert without["sharpe_ratio"] == pytest.approx(qs.stats.sharpe(r), rel=1e-9)


def test_psr_is_the_paper_formula_written_out(figures):
    """Bailey & López de Prado (2012), with the moments written out here in numpy."""
    strategy, _, got = figures
    x = strategy.to_numpy() - RF
    n = len(x)
    sr = x.mean() / x.std(ddof=1)
    r = strategy.to_numpy()
    c = r - r.mean()
    m2, m3, m4 = (c**2).mean(), (c**3).mean(), (c**4).mean()
    skew = m3 / m2**1.5 * math.sqrt(n * (n - 1)) / (n - 2)  # the adjusted Fisher-Pearson estimator
    excess = ((n + 1) * (m4 / m2**2) - 3 * (n - 1)) * (n - 1) / ((n - 2) * (n - 3))
    z = sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (excess + 2) / 4 * sr**2)
    assert got["probabilistic_sharpe_ratio"] == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)), rel=1e-9)


def test_var_and_cvar_are_historical_as_empyrical_not_parametric_as_quantstats(figures):
    strategy, _, got = figures
    r = strategy.to_numpy()
    assert got["value_at_risk"] == pytest.approx(empyrical.value_at_risk(r, cutoff=0.05), rel=1e-12)
    assert got["conditional_value_at_risk"] == pytest.approx(empyrical.conditional_value_at_risk(r), rel=1e-12)
    assert got["value_at_risk"] == pytest.approx(np.quantile(r, 0.05), rel=1e-12)
    assert got["conditional_value_at_risk"] <= got["value_at_risk"] < 0
    assert got["value_at_risk"] != pytest.approx(qs.stats.value_at_risk(naive(strategy)), rel=1e-3)


def test_months_and_years_are_exchange_time():
    """20:30 New York on 31 January is 01:30 UTC on 1 February: still January here."""
    index = pd.DatetimeIndex(["2024-01-30 21:00", "2024-02-01 01:30", "2024-02-01 21:00"], tz="UTC")
    returns = pd.Series([0.01, 0.02, -0.03], index=index)
    months = period_returns(returns, "month")
    assert list(months.index) == [(2024, 1), (2024, 2)]
    assert months.iloc[0] == pytest.approx(1.01 * 1.02 - 1) and months.iloc[1] == pytest.approx(-0.03)


def test_alpha_with_a_risk_free_rate_matches_empyrical():
    strategy, market = fixed_returns(seed=3)
    got = relative_figures(strategy, market, RF)
    alpha, beta = empyrical.alpha_beta(strategy, market, risk_free=RF)
    assert got["alpha"] == pytest.approx(alpha, rel=1e-10) and got["beta"] == pytest.approx(beta, rel=1e-10)
    assert got["alpha"] != pytest.approx(relative_figures(strategy, market)["alpha"], rel=1e-6)


def test_streaks_of_round_trips_match_quantstats_on_the_pnl_in_closing_order():
    pnl = [5.0, 7.0, -1.0, 0.0, 3.0, 4.0, 6.0, -2.0, -3.0, 1.0]
    exits = pd.date_range("2024-01-02", periods=len(pnl), freq="B", tz="UTC")
    ledger = pd.DataFrame({"exit_time": exits[::-1], "realized_pnl": pnl[::-1]})  # given newest first
    got = trade_stats(ledger)
    in_order = pd.Series(pnl, index=exits.tz_localize(None))
    assert got["max_consecutive_wins"] == qs.stats.consecutive_wins(in_order) == 3
    assert got["max_consecutive_losses"] == qs.stats.consecutive_losses(in_order) == 2
    assert max_streak(np.array([], dtype=bool)) == 0


def test_undefined_figures_are_none():
    up = pd.Series([0.01, 0.02, 0.01], index=pd.bdate_range("2024-01-02", periods=3, tz="UTC"))
    got = return_figures(curve_of(up), up)
    assert got["omega_ratio"] is None and got["kelly_criterion"] is None  # no losing day
    assert got["kurtosis"] is None and got["probabilistic_sharpe_ratio"] is None  # too few days
    empty = up.iloc[:0]
    got = return_figures(curve_of(up).iloc[:1], empty)
    assert all(got[n] is None for n in ("skew", "value_at_risk", "best_day", "best_month", "worst_year"))


@pytest.fixture(scope="module")
def orcl():
    return read_bar_csv(ORCL_DAILY, "ORCL")


SPEC = {"strategy": "sma_crossover", "config": {"fast_period": 10, "slow_period": 30}}


def test_a_strategy_file_sets_the_risk_free_rate_and_the_run_keeps_it(orcl):
    spec = parse_spec("rf", {**SPEC, "backtest": {"end": "2004-12-31", "risk_free_rate_pct": 4}}, "rf.yaml")
    result = run_backtest(orcl, spec, "XNAS", "rf")
    assert result.spec["backtest"]["risk_free_rate_pct"] == 4  # stored with the run: reproducible
    m = compute_metrics(result, trade_ledger(result.fills))
    returns = naive(daily_returns(equity_curve(result)))
    bench = naive(daily_returns(benchmark_curve(own_benchmark(result))))
    assert m["risk_free_rate"] == pytest.approx(0.04)
    assert m["sharpe_ratio"] == pytest.approx(qs.stats.sharpe(returns, rf=0.04, periods=252), rel=1e-9)
    assert m["benchmark_sharpe_ratio"] == pytest.approx(qs.stats.sharpe(bench, rf=0.04, periods=252), rel=1e-9)
    assert m["benchmark_sortino_ratio"] == pytest.approx(qs.stats.sortino(bench, rf=0.04, periods=252), rel=1e-9)
    # the benchmark's buy and hold: its own return, CAGR, volatility and drawdown
    assert m["benchmark_cagr"] == pytest.approx(empyrical.cagr(bench), rel=1e-9)
    assert m["benchmark_volatility"] == pytest.approx(empyrical.annual_volatility(bench), rel=1e-9)
    assert m["benchmark_max_drawdown"] == pytest.approx(empyrical.max_drawdown(bench), rel=1e-9)
    assert m["benchmark_return"] == pytest.approx(empyrical.cum_returns_final(bench), rel=1e-9)
    assert m["benchmark_best_year"] == pytest.approx(qs.stats.best(bench, aggregate="YE"), rel=1e-12)
    plain = run_backtest(orcl, parse_spec("z", {**SPEC, "backtest": {"end": "2004-12-31"}}, "z.yaml"), "XNAS", "z")
    zero = compute_metrics(plain, trade_ledger(plain.fills))
    assert zero["risk_free_rate"] == 0.0 and zero["sharpe_ratio"] > m["sharpe_ratio"]
    assert zero["volatility"] == m["volatility"] and zero["beta"] == m["beta"]


def test_every_benchmarked_figure_has_its_benchmark_row_with_the_same_unit():
    for name, twin in BENCHMARK_OF.items():
        assert BY_NAME[twin].unit == BY_NAME[name].unit, name
    assert BENCHMARK_OF["total_return"] == "benchmark_return"


@pytest.mark.parametrize(("value", "accepted"), [(0, True), (4.5, True), (-0.5, True), (60, False), (-20, False)])
def test_the_risk_free_rate_is_a_plausible_annual_percent(value, accepted):
    data = {**SPEC, "backtest": {"risk_free_rate_pct": value}}
    if accepted:
        assert parse_spec("r", data, "r.yaml").backtest.risk_free_rate_pct == value
    else:
        with pytest.raises(StrategySpecError, match="risk_free_rate_pct"):
            parse_spec("r", data, "r.yaml")
