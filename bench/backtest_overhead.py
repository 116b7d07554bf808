"""What Dagster costs on top of NautilusTrader, per backtest partition.

One step materializes a partition's four assets (backtest, ledger, metrics, report). Against N
bare ``BacktestEngine`` runs of the same strategy on the same bars in the same process, it times:

- the whole graph through Dagster, one in-process run per partition (what ``ntrader backtest run``
  does) and N partitions in one run (what a backfill batch does);
- the same work without Dagster (``backtest_partition`` called directly), and the backtest alone
  (catalog read, engine, result), to split Dagster's own cost from the work;
- one partition in a fresh process (what a run launched by the daemon pays up front).

    uv run python bench/backtest_overhead.py [--partitions N] [--years Y] [--repeat R]

``graph_ratio`` = whole graph per partition (one run each) / bare engine;
``graph_ratio_batch`` = the same with all N partitions in one run;
``overhead_ratio`` = (backtest alone + Dagster's cost per run) / bare engine: what the
``backtest`` asset costs through Dagster, the reports aside;
``events_per_partition`` / ``commits_per_partition``: what a batch writes per partition (commits of
every database: Dagster's event log and the warehouse). ``DAGSTER_EVENT_BATCH_SIZE=0`` in the
environment turns Dagster's event batches off, as before they were used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def bare_engine_run(series, spec, venue: str) -> int:
    """The engine alone: build it, load the bars, run the strategy, read the fills, dispose."""
    from nautilus_trader.backtest.config import BacktestEngineConfig
    from nautilus_trader.backtest.engine import BacktestEngine
    from nautilus_trader.config import LoggingConfig
    from nautilus_trader.model.currencies import USD
    from nautilus_trader.model.enums import AccountType, OmsType
    from nautilus_trader.model.identifiers import Venue
    from nautilus_trader.model.objects import Money

    from ntrader_pipeline.core.bars import to_nautilus_bars
    from ntrader_pipeline.core.instruments import make_equity

    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(bypass_logging=True), run_analysis=False))
    engine.add_venue(Venue(venue), OmsType.NETTING, AccountType.CASH, [Money(100_000, USD)], base_currency=USD)
    instrument = make_equity(series.symbol, venue, series.price_precision)
    engine.add_instrument(instrument)
    engine.add_data(to_nautilus_bars(series, venue))
    registered = spec.registered
    config = registered.config_cls(instrument_id=instrument.id, bar_type=series.bar_type(venue), **spec.config)
    engine.add_strategy(registered.strategy_cls(config))
    engine.run()
    fills = sum(len(order.events) for order in engine.cache.orders())
    engine.dispose()
    return fills


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=1, help="backtest partitions per round")
    parser.add_argument("--years", type=int, default=10, help="years of ORCL daily bars (≤ 20)")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds; medians are reported")
    parser.add_argument(
        "--dagster-postgres",
        metavar="URL",
        default=None,
        help="keep Dagster's run and event storage in this Postgres database (as "
        "dagster.yaml does in deployments) instead of the embedded SQLite",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    home = tempfile.mkdtemp(prefix="ntrader-bench-")
    os.environ.update(NTRADER_HOME=home, NTRADER_STRATEGY_CONFIGS_DIR=str(REPO / "strategy_configs"))
    if args.dagster_postgres:
        dagster_home = Path(home) / "dagster"
        dagster_home.mkdir(parents=True)
        (dagster_home / "dagster.yaml").write_text(
            f"storage:\n  postgres:\n    postgres_url: {args.dagster_postgres}\ntelemetry:\n  enabled: false\n"
        )
    from dagster import DagsterRun

    from ntrader_pipeline.core.backtest import run_backtest, window
    from ntrader_pipeline.core.bars import BarSeries
    from ntrader_pipeline.core.csv_bars import read_bar_csv
    from ntrader_pipeline.core.records import Backtested
    from ntrader_pipeline.core.strategy_specs import load_spec
    from ntrader_pipeline.defs.backtests.assets import BacktestRunConfig, backtest_partition
    from ntrader_pipeline.pipeline import Pipeline
    from ntrader_pipeline.settings import SAMPLE_DATA_DIR

    pipeline = Pipeline.open()
    stores = pipeline.defs.resources["stores"]
    orcl = read_bar_csv(SAMPLE_DATA_DIR / "ORCL_1995-2014_daily_yahoo.csv", "ORCL")
    series = window(orcl, date(2015 - args.years, 1, 1), None)
    symbols = ["ORCL"] + [f"ORCL{i}" for i in range(1, args.partitions)]
    for symbol in symbols:  # the same bars under N symbols: N partitions of equal work
        stores.market_data().replace(BarSeries(symbol, series.timeframe, series.frame, series.price_precision))
    pipeline.add_symbols(symbols)
    spec = load_spec(REPO / "strategy_configs" / "sma_crossover.yaml")
    warehouse = stores.warehouse()

    def bare() -> None:
        for _ in symbols:
            bare_engine_run(series, spec, stores.venue)

    def backtest_alone() -> None:
        for symbol in symbols:
            run_backtest(
                stores.catalog().read(symbol, spec.backtest.timeframe), load_spec(spec.source), stores.venue, "bench"
            )

    bench_run = DagsterRun(job_name="bench", run_id=uuid.uuid4().hex)  # only its ids are read

    def work_without_dagster() -> None:
        for symbol in symbols:
            backtest_partition(f"sma_crossover|{symbol}", BacktestRunConfig(), stores, warehouse, bench_run)

    def whole_graph() -> None:
        for symbol in symbols:
            pipeline.run_backtest("sma_crossover", symbol)

    commits: list[int] = []
    batch_runs: list[str] = []

    def batch() -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        counted = [0]

        def count(_connection) -> None:
            counted[0] += 1

        event.listen(Engine, "commit", count)  # every engine: Dagster's event log and the warehouse
        try:
            outcome = pipeline.run_backtests("sma_crossover", symbols)
        finally:
            event.remove(Engine, "commit", count)
        assert all(isinstance(m, Backtested) for m in outcome.values()), outcome
        commits.append(counted[0])
        batch_runs.append(pipeline.instance.get_runs(limit=1)[0].run_id)

    def fresh_process() -> None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "ntrader_pipeline.cli",
                "backtest",
                "run",
                "--strategy",
                "sma_crossover",
                "--symbol",
                "ORCL",
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "DAGSTER_HOME": ""},
        )

    bare(), backtest_alone(), work_without_dagster(), whole_graph(), batch()  # warm up
    rounds = [
        (timed(bare), timed(backtest_alone), timed(work_without_dagster), timed(whole_graph), timed(batch))
        for _ in range(args.repeat)
    ]
    bare_s, alone_s, work_s, graph_s, batch_s = (statistics.median(r[i] for r in rounds) for i in range(5))
    process_s = timed(fresh_process)
    n = len(symbols)
    dagster_s = max(graph_s - work_s, 0.0)  # Dagster's own cost: runs, events, partition lookups

    storage = "Postgres" if args.dagster_postgres else "embedded SQLite"
    print(
        f"{len(series)} daily bars ({args.years} years) x {n} partition(s), median of {args.repeat} rounds, "
        f"Dagster storage: {storage}, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"bare BacktestEngine:                   {bare_s / n:7.3f} s/partition")
    print(f"backtest alone (read, engine, result): {alone_s / n:7.3f} s/partition")
    print(
        f"whole graph without Dagster:           {work_s / n:7.3f} s/partition  (+ ledger, metrics, warehouse, reports)"
    )
    print(
        f"whole graph, one Dagster run each:     {graph_s / n:7.3f} s/partition  "
        f"(Dagster's share {dagster_s / n:.3f} s)"
    )
    print(f"whole graph, {n} partitions in one run: {batch_s / n:7.3f} s/partition")
    print(f"whole graph in a fresh process:        {process_s:7.3f} s  (one partition, imports included)")
    events = len(pipeline.instance.get_records_for_run(batch_runs[-1], limit=1_000_000).records)
    print(
        f"a batch of {n} writes {events} Dagster events in {commits[-1]} database commits "
        f"(event log and warehouse; DAGSTER_EVENT_BATCH_SIZE={os.environ.get('DAGSTER_EVENT_BATCH_SIZE', 'unset')})"
    )
    print(f"events_per_partition={events / n:.1f}")
    print(f"commits_per_partition={commits[-1] / n:.1f}")
    print(f"overhead_ratio={(alone_s + dagster_s) / bare_s:.3f}")
    print(f"graph_ratio_batch={batch_s / bare_s:.3f}")
    print(f"graph_ratio={graph_s / bare_s:.3f}")


if __name__ == "__main__":
    main()
