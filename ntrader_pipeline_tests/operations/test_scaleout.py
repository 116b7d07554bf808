"""A backtest backfill on the "scale" deployment: real Postgres (instance and warehouse), a real
Redis broker, a real S3-API server holding the catalog and the reports, the real webserver and
daemon, and two Celery workers (``ntrader worker``) in their own working directories (and, as root,
their own network namespaces). One worker is killed with SIGKILL in the middle of a run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from dagster import DagsterRunStatus

from ntrader_pipeline.adapters.catalog_manifest import manifest_key
from ntrader_pipeline.adapters.object_store import open_store
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.adapters.warehouse.results import write_stored_reports
from ntrader_pipeline.core.records import Backtested
from ntrader_pipeline.pipeline import Pipeline
from ntrader_pipeline.settings import Settings
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY
from ntrader_pipeline_tests.support.databases import fresh_database

from .scale import (
    BACKTEST_ASSETS,
    RedisUnavailable,
    backfill_runs,
    bucket_storage,
    network_namespaces_available,
    redis_broker,
    scale_deployment,
    scale_env,
    settings_for,
    settled,
    worker_of,
)
from .stack import wait_for

pytestmark = pytest.mark.slow  # real workers, a broker and a killed worker: minutes

# 3 strategies x 4 symbols = 12 partitions in runs of 2: six runs for two workers.
SYMBOLS = {"ORCL": ORCL_DAILY, "NVDA": NVDA_DAILY, "ORCX": ORCL_DAILY, "NVDX": NVDA_DAILY}
STRATEGIES = ["mean_reversion", "momentum", "sma_crossover"]
HANG = 900  # seconds: only a hang fails on this


@pytest.fixture
def redis_url(tmp_path: Path):
    try:
        broker = redis_broker(tmp_path / "redis")
        url = broker.__enter__()
    except RedisUnavailable as exc:
        if os.environ.get("NTRADER_REQUIRE_REDIS") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield url
    finally:
        broker.__exit__(None, None, None)


def test_a_backfill_runs_on_two_workers_and_survives_a_killed_one(tmp_path, postgres_admin, redis_url, s3_bucket):
    with (
        fresh_database(postgres_admin, "ntrader_scale_instance") as instance_url,
        fresh_database(postgres_admin, "ntrader_scale_warehouse") as warehouse_url,
    ):
        warehouse_url = warehouse_url.replace("postgresql+psycopg2", "postgresql+psycopg")
        env = scale_env(
            tmp_path,
            instance_url,
            warehouse_url,
            redis_url,
            bucket_storage(s3_bucket),
            backtests_per_run=2,
            max_concurrent_runs=2,
        )
        settings = settings_for(env, tmp_path)
        try:
            isolate = network_namespaces_available()  # the strict form, where this host allows it (root)
            print(f"workers in their own network namespaces: {isolate}")
            with scale_deployment(tmp_path, env, workers=2, isolate=isolate) as (stack, workers, instance):
                for namespace in workers.namespaces.values():  # the services, through the veth, and nothing else
                    postgres = int(env["DAGSTER_POSTGRES_PORT"])
                    assert namespace.can_connect(namespace.host_ip, postgres)
                    assert not namespace.can_connect("127.0.0.1", postgres)
                    assert not namespace.can_connect(namespace.host_ip, stack.port)  # not even the webserver
                pipeline = Pipeline.open(settings, instance)
                for symbol, file in SYMBOLS.items():
                    pipeline.import_csv(file, symbol)
                partitions = [f"{s}|{x}" for s in STRATEGIES for x in SYMBOLS]
                backfill_id = stack.launch_partition_backfill(BACKTEST_ASSETS, partitions, "scale-out")

                # Kill a worker while it executes a run, once it has finished one (so both ran some).
                def running_after_a_success():
                    stack.check_alive()
                    runs = backfill_runs(instance, backfill_id)
                    done = {worker_of(r) for r in runs if r.status == DagsterRunStatus.SUCCESS}
                    running = [r for r in runs if r.status == DagsterRunStatus.STARTED]
                    return next((r for r in running if worker_of(r) in done), None)

                victim = wait_for("a run in progress on a worker", running_after_a_success, HANG, 0.3)
                dead = worker_of(victim)
                workers.kill(dead)
                killed_at = time.monotonic()
                runs = wait_for(
                    "the backfill and its retries to finish", lambda: settled(instance, backfill_id, stack), HANG, 3
                )
                print(
                    f"killed {dead} during run {victim.run_id}; the backfill settled "
                    f"{time.monotonic() - killed_at:.0f} s later"
                )
                for run in runs:
                    print(run.run_id, run.status.value, worker_of(run), run.parent_run_id)

                # The killed run: failed by run monitoring, retried once, to success on the other worker.
                killed = next(r for r in runs if r.run_id == victim.run_id)
                assert killed.status == DagsterRunStatus.FAILURE
                failure = [
                    e
                    for e in instance.all_logs(killed.run_id)
                    if e.is_dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
                ]
                assert "does not answer" in failure[-1].dagster_event.message
                retry = next(r for r in runs if r.parent_run_id == killed.run_id)
                assert retry.status == DagsterRunStatus.SUCCESS
                assert worker_of(retry) not in (None, dead)
                # Every other run succeeded, each on a worker of the pool.
                others = [r for r in runs if r.run_id != killed.run_id]
                assert [r.run_id for r in others if r.status != DagsterRunStatus.SUCCESS] == []
                assert {worker_of(r) for r in others} == set(workers.processes)  # both, nothing else
                # Nothing was written under a worker's own working directory.
                for node in workers.processes:
                    assert list(workers.working_directory(node).iterdir()) == []

                distributed = stored_metrics(warehouse_url, {r.run_id for r in runs})
                assert sorted(distributed) == sorted((s, x) for s in STRATEGIES for x in SYMBOLS)  # one each
                # The catalog and every run's reports are objects in the bucket (a batch's report
                # folders once asked for, from any host).
                catalog = open_store(settings.catalog_location, settings.s3_options())
                for symbol in SYMBOLS:
                    assert catalog.exists(manifest_key(f"{symbol}.{settings.venue}-1-DAY-LAST-EXTERNAL")), symbol
                stores = settings.stores()
                for stored in distributed.values():
                    write_stored_reports(stores, stored["run_id"])
                    assert stores.reports().exists(f"{stored['run_id']}/tearsheet.html"), stored["run_id"]
                # The same partitions in this process, as `ntrader backtest backfill` runs them.
                local = Settings(
                    **{
                        **settings.model_dump(),
                        "home": tmp_path / "local",
                        "reports_dir": str(tmp_path / "local_reports"),
                        "warehouse_url": f"sqlite:///{tmp_path / 'local.sqlite'}",
                    }
                )
                in_process = Pipeline.open(local, instance)
                for strategy in STRATEGIES:
                    for symbol, outcome in in_process.run_backtests(strategy, list(SYMBOLS)).items():
                        assert isinstance(outcome, Backtested), outcome
                        metrics = outcome.metrics
                        stored = distributed[(strategy, symbol)]
                        assert {k: v for k, v in stored.items() if k != "run_id"} == {
                            k: v for k, v in metrics.items() if k != "run_id"
                        }, (strategy, symbol)
        finally:
            Warehouse.open.cache_clear()  # drop pooled connections before the databases go


def stored_metrics(warehouse_url: str, dagster_run_ids: set[str]) -> dict[tuple[str, str], dict]:
    """The metrics the given Dagster runs stored, by (strategy, symbol); fails on a second result
    of one. (Runs the automation sensor may start after the imports are not counted.)"""
    from sqlalchemy import select

    from ntrader_pipeline.adapters.warehouse.tables import backtest_runs

    warehouse = Warehouse.open(warehouse_url)
    columns = (backtest_runs.c.run_id, backtest_runs.c.strategy, backtest_runs.c.symbol)
    query = select(*columns).where(backtest_runs.c.dagster_run_id.in_(dagster_run_ids))
    rows = warehouse.read("listing runs", lambda c: c.execute(query).all())
    found: dict[tuple[str, str], dict] = {}
    for run_id, strategy, symbol in rows:
        assert (strategy, symbol) not in found, f"two stored runs of {strategy}|{symbol}"
        found[(strategy, symbol)] = warehouse.get_metrics(run_id)
    return found
