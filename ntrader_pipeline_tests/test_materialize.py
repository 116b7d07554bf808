"""One full materialization of the graph for one partition, on a real (temporary) Dagster instance."""

from __future__ import annotations

import json
from datetime import date

import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test, materialize

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.records import Backtested, Failed
from ntrader_pipeline.defs.backtests.assets import build_backtest_assets
from ntrader_pipeline.defs.market_data.assets import csv_bars
from ntrader_pipeline.defs.partitions import backtest_partitions
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY

BACKTEST = ["backtest", "trade_ledger", "backtest_metrics", "backtest_report"]
BACKTEST_ASSETS = build_backtest_assets(backtest_partitions(["sma_crossover"]))


def test_ingest_then_backtest_one_partition(ntrader_home):
    resources = {"stores": PipelineStores.from_settings(ntrader_home)}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("symbol", ["ORCL"])
        ingest = materialize(
            [csv_bars],
            partition_key="ORCL",
            instance=instance,
            resources=resources,
            run_config={"ops": {"csv_bars": {"config": {"file": str(ORCL_DAILY)}}}},
        )
        assert ingest.success
        run = materialize(BACKTEST_ASSETS, partition_key="sma_crossover|ORCL", instance=instance, resources=resources)
        assert run.success
        _assert_materialized(instance, ["bar_catalog", "market_data"], "ORCL")
        _assert_materialized(instance, BACKTEST, "sma_crossover|ORCL")

        event = instance.get_latest_materialization_event(AssetKey("backtest_metrics"))
        assert event.asset_materialization.metadata["trade_count"].value == 97

    warehouse = Warehouse.open(ntrader_home.resolved_warehouse_url)
    metrics = warehouse.get_metrics(event.asset_materialization.metadata["run_id"].value)
    # fractions show as percent to 2 decimals, still a number Dagster can plot
    assert event.asset_materialization.metadata["total_return %"].value == round(metrics["total_return"] * 100, 2)
    stored = warehouse.get_run(metrics["run_id"])
    assert stored.strategy == "sma_crossover" and stored.symbol == "ORCL" and stored.bar_count == 5036
    assert len(warehouse.get_trades(metrics["run_id"])) == 97
    assert warehouse.get_metrics(metrics["run_id"])["total_return"] == pytest.approx(metrics["total_return"])
    report_dir = ntrader_home.resolved_reports_dir / metrics["run_id"]
    saved = json.loads((report_dir / "metrics.json").read_text())
    assert saved["total_return"] == pytest.approx(metrics["total_return"])
    assert saved["config"]["config"]["fast_period"] == 10
    assert saved["versions"]["nautilus_trader"] == "1.231.0"
    assert "sma_crossover on ORCL" in (report_dir / "report.txt").read_text()


def test_backtest_without_imported_bars_fails_loudly(ntrader_home):
    resources = {"stores": PipelineStores.from_settings(ntrader_home)}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("symbol", ["MSFT"])
        result = materialize(
            BACKTEST_ASSETS,
            partition_key="sma_crossover|MSFT",
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert "no DAILY bars for MSFT" in failure.step_failure_data.error.cause.message


def _assert_materialized(instance: DagsterInstance, keys: list[str], partition: str) -> None:
    for key in keys:
        event = instance.get_latest_materialization_event(AssetKey(key))
        assert event is not None, key
        assert event.asset_materialization.partition == partition


def test_a_batch_run_records_every_partition_on_its_own(ntrader_home):
    """One run over a range of partitions (what a backfill batch is): each partition gets its own
    materialization of each asset, with its own run id and metrics; a partition without bars fails
    alone, named in the error, and the others stay recorded."""
    from ntrader_pipeline.pipeline import Pipeline

    with instance_for_test() as instance:
        pipeline = Pipeline.open(ntrader_home, instance)
        for symbol, path in (("ORCL", ORCL_DAILY), ("NVDA", NVDA_DAILY)):
            pipeline.import_csv(path, symbol)
        pipeline.add_symbols(["MSFT"])  # a partition without bars
        outcome = pipeline.run_backtests("sma_crossover", ["ORCL", "NVDA"], end=date(1999, 12, 31))
        assert {s: m.metrics["symbol"] for s, m in outcome.items()} == {"ORCL": "ORCL", "NVDA": "NVDA"}
        runs = instance.get_run_records()
        assert len(runs) == 3  # two imports, one backtest run for both partitions
        for asset in BACKTEST:
            events = instance.fetch_materializations(AssetKey(asset), limit=10).records
            by_partition = {e.asset_materialization.partition: e.asset_materialization.metadata for e in events}
            assert sorted(by_partition) == ["sma_crossover|NVDA", "sma_crossover|ORCL"], asset
            assert {md["run_id"].value for md in by_partition.values()} == {
                outcome["ORCL"].metrics["run_id"],
                outcome["NVDA"].metrics["run_id"],
            }
        metrics = {
            e.asset_materialization.partition: e.asset_materialization.metadata["trade_count"].value
            for e in instance.fetch_materializations(AssetKey("backtest_metrics"), limit=10).records
        }
        assert metrics == {f"sma_crossover|{s}": outcome[s].metrics["trade_count"] for s in ("ORCL", "NVDA")}

        mixed = pipeline.run_backtests("momentum", ["NVDA", "MSFT"], end=date(1999, 12, 31))
        assert isinstance(mixed["NVDA"], Backtested), mixed
        assert mixed["NVDA"].metrics["symbol"] == "NVDA"
        assert isinstance(mixed["MSFT"], Failed) and mixed["MSFT"].reason.startswith(
            "the catalog has no DAILY bars for MSFT"
        )
        recorded = {
            e.asset_materialization.partition
            for e in instance.fetch_materializations(AssetKey("backtest_report"), limit=10).records
        }
        assert "momentum|NVDA" in recorded and "momentum|MSFT" not in recorded
