"""Cost of the per-run reports: our HTML tearsheet vs NautilusTrader's plotly one, and both vs the backtest.

Run: ``uv run python bench/tearsheet.py``. Prints sizes, times and ratios on the bundled ORCL
daily bars (SMA crossover, 20 years, ~5000 bars).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from nautilus_trader.analysis import create_tearsheet_from_stats

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metrics import compute_metrics, daily_returns, equity_curve
from ntrader_pipeline.core.records import RunRecord
from ntrader_pipeline.core.reports import write_reports
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline.settings import SAMPLE_DATA_DIR

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    series = read_bar_csv(SAMPLE_DATA_DIR / "ORCL_1995-2014_daily_yahoo.csv", "ORCL")
    spec = load_spec(ROOT / "strategy_configs" / "sma_crossover.yaml")
    result = run_backtest(series, spec, "XNAS", "bench", None, None)
    backtest_s = timed(lambda: run_backtest(series, spec, "XNAS", "bench", None, None))
    ledger = trade_ledger(result.fills)
    metrics = compute_metrics(result, ledger)
    metrics_s = timed(lambda: compute_metrics(result, ledger))
    curve = equity_curve(result)
    record = RunRecord.of_result(result)
    returns = daily_returns(curve)
    stats_returns = {
        "Sharpe Ratio (252 days)": metrics["sharpe_ratio"],
        "Sortino Ratio (252 days)": metrics["sortino_ratio"],
        "Returns Volatility (252 days)": metrics["volatility"],
        "Max Drawdown": metrics["max_drawdown"],
    }
    stats_general = {"Win Rate": metrics["win_rate"], "Profit Factor": metrics["profit_factor"]}
    with tempfile.TemporaryDirectory() as folder:
        ours = Path(folder) / "ours"
        prices = result.equity[["ts_event", "close"]]  # every chart drawn, price and benchmark included
        ours_s = timed(lambda: write_reports(ours, record, metrics, ledger, curve, None, prices))
        theirs = Path(folder) / "nautilus.html"
        theirs_s = timed(
            lambda: create_tearsheet_from_stats({}, stats_returns, stats_general, returns, output_path=str(theirs)),
            repeat=1,
        )
        ours_kb = (ours / "tearsheet.html").stat().st_size / 1024
        theirs_kb = theirs.stat().st_size / 1024
        all_kb = sum(p.stat().st_size for p in ours.iterdir()) / 1024
    print(f"bars {result.bar_count}, trades {len(ledger)}")
    print(f"backtest (engine)             {backtest_s:7.3f} s")
    print(f"metrics                       {metrics_s:7.3f} s   ratio to backtest {metrics_s / backtest_s:6.2f}")
    print(f"all five reports (ours)       {ours_s:7.3f} s   ratio to backtest {ours_s / backtest_s:6.2f}")
    print(f"nautilus plotly tearsheet     {theirs_s:7.3f} s   ratio to all our reports {theirs_s / ours_s:6.2f}")
    print(f"tearsheet.html ours           {ours_kb:7.0f} KiB (all five files {all_kb:.0f} KiB)")
    print(f"tearsheet.html nautilus       {theirs_kb:7.0f} KiB   size ratio nautilus/ours {theirs_kb / ours_kb:6.1f}")


if __name__ == "__main__":
    main()
