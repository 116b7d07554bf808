"""What a sweep costs: a grid of SMA crossover sets on the bundled ORCL daily bars (5,036 bars),
run as one ``sweep_results`` Dagster run (every set stored in the warehouse and recorded as its own
partition, DSR, PBO and reports) against the same sets run bare through ``run_backtest`` in a loop.

    uv run python bench/research_sweep.py [--sets 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def grid(sets: int) -> tuple[list[int], list[int]]:
    side = max(2, round(sets**0.5))
    return [2 + 2 * i for i in range(side)], [25 + 5 * i for i in range(side)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", type=int, default=100)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    fast, slow = grid(args.sets)
    home = Path(tempfile.mkdtemp(prefix="ntrader-bench-sweep-"))
    os.environ.update(
        {
            "NTRADER_HOME": str(home / "state"),
            "DAGSTER_HOME": str(home / "state" / "dagster"),
            "NTRADER_STRATEGY_CONFIGS_DIR": str(REPO / "strategy_configs"),
        }
    )
    spec_file = home / "sma_grid.yaml"
    spec_file.write_text(
        "strategy: sma_crossover\nconfig: {fast_period: 10, slow_period: 30}\n"
        f"sweep:\n  grid: {{fast_period: {fast}, slow_period: {slow}}}\n  constraints: ['fast_period < slow_period']\n"
    )

    from ntrader_pipeline.core.csv_bars import read_bar_csv
    from ntrader_pipeline.core.research import run_set
    from ntrader_pipeline.core.strategy_specs import load_spec
    from ntrader_pipeline.pipeline import Pipeline
    from ntrader_pipeline.settings import SAMPLE_DATA_DIR

    orcl_file = SAMPLE_DATA_DIR / "ORCL_1995-2014_daily_yahoo.csv"
    spec = load_spec(spec_file)
    sets = spec.sweep.parameter_sets()
    series = read_bar_csv(orcl_file, "ORCL")
    started = time.perf_counter()
    for params in sets:
        run_set(series, spec, params, "XNAS", "bare")
    bare = time.perf_counter() - started

    pipeline = Pipeline.open()
    pipeline.import_csv(orcl_file, "ORCL")
    started = time.perf_counter()
    document = pipeline.run_sweep(spec_file, "ORCL")
    swept = time.perf_counter() - started
    n = len(document["sets"])
    print(f"sets={n} bars=5036")
    print(f"bare run_backtest + metrics: {bare:.1f} s ({bare / n:.3f} s per set)")
    print(
        f"sweep_results Dagster run:   {swept:.1f} s ({swept / n:.3f} s per set), "
        f"DSR {document['overfitting']['dsr']:.3f}, PBO {document['overfitting']['pbo']:.3f}"
    )
    print(f"sweep_ratio={swept / bare:.2f}")


if __name__ == "__main__":
    main()
