"""What the whole backtest graph costs on one-minute bars, against the bare engine on the same bars.

Generates one-minute bars (203,580 unless ``--bars``: about two years of regular sessions), imports
them, then times in one process, one after the other:

- the bare ``BacktestEngine`` (the one ``bench/backtest_overhead.py`` runs): build, load the bars,
  run the SMA crossover, read the fills, dispose;
- the whole graph through Dagster (``Pipeline.run_backtest``: catalog read, engine, ledger,
  metrics, warehouse, reports), as ``ntrader backtest run`` does;
- the same steps called directly, each timed, to show where the time outside the engine goes.

``minute_graph_ratio`` = whole graph through Dagster / bare engine (goal: <= 1.2). Peak memory of the
process is printed too (``peak_rss_mb``). Warehouse: embedded SQLite, or ``--warehouse URL``.

    uv run python bench/minute_backtest.py [--bars N] [--warehouse URL]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


@contextmanager
def timer(laps: dict[str, float], name: str):
    started = time.perf_counter()
    yield
    laps[name] = time.perf_counter() - started


def breakdown(pipeline, symbol: str) -> dict[str, float]:
    """``backtest_partition``'s steps one by one (no Dagster): seconds per step."""
    from ntrader_pipeline.core.backtest import run_backtest
    from ntrader_pipeline.core.bars import Timeframe
    from ntrader_pipeline.core.ledger import trade_ledger
    from ntrader_pipeline.core.metrics import benchmark_for, compute_metrics, equity_curve
    from ntrader_pipeline.core.reports import write_reports
    from ntrader_pipeline.core.strategy_specs import load_spec
    from ntrader_pipeline.core.tearsheet import chart_title, equity_drawdown_png
    from ntrader_pipeline.defs.runs import run_record

    stores = pipeline.defs.resources["stores"]
    catalog, warehouse = stores.catalog(), stores.warehouse()
    spec = load_spec(stores.strategy_file("sma_crossover"))
    laps: dict[str, float] = {}
    with timer(laps, "catalog read"):
        series = catalog.read(symbol, Timeframe.MIN1)
    with timer(laps, "engine and result"):
        result = run_backtest(series, spec, stores.venue, "bench-breakdown")
    with timer(laps, "ledger and metrics"):
        ledger = trade_ledger(result.fills)
        benchmark = benchmark_for(result, catalog.closes_reader(Timeframe.MIN1))
        metrics = compute_metrics(result, ledger, benchmark)
        record = run_record(result, "bench", stores)
        curve = equity_curve(result)
    with timer(laps, "warehouse"):
        warehouse.save_run(record, metrics, ledger.to_dict("records"), curve)
    with timer(laps, "chart"):
        chart = equity_drawdown_png(curve, chart_title(record))
    with timer(laps, "reports"):
        write_reports(
            stores.reports_dir_for(result.run_id),
            record,
            metrics,
            ledger,
            curve,
            chart,
            result.equity[["ts_event", "close"]],
            benchmark,
        )
    return laps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=203_580, help="one-minute bars to backtest")
    parser.add_argument("--warehouse", metavar="URL", default=None, help="warehouse URL (default: SQLite)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    home = tempfile.mkdtemp(prefix="ntrader-bench-")
    os.environ.update(NTRADER_HOME=home, NTRADER_STRATEGY_CONFIGS_DIR=str(REPO / "strategy_configs"))
    if args.warehouse:
        os.environ["NTRADER_WAREHOUSE_URL"] = args.warehouse

    from backtest_overhead import bare_engine_run
    from ingest import generate_csv

    from ntrader_pipeline.core.bars import Timeframe
    from ntrader_pipeline.core.strategy_specs import load_spec
    from ntrader_pipeline.pipeline import Pipeline

    csv = Path(home) / "MINUTE.csv"
    generate_csv(csv, args.bars)
    pipeline = Pipeline.open()
    pipeline.import_csv(csv, "MINUTE", "1MIN")
    stores = pipeline.defs.resources["stores"]
    series = stores.catalog().read("MINUTE", Timeframe.MIN1)
    spec = load_spec(REPO / "strategy_configs" / "sma_crossover.yaml")

    laps: dict[str, float] = {}
    with timer(laps, "bare"):
        fills = bare_engine_run(series, spec, stores.venue)
    with timer(laps, "graph"):
        pipeline.run_backtest("sma_crossover", "MINUTE", timeframe="1MIN")
    steps = breakdown(pipeline, "MINUTE")

    print(f"{len(series)} one-minute bars, {fills} order events, load average {os.getloadavg()[0]:.1f}")
    print(f"bare BacktestEngine:            {laps['bare']:8.2f} s")
    print(f"whole graph through Dagster:    {laps['graph']:8.2f} s")
    print("the same steps without Dagster:")
    for name, seconds in steps.items():
        print(f"  {name:<28} {seconds:8.2f} s")
    print(f"peak_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f}")
    print(f"minute_graph_ratio={laps['graph'] / laps['bare']:.3f}")


if __name__ == "__main__":
    main()
