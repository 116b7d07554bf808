"""Sweep and walk-forward numbers against independent computations: each set run alone from a
plain spec, the best set picked by hand on in-sample runs, the stitched return compounded from
the out-of-sample runs, and each window's entries against the chosen set's continuous run."""

from __future__ import annotations

import math
from datetime import date
from itertools import count

import numpy as np
import pandas as pd
import pytest

from ntrader_pipeline.core.backtest import run_backtest, window
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metrics import compute_metrics, daily_returns, equity_curve
from ntrader_pipeline.core.overfitting import deflated_sharpe_ratio, probability_of_backtest_overfitting
from ntrader_pipeline.core.research import exchange_days, overfitting_summary, run_sweep, run_walk_forward, sweep_rows
from ntrader_pipeline.core.strategy_specs import parse_spec
from ntrader_pipeline_tests.support import ORCL_DAILY
from ntrader_pipeline_tests.test_overfitting import pandas_pbo, scipy_dsr

GRID = {"fast_period": [5, 10], "slow_period": [20, 40]}
FILE = {
    "strategy": "sma_crossover",
    "config": {"fast_period": 10, "slow_period": 30},
    "backtest": {"start": "2004-01-01", "end": "2008-12-31"},
    "sweep": {"grid": GRID, "constraints": ["fast_period < slow_period"], "metric": "sharpe_ratio"},
    "walk_forward": {"in_sample": 400, "out_of_sample": 250},
}


@pytest.fixture(scope="module")
def orcl():
    return read_bar_csv(ORCL_DAILY, "ORCL")


@pytest.fixture(scope="module")
def spec():
    return parse_spec("sma_grid", FILE, "sma_grid.yaml")


def ids():
    numbers = count(1)
    return lambda: f"r{next(numbers)}"


def alone(orcl, params, start=date(2004, 1, 1), end=date(2008, 12, 31), balance=100000, warmup=False, fill=None):
    """One set from a plain file, without the sweep machinery."""
    backtest = {"starting_balance": balance, **({"fill": fill} if fill else {})}
    plain = parse_spec("alone", {"strategy": "sma_crossover", "config": params, "backtest": backtest}, "alone.yaml")
    result = run_backtest(orcl, plain, "XNAS", "alone", start, end, warmup=warmup)
    return result, compute_metrics(result, trade_ledger(result.fills))


def entries(fills) -> list[int]:
    """Times of the fills that open or add to a position (a window's or a run's)."""
    position, out = 0, []
    for fill in fills.itertuples():
        signed = fill.side * int(fill.quantity)
        if position == 0 or (position > 0) == (signed > 0):
            out.append(int(fill.ts_event))
        position += signed
    return sorted(set(out))


def exchange_date(ns: int) -> date:
    return pd.Timestamp(ns, tz="UTC").tz_convert("America/New_York").date()


