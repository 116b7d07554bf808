"""What a research sweep costs against the engine: the shipped 15-set grid of
``strategy_configs/sma_crossover.yaml`` on the bundled ORCL daily bars (5,036 bars).

- **bare**: each of the 15 sets as a bare ``BacktestEngine`` run (build, bars, strategy, run,
  dispose) in this process, after a warm-up run; their sum spread over the cores is the floor.
- **sweep**: ``ntrader backtest sweep strategy_configs/sma_crossover.yaml --symbol ORCL`` in a
  fresh process, as a user starts it (imports, the Dagster run, every set stored in the warehouse
  and recorded as its own partition, DSR, PBO, reports), once with ``--jobs 1`` and once with
  ``--jobs <cores>``. The two must print the same sets and figures (checked; run ids aside).

``research_sweep_ratio_one_process`` and ``research_sweep_ratio`` = the sweep's seconds / (15 ×
bare seconds per set ÷ cores). With ``--sets N`` it times instead, in this process, an N-set
sweep as one ``sweep_results`` run against the same sets run bare through ``run_set``
(``sweep_ratio``, the figure of earlier rounds).

    uv run python bench/research_sweep.py [--jobs N] [--sets N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
SHIPPED = REPO / "strategy_configs" / "sma_crossover.yaml"


def use_home(home: Path) -> dict[str, str]:
    """Point this process (and the environment its children get) at a fresh home."""
    env = {
        "NTRADER_HOME": str(home / "state"),
        "DAGSTER_HOME": str(home / "state" / "dagster"),
        "NTRADER_STRATEGY_CONFIGS_DIR": str(REPO / "strategy_configs"),
    }
    os.environ.update(env)
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("NTRADER_", "DAGSTER_"))}, **env}


def fresh_sweep(env: dict[str, str], jobs: int) -> tuple[float, dict]:
    """Seconds of ``ntrader backtest sweep`` in a new process, and the sweep it printed (the
    sweep-level figures and its ``results``)."""
    command = [sys.executable, "-m", "ntrader_pipeline.cli", "backtest", "sweep", str(SHIPPED), "--symbol", "ORCL"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--format", "json", "--jobs", str(jobs)], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed:\n{done.stderr}")
    return seconds, json.loads(done.stdout)


def main() -> None:
    from ntrader_pipeline.core.parallel import default_processes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=default_processes(), help="processes of the parallel sweep")
    parser.add_argument("--sets", type=int, default=None, help="the earlier in-process bench with an N-set grid")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.sets:
        in_process(args.sets)
        return

    from backtest_overhead import bare_engine_run

    from ntrader_pipeline.core.csv_bars import read_bar_csv
    from ntrader_pipeline.core.strategy_specs import load_spec
    from ntrader_pipeline.settings import SAMPLE_DATA_DIR

    env = use_home(Path(tempfile.mkdtemp(prefix="ntrader-bench-research-")))
    orcl_file = SAMPLE_DATA_DIR / "ORCL_1995-2014_daily_yahoo.csv"
    subprocess.run(
        [sys.executable, "-m", "ntrader_pipeline.cli", "data", "import-csv", "--file", str(orcl_file)]
        + ["--symbol", "ORCL"],
        env=env,
        check=True,
        capture_output=True,
    )
    spec = load_spec(SHIPPED)
    sets = spec.sweep.parameter_sets()
    series = read_bar_csv(orcl_file, "ORCL")
    bare_engine_run(series, spec.with_parameters(sets[0]), "XNAS")  # warm-up: imports and first-run costs
    started = time.perf_counter()
    for params in sets:
        bare_engine_run(series, spec.with_parameters(params), "XNAS")
    bare = time.perf_counter() - started
    cores = default_processes()
    floor = bare / cores

    one, sweep_one = fresh_sweep(env, 1)
    many, sweep_many = fresh_sweep(env, args.jobs)
    strip = [
        {**doc, "results": [{k: v for k, v in row.items() if k != "run_id"} for row in doc["results"]]}
        for doc in (sweep_one, sweep_many)
    ]
    if strip[0] != strip[1] or len(sweep_one["results"]) != len(sets):
        raise SystemExit("the sweep on one process and on several printed different sets or figures")
    with open("/proc/loadavg") as loadavg:
        load = loadavg.read().split()[0]
    print(f"sets={len(sets)} bars={len(series)} cores={cores} jobs={args.jobs} load={load}")
    each = bare / len(sets)
    print(f"bare engine: {bare:.2f} s for {len(sets)} sets ({each:.3f} s each), ÷ {cores} cores = {floor:.2f} s")
    print(f"ntrader backtest sweep, fresh process, --jobs 1: {one:.2f} s")
    print(f"ntrader backtest sweep, fresh process, --jobs {args.jobs}: {many:.2f} s")
    print(f"research_sweep_ratio_one_process={one / floor:.2f}")
    print(f"research_sweep_ratio={many / floor:.2f}")


def in_process(sets: int) -> None:
    """An N-set SMA grid as one ``sweep_results`` run in this process, against ``run_set`` in a loop."""
    side = max(2, round(sets**0.5))
    fast, slow = [2 + 2 * i for i in range(side)], [25 + 5 * i for i in range(side)]
    home = Path(tempfile.mkdtemp(prefix="ntrader-bench-sweep-"))
    use_home(home)
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
    series = read_bar_csv(orcl_file, "ORCL")
    started = time.perf_counter()
    for params in spec.sweep.parameter_sets():
        run_set(series, spec, params, "XNAS", "bare")
    bare = time.perf_counter() - started

    pipeline = Pipeline.open()
    pipeline.import_csv(orcl_file, "ORCL")
    started = time.perf_counter()
    document = pipeline.run_sweep(spec_file, "ORCL", processes=1)
    swept = time.perf_counter() - started
    n = len(document["sets"])
    print(f"sets={n} bars={len(series)}")
    print(f"bare run_backtest + metrics: {bare:.1f} s ({bare / n:.3f} s per set)")
    print(f"sweep_results Dagster run, one process: {swept:.1f} s ({swept / n:.3f} s per set)")
    print(f"sweep_ratio={swept / bare:.2f}")


if __name__ == "__main__":
    main()
