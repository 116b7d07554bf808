"""What the strategies, the Python fee model and the risk limits cost per backtest.

Runs each shipped strategy YAML on the bundled ORCL daily bars (5,036 bars) through
``run_backtest`` (engine build, run, fills, equity reconciliation), with the per-share fee model
and with ``fees: {model: zero}``, and with all risk limits on. Prints seconds per run, bars per
second, and ratios against the zero-fee SMA crossover.

    uv run python bench/strategy_costs.py [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from ntrader_pipeline.core.backtest import run_backtest
    from ntrader_pipeline.core.csv_bars import read_bar_csv
    from ntrader_pipeline.core.strategy_specs import load_spec
    from ntrader_pipeline.settings import SAMPLE_DATA_DIR

    series = read_bar_csv(SAMPLE_DATA_DIR / "ORCL_1995-2014_daily_yahoo.csv", "ORCL")
    risk = {"max_position_shares": 1_000_000, "max_notional_per_order": 10_000_000, "max_drawdown_pct": 99}
    cases = {}
    for name in ("sma_crossover", "mean_reversion", "momentum"):
        spec = load_spec(REPO / "strategy_configs" / f"{name}.yaml")
        backtest = spec.backtest
        cases[f"{name} zero fees"] = spec.model_copy(
            update={
                "backtest": backtest.model_copy(update={"fees": backtest.fees.model_copy(update={"model": "zero"})})
            }
        )
        cases[f"{name} per-share fees"] = spec
        cases[f"{name} per-share + risk"] = spec.model_copy(
            update={"backtest": backtest.model_copy(update={"risk": backtest.risk.model_copy(update=risk)})}
        )

    run_backtest(series, cases["sma_crossover zero fees"], "XNAS", "warmup")
    timings = {}
    for label, spec in cases.items():
        seconds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            result = run_backtest(series, spec, "XNAS", "bench")
            seconds.append(time.perf_counter() - start)
        timings[label] = (statistics.median(seconds), len(result.fills))

    base = timings["sma_crossover zero fees"][0]
    for label, (seconds, fills) in timings.items():
        print(
            f"{label:34s} {seconds:6.3f} s  {len(series) / seconds:8.0f} bars/s  {fills:4d} fills  "
            f"ratio={seconds / base:.2f}"
        )
    fee_ratio = statistics.mean(
        timings[f"{n} per-share fees"][0] / timings[f"{n} zero fees"][0]
        for n in ("sma_crossover", "mean_reversion", "momentum")
    )
    print(f"fee_model_ratio={fee_ratio:.2f}")


if __name__ == "__main__":
    main()