def test_every_set_of_a_sweep_equals_the_same_set_run_alone(orcl, spec):
    runs = run_sweep(orcl, spec, "XNAS", ids())
    assert [r.key for r in runs] == [f"sma_grid[fast_period={f},slow_period={s}]" for f in (5, 10) for s in (20, 40)]
    for run in runs:
        _, metrics = alone(orcl, run.params)
        for name in ("total_return", "sharpe_ratio", "max_drawdown", "trade_count", "final_equity", "beta"):
            assert run.metrics[name] == metrics[name], (run.key, name)
    rows = sweep_rows(runs, "sharpe_ratio")
    sharpes = [r["sharpe_ratio"] for r in rows]
    assert sharpes == sorted(sharpes, reverse=True) and [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert {r["run_id"] for r in rows} == {"r1", "r2", "r3", "r4"}

    summary = overfitting_summary(runs, "sharpe_ratio")
    returns = [r.returns.to_numpy() for r in runs]
    per_day = [x.mean() / x.std(ddof=1) for x in returns]
    best = int(np.argmax(per_day))
    assert summary["dsr"] == pytest.approx(deflated_sharpe_ratio(returns[best], np.array(per_day)).dsr)
    assert summary["pbo"] == pytest.approx(
        probability_of_backtest_overfitting(np.column_stack(returns), summary["pbo_blocks"]).pbo
    )
    assert summary["trials"] == 4 and 0 <= summary["pbo"] <= 1


def test_walk_forward_picks_on_in_sample_bars_and_stitches_out_of_sample(orcl, spec):
    wf = run_walk_forward(orcl, spec, "XNAS", ids())
    bars = window(orcl, date(2004, 1, 1), date(2008, 12, 31))
    # the first in-sample window begins once the slowest average (40 bars) has its bars
    assert wf.windows[0].window.in_start == exchange_days(bars)[40]
    assert len(wf.windows) >= 2
    chained, balance, rows, trips = 1.0, 100000.0, 0, 0
    for w in wf.windows:
        # the pick, by hand: every set run on the in-sample dates alone (warmed on the bars before), best Sharpe
        trials = {
            tuple(p.items()): alone(bars, p, w.window.in_start, w.window.in_end, warmup=True)[1]["sharpe_ratio"]
            for p in spec.sweep.parameter_sets()
        }
        best = max(trials, key=lambda k: -math.inf if trials[k] is None else trials[k])
        assert w.params == dict(best)
        assert w.window.out_start > w.window.in_end
        result, oos = alone(bars, w.params, w.window.out_start, w.window.out_end, round(balance, 2), warmup=True)
        assert w.out_of_sample["total_return"] == pytest.approx(oos["total_return"], abs=1e-12)
        chained *= 1 + oos["total_return"]
        rows += len(result.equity)
        # its round trips, plus the position still open at the window's end, closed at its last close
        trips += oos["trade_count"] + int(result.equity["position"].iloc[-1] != 0)
        balance = float(result.equity["equity"].iloc[-1])
    assert wf.metrics["total_return"] == pytest.approx(chained - 1, rel=1e-6)
    assert wf.metrics["bars"] == rows
    assert wf.metrics["trade_count"] == trips and trips > len(wf.windows)
    assert len(daily_returns(equity_curve(wf.result))) == wf.metrics["daily_returns"]
    assert wf.result.data_hash == bars.content_hash()  # every bar the walk-forward read


@pytest.mark.parametrize("fill", ["bar_close", "next_open"])
def test_out_of_sample_entries_equal_the_chosen_sets_continuous_run_window_by_window(orcl, fill):
    """Windows start warm: each enters exactly where the chosen set, run on all the bars, enters
    in the window's dates (it may already hold a position there, so times are compared, not sizes)."""
    wide = {**FILE, "backtest": {"start": "2000-01-01", "end": "2008-12-31", "fill": fill}}
    wide["sweep"] = {**FILE["sweep"], "grid": {"fast_period": [5, 20], "slow_period": [60, 120]}}
    wide["walk_forward"] = {"in_sample": 252, "out_of_sample": 126}
    spec = parse_spec("sma_wide", wide, "sma_wide.yaml")
    wf = run_walk_forward(orcl, spec, "XNAS", ids())
    bars = window(orcl, date(2000, 1, 1), date(2008, 12, 31))
    continuous = {}
    compared = 0
    for i, w in enumerate(wf.windows, start=1):
        key = tuple(w.params.items())
        if key not in continuous:
            continuous[key] = entries(alone(bars, w.params, None, None, fill=fill)[0].fills)
        expected = [t for t in continuous[key] if w.window.out_start <= exchange_date(t) <= w.window.out_end]
        fills = wf.result.fills
        got = entries(fills[fills["position_id"].str.startswith(f"W{i}-")])
        assert got == expected, (i, w.params, fill)
        compared += len(expected)
    assert len(wf.windows) >= 10 and compared >= 10


# --- degenerate sweeps: undefined statistics say why -------------------------------------------


def sweep_of(orcl, grid: dict, start: str, end: str):
    file = {**FILE, "backtest": {"start": start, "end": end}, "sweep": {"grid": grid, "metric": "sharpe_ratio"}}
    file.pop("walk_forward")
    return run_sweep(orcl, parse_spec("edge", file, "edge.yaml"), "XNAS", ids())


def test_a_set_that_never_trades_is_left_out_of_dsr_and_pbo_and_the_n_used_is_reported(orcl):
    runs = sweep_of(orcl, {"fast_period": [10], "slow_period": [20, 40, 800]}, "2004-01-01", "2006-12-31")
    assert [r.metrics["trade_count"] for r in runs][2] == 0  # 800 sessions never fill the slow average
    summary = overfitting_summary(runs, "sharpe_ratio")
    assert summary["trials"] == 3 and summary["trials_used"] == 2
    assert summary["trials_left_out"].startswith("1 of 3 sets have no defined Sharpe ratio")
    assert "edge[fast_period=10,slow_period=800]" in summary["trials_left_out"]
    traded = [r.returns.to_numpy() for r in runs[:2]]
    sharpes = np.array([x.mean() / x.std(ddof=1) for x in traded])
    assert summary["dsr"] == pytest.approx(scipy_dsr(traded[int(np.argmax(sharpes))], sharpes), abs=1e-9)
    frame = pd.concat([r.returns.rename(i) for i, r in enumerate(runs[:2])], axis=1).dropna()
    assert summary["pbo"] == pytest.approx(pandas_pbo(frame, summary["pbo_blocks"]), abs=1e-12)
    assert summary["dsr_reason"] is None and summary["pbo_reason"] is None


def test_pbo_is_undefined_when_the_days_cannot_make_blocks_of_twenty_sessions(orcl):
    runs = sweep_of(orcl, {"fast_period": [2, 3], "slow_period": [5, 8]}, "2004-01-01", "2004-02-13")
    assert {len(r.returns) for r in runs} == {29} and all(len(r.result.fills) > 0 for r in runs)
    summary = overfitting_summary(runs, "sharpe_ratio")
    assert summary["pbo"] is None and summary["pbo_blocks"] is None
    assert summary["pbo_reason"] == "29 daily returns cannot make 2 blocks of 20 sessions (PBO needs at least 40)"
    assert summary["dsr"] is not None and summary["trials_used"] == 4


def test_sets_with_the_same_returns_or_without_trades_have_no_pbo(orcl):
    identical = sweep_of(orcl, {"fixed_quantity": [100, 200, 300]}, "2004-01-01", "2006-12-31")  # sized by equity
    summary = overfitting_summary(identical, "sharpe_ratio")
    assert summary["pbo"] is None
    assert summary["pbo_reason"] == "all 3 sets have the same daily returns: there is no best set to pick"
    idle = sweep_of(orcl, {"fast_period": [10], "slow_period": [800, 900]}, "2004-01-01", "2006-12-31")
    summary = overfitting_summary(idle, "sharpe_ratio")
    assert summary["pbo"] is None and summary["dsr"] is None and summary["trials_used"] == 0
    assert (
        summary["pbo_reason"]
        == summary["dsr_reason"]
        == ("0 of 2 sets have a defined Sharpe ratio; both figures need two")
    )
