"""The embedded instance's event log writes a batch of asset events as Dagster's own SQLite storage
writes them one by one: the same events, asset rows, partitions and tags."""

from __future__ import annotations

import itertools
from datetime import date

from dagster import AssetKey, DagsterEventType
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage

from ntrader_pipeline.adapters.event_log import BatchedSqliteEventLogStorage
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY

ASSETS = ["backtest", "trade_ledger", "backtest_metrics", "backtest_report"]


def _stored(storage, run_id: str) -> dict:
    events = [r.event_log_entry for r in storage.get_records_for_run(run_id, limit=10_000).records]
    assets = {}
    for name in ASSETS:
        key = AssetKey(name)
        record = storage.get_asset_records([key])[0].asset_entry
        assets[name] = (
            storage.get_materialized_partitions(key),
            record.last_materialization.dagster_event.partition,
            record.last_run_id,
            sorted(storage.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION)),
            sorted(storage.get_latest_storage_id_by_partition(key, DagsterEventType.ASSET_MATERIALIZATION_PLANNED)),
        )
    kept = [(e.dagster_event_type, e.dagster_event.asset_key, e.dagster_event.partition) for e in events]
    return {"events": kept, "assets": assets}


def test_a_batch_run_through_the_shipped_instance_stores_what_one_by_one_would(ntrader_home, tmp_path):
    from ntrader_pipeline.pipeline import Pipeline

    pipeline = Pipeline.open(ntrader_home)  # the shipped dagster.yaml: the batched storage
    assert isinstance(pipeline.instance.event_log_storage, BatchedSqliteEventLogStorage)
    for symbol, path in (("ORCL", ORCL_DAILY), ("NVDA", NVDA_DAILY)):
        pipeline.import_csv(path, symbol)
    outcome = pipeline.run_backtests("sma_crossover", ["ORCL", "NVDA"], end=date(1999, 12, 31))
    assert sorted(outcome) == ["NVDA", "ORCL"]
    run_id = pipeline.instance.get_runs(limit=1)[0].run_id
    entries = [r.event_log_entry for r in pipeline.instance.get_records_for_run(run_id, limit=10_000).records]
    kinds = [e.dagster_event_type for e in entries]
    assert kinds.count(DagsterEventType.ASSET_MATERIALIZATION) == 8  # one per asset and partition
    assert kinds.count(DagsterEventType.ASSET_MATERIALIZATION_PLANNED) == 8

    one_by_one = ConsolidatedSqliteEventLogStorage(str(tmp_path / "one_by_one"))
    batched = BatchedSqliteEventLogStorage(str(tmp_path / "batched"))
    for entry in entries:
        one_by_one.store_event(entry)
    # as Dagster hands them over: consecutive asset events of one kind and asset in one batch
    for (_, asset), group in itertools.groupby(entries, lambda e: (e.dagster_event_type, e.dagster_event.asset_key)):
        group = list(group)
        if asset is not None and len(group) > 1:
            batched.store_event_batch(group)
        else:
            for entry in group:
                batched.store_event(entry)
    assert _stored(batched, run_id) == _stored(one_by_one, run_id)
    assert _stored(batched, run_id)["assets"]["backtest"][0] == {"sma_crossover|NVDA", "sma_crossover|ORCL"}


def test_the_event_log_waits_for_one_disk_flush_per_checkpoint_not_per_commit(tmp_path):
    """WAL with ``synchronous=NORMAL`` (1); SQLite's default is FULL (2), a flush per commit."""
    storage = BatchedSqliteEventLogStorage(str(tmp_path))
    with storage.index_connection() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
