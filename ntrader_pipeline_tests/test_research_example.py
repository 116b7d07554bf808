"""The worked example of docs/research.md is the current research's output: the shipped sweep and
walk-forward on the bundled ORCL bars are run again and every figure the page shows is compared
with what they give today (warm walk-forward windows included)."""

from __future__ import annotations

import re
from itertools import count
from pathlib import Path

import pytest

from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.metric_registry import display
from ntrader_pipeline.core.research import overfitting_summary, run_sweep, run_walk_forward, sweep_rows
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "research.md"
SWEEP_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\S+%)\s+(\S+%)\s+(\d+)", re.MULTILINE)
WINDOW_ROW = re.compile(
    r"^(\S+) → (\S+)\s+(\S+) → (\S+)\s+fast (\d+), slow (\d+)\s+(\S+)\s+(\S+)\s+(\S+%)$", re.MULTILINE
)


@pytest.fixture(scope="module")
def example() -> str:
    text = PAGE.read_text()
    return text[text.index("**Worked example**") :]


@pytest.fixture(scope="module")
def shipped():
    return read_bar_csv(ORCL_DAILY, "ORCL"), load_spec(STRATEGY_CONFIGS / "sma_crossover.yaml")


@pytest.mark.slow  # 15 sets over 20 years, then 17 windows of 15 warm in-sample runs each: minutes
def test_the_worked_sweep_and_walk_forward_show_what_they_give_today(example, shipped):
    series, spec = shipped
    ids = count()
    runs = run_sweep(series, spec, "XNAS", lambda: f"s{next(ids)}", processes=None)
    rows = {row["rank"]: row for row in sweep_rows(runs, "sharpe_ratio")}
    shown = SWEEP_ROW.findall(example)
    assert len(shown) >= 4 and f"The sweep prints the {len(rows)} sets" in example
    for rank, fast, slow, sharpe, total, drawdown, trades in shown:
        row = rows[int(rank)]
        assert row["params"] == {"fast_period": int(fast), "slow_period": int(slow)}, rank
        figures = [display(n, row[n]) for n in ("sharpe_ratio", "total_return", "max_drawdown", "trade_count")]
        assert figures == [sharpe, total, drawdown, trades], rank
    summary = overfitting_summary(runs, "sharpe_ratio")
    assert f"deflated Sharpe ratio of the best set: {summary['dsr']:.1%}" in example
    assert f"probability of backtest overfitting: {summary['pbo']:.1%}" in example
    benchmark = display("benchmark_return", rows[1]["benchmark_return"]).replace("%", " %")
    assert f"Buy and hold made {benchmark} over the same bars" in example

    wf = run_walk_forward(series, spec, "XNAS", lambda: f"w{next(ids)}", processes=None)
    windows = WINDOW_ROW.findall(example)
    assert len(windows) >= 2 and f"({len(wf.windows)} windows in all)" in example
    by_start = {w.window.out_start.isoformat(): w for w in wf.windows}
    for in_start, in_end, out_start, out_end, fast, slow, is_sharpe, oos_sharpe, oos_return in windows:
        w = by_start[out_start]
        dates = [d.isoformat() for d in (w.window.in_start, w.window.in_end, w.window.out_end)]
        assert dates == [in_start, in_end, out_end], out_start
        assert w.params == {"fast_period": int(fast), "slow_period": int(slow)}, out_start
        assert display("sharpe_ratio", w.in_sample["sharpe_ratio"]) == is_sharpe, out_start
        assert display("sharpe_ratio", w.out_of_sample["sharpe_ratio"]) == oos_sharpe, out_start
        assert display("total_return", w.out_of_sample["total_return"]) == oos_return, out_start
    m = wf.metrics
    stitched = (
        f"total return {display('total_return', m['total_return'])} "
        f"(buy and hold {display('benchmark_return', m['benchmark_return'])}), "
        f"Sharpe {display('sharpe_ratio', m['sharpe_ratio'])},\n"
        f"max drawdown {display('max_drawdown', m['max_drawdown'])}, {m['trade_count']} trades"
    )
    assert stitched in example
    assert f"Out-of-sample exposure is {round(m['exposure'] * 100)} %" in example
    assert f"(`warmup_sessions`: {wf.result.spec['research']['warmup_sessions']} for a slow" in PAGE.read_text()
