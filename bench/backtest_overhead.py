"""What Dagster costs on top of NautilusTrader, per backtest partition.

Times N materializations of the ``backtest`` asset (one strategy × symbol partition each, run
in-process on the embedded Dagster instance, as the CLI runs them) against N bare
``BacktestEngine`` runs of the same strategy on the same bars, in the same process. It also times
the whole backtest graph (ledger, metrics, warehouse, reports: work the bare engine does not do)
and one partition run in a fresh process (what each run launched by the Dagster daemon pays).

    uv run python bench/backtest_overhead.py [--partitions N] [--years Y] [--repeat R]

Last line: ``overhead_ratio=<pipeline_seconds/bare_seconds>``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
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
    parser.add_argument("--dagster-postgres", metavar="URL", default=None,
                        help="keep Dagster's run and event storage in this Postgres database (as "
                             "dagster.yaml does in deployments) instead of the embedded SQLite")
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
    from dagster import AssetKey

    from ntrader_pipeline.core.backtest import window
    from ntrader_pipeline.core.bars import BarSeries
    from ntrader_pipeline.core.csv_bars import read_bar_csv
    from ntrader_pipeline.core.strategy_specs import load_spec
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
    backtest_only = pipeline.defs.resolve_job_def("backtest_job").get_subset(asset_selection={AssetKey("backtest")})

    def through_dagster() -> None:
        for symbol in symbols:
            result = backtest_only.execute_in_process(
                instance=pipeline.instance, partition_key=f"sma_crossover|{symbol}", run_config=QUIET
            )
            assert result.success

    def bare() -> None:
        for _ in symbols:
            bare_engine_run(series, spec, stores.venue)

    def whole_graph() -> None:
        for symbol in symbols:
            pipeline.run_backtest("sma_crossover", symbol)

    def fresh_process() -> None:
        subprocess.run(
            [sys.executable, "-m", "ntrader_pipeline.cli", "backtest", "run", "--strategy", "sma_crossover",
             "--symbol", "ORCL"], check=True, capture_output=True, env={**os.environ, "DAGSTER_HOME": ""},
        )

    through_dagster(), bare(), whole_graph()  # warm up: imports, first engine, instance tables
    rounds = [(timed(bare), timed(through_dagster)) for _ in range(args.repeat)]
    bare_s = statistics.median(r[0] for r in rounds)
    dagster_s = statistics.median(r[1] for r in rounds)
    graph_s = statistics.median(timed(whole_graph) for _ in range(max(1, args.repeat // 2)))
    process_s = timed(fresh_process)
    n = len(symbols)
    per_graph = graph_s / n

    storage = "Postgres" if args.dagster_postgres else "embedded SQLite"
    print(f"{len(series)} daily bars ({args.years} years) x {n} partition(s), median of {args.repeat} rounds, "
          f"Dagster storage: {storage}")
    print(f"bare BacktestEngine:                 {bare_s:7.3f} s  ({bare_s / n:.3f} s/partition)")
    print(f"backtest asset through Dagster:      {dagster_s:7.3f} s  ({dagster_s / n:.3f} s/partition)")
    print(f"whole graph in-process (+reports):   {graph_s:7.3f} s  ({per_graph:.3f} s/partition)")
    print(f"whole graph in a fresh process:      {process_s:7.3f} s  (one partition, imports included)")
    print(f"60-partition backfill, in-process:   {60 * per_graph:7.1f} s  (ntrader / one Python process)")
    print(f"60-partition backfill, run per process: {60 * process_s:7.1f} s  (daemon default launcher, serial)")
    print(f"overhead_ratio={dagster_s / bare_s:.3f}")


if __name__ == "__main__":
    main()
