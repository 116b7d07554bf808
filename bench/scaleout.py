"""The same backtest sweep on a pool of 1 and of 2 Celery workers (deployment mode "scale").

Each pool is a fresh deployment of real processes (see ``ntrader_pipeline_tests/operations/scale.py``):
a private Redis broker, Postgres for the instance and the warehouse, the webserver, the daemon
and the workers. The sweep is every strategy file × generated symbols (ten years of ORCL daily
bars under N/3 names), launched as a backfill through GraphQL as the UI does, timed from
submission until its last run ended. Prints

- ``scaleout_seconds_<w>``: the sweep's wall time on w workers; ``scaleout_speedup``: 1 worker ÷ 2;
- ``first_run_started_<w>`` and ``backfill_marked_done_<w>``: when the first run started and when the
  backfill daemon marked the backfill done (it loops every 30 s: latency, not work);
- per-run costs that size a larger pool (README, Deployment): Dagster events written to Postgres
  per partition, broker commands per run, and worker seconds per partition.

    uv run python bench/scaleout.py [--partitions 12] [--per-run 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.pipeline import Pipeline
from ntrader_pipeline_tests.operations.scale import (
    BACKTEST_ASSETS,
    folder_storage,
    redis_broker,
    scale_deployment,
    scale_env,
    settings_for,
    settled,
)
from ntrader_pipeline_tests.operations.stack import wait_for
from ntrader_pipeline_tests.support import ORCL_DAILY, REPO_ROOT
from ntrader_pipeline_tests.support.databases import fresh_database

POSTGRES_ADMIN_URL = os.environ.get(
    "NTRADER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
STRATEGIES = sorted(p.stem for p in (REPO_ROOT / "strategy_configs").glob("*.yaml"))


def symbols(count: int) -> list[str]:
    return [f"Q{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(count)]


def sweep(work: Path, workers: int, names: list[str], per_run: int) -> dict[str, float]:
    """One fresh deployment with ``workers`` workers; the sweep's wall time and per-run costs."""
    import redis

    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with (
            fresh_database(admin, "ntrader_bench_instance") as instance_url,
            fresh_database(admin, "ntrader_bench_warehouse") as warehouse_url,
            redis_broker(work / "redis") as broker,
        ):
            env = scale_env(
                work, instance_url, warehouse_url, broker, folder_storage(work / "shared"), per_run, workers
            )
            try:
                with scale_deployment(work, env, workers) as (stack, _pool, instance):
                    pipeline = Pipeline.open(settings_for(env, work), instance)
                    for name in names:
                        pipeline.import_csv(ORCL_DAILY, name)
                    client = redis.Redis.from_url(broker)
                    client.config_resetstat()
                    partitions = [f"{s}|{x}" for s in STRATEGIES for x in names]
                    submitted = time.time()
                    backfill = stack.launch_partition_backfill(BACKTEST_ASSETS, partitions, "bench: scale-out")
                    runs = wait_for("the sweep", lambda: settled(instance, backfill, stack), 3600, 1)
                    marked_done = time.time() - submitted
                    failed = [r.run_id for r in runs if r.status.value != "SUCCESS"]
                    if failed:
                        raise SystemExit(f"runs failed: {failed}")
                    events = sum(len(instance.all_logs(r.run_id)) for r in runs)
                    records = [instance.get_run_record_by_id(run.run_id) for run in runs]
                    busy = sum((r.end_time or 0) - (r.start_time or 0) for r in records)
                    stats = client.info("commandstats")
                    commands = sum(v["calls"] for k, v in stats.items() if k.startswith("cmdstat_"))
                    # Until the last run ended: the backfill itself is marked done only on the backfill
                    # daemon's next 30 s loop, which would round every sweep up to that loop.
                    return {
                        "seconds": max(r.end_time for r in records) - submitted,
                        "first_run_started": min(r.start_time for r in records) - submitted,
                        "marked_done": marked_done,
                        "runs": len(runs),
                        "events_per_partition": events / len(partitions),
                        "broker_commands_per_run": commands / len(runs),
                        "worker_seconds_per_partition": busy / len(partitions),
                    }
            finally:
                Warehouse.open.cache_clear()
    finally:
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=12, help="strategy × symbol partitions (default 12)")
    parser.add_argument("--per-run", type=int, default=2, help="backtest partitions per run (default 2)")
    args = parser.parse_args()
    names = symbols(max(1, args.partitions // len(STRATEGIES)))
    results = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory(prefix=f"scaleout{workers}-") as work:
            results[workers] = sweep(Path(work), workers, names, args.per_run)
        print(f"scaleout_seconds_{workers}={results[workers]['seconds']:.1f}", flush=True)
        print(f"first_run_started_{workers}={results[workers]['first_run_started']:.1f}", flush=True)
        print(f"backfill_marked_done_{workers}={results[workers]['marked_done']:.1f}", flush=True)
    print(f"partitions={len(names) * len(STRATEGIES)}")
    print(f"runs={results[2]['runs']}")
    print(f"load_average_1min={os.getloadavg()[0]:.2f}")
    print(f"events_per_partition={results[2]['events_per_partition']:.1f}")
    print(f"broker_commands_per_run={results[2]['broker_commands_per_run']:.1f}")
    print(f"worker_seconds_per_partition={results[2]['worker_seconds_per_partition']:.2f}")
    print(f"scaleout_speedup={results[1]['seconds'] / results[2]['seconds']:.2f}")


if __name__ == "__main__":
    main()
