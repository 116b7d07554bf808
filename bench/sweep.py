"""A sweep of many backtest partitions, from the UI's path and the CLI's, against the bare engine.

Every strategy file × generated symbols (the same ten years of ORCL daily bars under N/3 names, so
every partition does the same work):

- **UI**: the real ``dagster-daemon`` runs on the instance, and a backfill of every partition is
  submitted as the UI's "Materialize" → backfill does (``PartitionBackfill`` added to the
  instance); the daemon splits it into runs by the assets' backfill policy and launches each in
  its own process with the default run launcher. Timed from submission to the backfill's end.
- **CLI**: ``ntrader backtest backfill`` in a fresh process.

Both are compared with N bare ``BacktestEngine`` runs spread over the machine's cores:
``sweep_ratio_* = seconds / (N × bare seconds per partition ÷ cores)``. After the UI sweep it
checks that every partition of every backtest asset has exactly one materialization with its own
run id and metrics.

    uv run python bench/sweep.py [--partitions 60 600] [--instance embedded|postgres] [--skip-cli]
"""

from __future__ import annotations

import argparse
import os
import signal
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
POSTGRES_ADMIN_URL = os.environ.get("NTRADER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKTEST_ASSETS = ("backtest", "trade_ledger", "backtest_metrics", "backtest_report")


def postgres_instance(dagster_home: Path) -> tuple[str, callable]:
    """A fresh Postgres database for Dagster's storage; returns its name and a function dropping it."""
    from sqlalchemy import create_engine, text

    name = f"ntrader_sweep_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yaml = (dagster_home / "dagster.yaml").read_text()
    yaml = yaml.split("event_log_storage:")[0]  # the embedded SQLite event log goes; Postgres keeps it all
    dagster_home.joinpath("dagster.yaml").write_text(
        yaml + f"storage:\n  postgres:\n    postgres_url: {url.replace('postgresql://', 'postgresql+psycopg2://')}\n"
        "telemetry:\n  enabled: false\n"
    )

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return name, drop


def bare_seconds_per_partition(series, venue: str) -> float:
    """The bare engine's median time, averaged over the shipped strategies."""
    from backtest_overhead import bare_engine_run

    from ntrader_pipeline.core.strategy_specs import load_specs

    per_strategy = []
    for spec in load_specs(REPO / "strategy_configs").values():
        bare_engine_run(series, spec, venue)  # warm up
        times = []
        for _ in range(3):
            start = time.perf_counter()
            bare_engine_run(series, spec, venue)
            times.append(time.perf_counter() - start)
        per_strategy.append(statistics.median(times))
    return statistics.mean(per_strategy)


def wait_for_daemon(instance, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        beats = instance.get_daemon_heartbeats()
        if "BACKFILL" in beats and "QUEUED_RUN_COORDINATOR" in beats:
            return
        time.sleep(1)
    raise RuntimeError("the Dagster daemon did not start within the timeout")


def ui_sweep(pipeline, keys: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Seconds from submitting a backfill of ``keys`` to its end, with the daemon already running."""
    from dagster import AssetKey, RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_daemon(pipeline.instance)
        backfill_id = make_new_backfill_id()
        start, submitted = time.perf_counter(), time.time()
        pipeline.instance.add_backfill(
            PartitionBackfill.from_asset_partitions(
                backfill_id=backfill_id,
                asset_graph=pipeline.defs.resolve_asset_graph(),
                backfill_timestamp=submitted,
                tags={},
                asset_selection=[AssetKey(k) for k in BACKTEST_ASSETS],
                partition_names=keys,
                dynamic_partitions_store=pipeline.instance,
                all_partitions=False,
                title="bench sweep",
                description=None,
                run_config=None,
            )
        )
        while True:
            backfill = pipeline.instance.get_backfill(backfill_id)
            if backfill.status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
                break
            time.sleep(0.5)
        marked_done = time.perf_counter() - start
        runs = pipeline.instance.get_run_records(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
        if backfill.status != BulkActionStatus.COMPLETED_SUCCESS:
            raise RuntimeError(
                f"the backfill ended {backfill.status.value}: {backfill.error}; "
                + "; ".join(_failure(pipeline.instance, r.dagster_run) for r in runs)
            )
        starts = [r.start_time for r in runs if r.start_time]
        ends = [r.end_time for r in runs if r.end_time]
        print(
            f"UI backfill: first run started {min(starts) - submitted:.1f} s after submission, "
            f"runs spanned {max(ends) - min(starts):.1f} s, marked done after {marked_done:.1f} s"
        )
        # Until the last run ended: the daemon marks the backfill done on its next 30 s loop.
        return max(ends) - submitted, len(runs)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=120)


def _failure(instance, run) -> str:
    """A run's status and, when it failed, the first error in its log."""
    if run.status.value == "SUCCESS":
        return f"{run.run_id[:8]} SUCCESS"
    errors = [
        e.dagster_event.event_specific_data.error.message.splitlines()[0]
        for e in instance.all_logs(run.run_id)
        if e.dagster_event
        and e.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")
        and getattr(e.dagster_event.event_specific_data, "error", None)
    ]
    first = run.tags.get("dagster/asset_partition_range_start")
    last = run.tags.get("dagster/asset_partition_range_end")
    return f"{run.run_id[:8]} {run.status.value} {first}..{last}: {errors[:1]}"


def check_materializations(instance, keys: list[str]) -> None:
    """Exactly one materialization per asset and partition, each with its own run id."""
    from dagster import AssetKey

    for asset in BACKTEST_ASSETS:
        records = instance.fetch_materializations(AssetKey(asset), limit=len(keys) * 2 + 10).records
        by_partition = {}
        for record in records:
            by_partition.setdefault(record.asset_materialization.partition, []).append(record)
        assert sorted(by_partition) == sorted(keys), f"{asset}: partitions {sorted(by_partition)[:5]}…"
        assert all(len(v) == 1 for v in by_partition.values()), f"{asset}: a partition materialized twice"
        run_ids = {r.asset_materialization.metadata["run_id"].value for r in records}
        assert len(run_ids) == len(keys), f"{asset}: {len(run_ids)} run ids for {len(keys)} partitions"
    print(
        f"checked: {len(keys)} partitions × {len(BACKTEST_ASSETS)} assets, one materialization each, "
        "each with its own run id"
    )


def sweep(n: int, instance_kind: str, skip_cli: bool) -> None:
    home = Path(tempfile.mkdtemp(prefix="ntrader-sweep-"))
    env = {
        **os.environ,
        "NTRADER_HOME": str(home),
        "NTRADER_STRATEGY_CONFIGS_DIR": str(REPO / "strategy_configs"),
        "DAGSTER_HOME": str(home / "dagster"),
        "PYTHONWARNINGS": "ignore",
    }
    os.environ.update(env)
    from ntrader_pipeline.core.backtest import window
    from ntrader_pipeline.core.bars import BarSeries
    from ntrader_pipeline.core.csv_bars import read_bar_csv
    from ntrader_pipeline.defs.partitions import backtest_key
    from ntrader_pipeline.pipeline import Pipeline, prepare_dagster_home
    from ntrader_pipeline.settings import SAMPLE_DATA_DIR, get_settings

    drop = None
    dagster_home = prepare_dagster_home(get_settings())
    if instance_kind == "postgres":
        _, drop = postgres_instance(dagster_home)
    try:
        pipeline = Pipeline.open()
        stores = pipeline.defs.resources["stores"]
        orcl = read_bar_csv(SAMPLE_DATA_DIR / "ORCL_1995-2014_daily_yahoo.csv", "ORCL")
        series = window(orcl, date(2005, 1, 1), None)
        strategies = pipeline.strategy_names()
        symbols = [f"SWP{i:03d}" for i in range(max(1, n // len(strategies)))]
        store = stores.market_data()
        for symbol in symbols:
            store.replace(BarSeries(symbol, series.timeframe, series.frame, series.price_precision))
        pipeline.add_symbols(symbols)
        keys = [backtest_key(s, x) for s in strategies for x in symbols]
        n = len(keys)
        cores = os.cpu_count() or 1
        bare = bare_seconds_per_partition(series, stores.venue)
        floor = n * bare / cores
        print(
            f"{n} partitions ({len(strategies)} strategies × {len(symbols)} symbols, {len(series)} daily bars each), "
            f"Dagster storage: {instance_kind}, {cores} cores, load average {os.getloadavg()[0]:.1f}"
        )
        print(f"bare engine: {bare:.3f} s/partition; floor N × bare ÷ cores = {floor:.1f} s")

        ui_s, runs = ui_sweep(pipeline, keys, env)
        print(f"UI backfill (daemon, {runs} runs): {ui_s:8.1f} s  ({ui_s / n:.3f} s/partition)")
        check_materializations(pipeline.instance, keys)
        print(f"sweep_ratio_ui={ui_s / floor:.3f}")
        if not skip_cli:
            seconds = {}
            for jobs in ("1", str(cores)):  # one process, then the default: one per core
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "ntrader_pipeline.cli", "backtest", "backfill", "--jobs", jobs],
                    check=True,
                    capture_output=True,
                    cwd=REPO,
                    env=env,
                    timeout=7200,
                )
                seconds[jobs] = time.perf_counter() - start
                print(
                    f"ntrader backtest backfill --jobs {jobs}: {seconds[jobs]:8.1f} s  ({seconds[jobs] / n:.3f} "
                    f"s/partition, {seconds[jobs] / (n * bare):.2f}× N × bare on one core)"
                )
            print(f"sweep_ratio_cli_one_process={seconds['1'] / floor:.3f}")
            print(f"sweep_ratio_cli={seconds[str(cores)] / floor:.3f}")
    finally:
        if drop is not None:
            drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, nargs="+", default=[60], help="sweep sizes (default 60)")
    parser.add_argument(
        "--instance",
        choices=["embedded", "postgres"],
        default="embedded",
        help="Dagster storage: the embedded SQLite instance, or a fresh Postgres database",
    )
    parser.add_argument("--skip-cli", action="store_true", help="only the UI path")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if len(args.partitions) > 1:  # each size in a fresh process, on a fresh home and instance
        for n in args.partitions:
            extra = ["--skip-cli"] if args.skip_cli else []
            subprocess.run(
                [sys.executable, __file__, "--partitions", str(n), "--instance", args.instance, *extra], check=True
            )
        return
    sweep(args.partitions[0], args.instance, args.skip_cli)


if __name__ == "__main__":
    main()
