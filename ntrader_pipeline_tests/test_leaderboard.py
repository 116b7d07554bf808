"""The leaderboard asset: the newest run of every strategy × symbol from the warehouse, as CSV and table."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import cache

import pandas as pd
from dagster import AllPartitionMapping, AssetKey, instance_for_test, materialize

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS, display, machine
from ntrader_pipeline.core.metrics import compute_metrics, equity_curve
from ntrader_pipeline.core.records import RunRecord
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline.definitions import build_definitions
from ntrader_pipeline.defs.analytics.assets import LEADERBOARD_FILE, leaderboard
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY, STRATEGY_CONFIGS


@cache
def bars(csv, symbol: str):
    return read_bar_csv(csv, symbol)


def store_run(stores: PipelineStores, csv, symbol: str, end: date, run_id: str, created_at: datetime) -> dict:
    spec = load_spec(STRATEGY_CONFIGS / "sma_crossover.yaml")
    result = run_backtest(bars(csv, symbol), spec, stores.venue, run_id, None, end)
    ledger = trade_ledger(result.fills)
    metrics = compute_metrics(result, ledger)
    record = replace(RunRecord.of_result(result, created_at=created_at), symbol=symbol)
    stores.warehouse().save_run(record, metrics, ledger.to_dict("records"), equity_curve(result))
    return metrics


def test_leaderboard_has_the_newest_run_per_strategy_and_symbol(ntrader_home):
    stores = PipelineStores.from_settings(ntrader_home)
    now = datetime.now(UTC)
    store_run(stores, ORCL_DAILY, "ORCL", date(1996, 12, 31), "orcl_old", now - timedelta(days=1))
    orcl = store_run(stores, ORCL_DAILY, "ORCL", date(1997, 12, 31), "orcl_new", now)
    nvda = store_run(stores, NVDA_DAILY, "NVDA", date(2002, 12, 31), "nvda", now)

    with instance_for_test() as instance:
        result = materialize([leaderboard], resources={"stores": stores}, instance=instance)
    assert result.success
    path = ntrader_home.resolved_reports_dir / LEADERBOARD_FILE
    assert result.output_for_node("leaderboard") == str(path)
    table = pd.read_csv(path)
    assert sorted(table["run_id"]) == ["nvda", "orcl_new"]  # one row per strategy × symbol, the newest
    assert list(table["sharpe_ratio"]) == sorted(table["sharpe_ratio"], reverse=True)
    by_run = table.set_index("run_id")
    for run_id, metrics in (("orcl_new", orcl), ("nvda", nvda)):
        for name in HEADLINE_METRICS:  # the file carries the values (to 10 decimals), counts as integers
            assert by_run.loc[run_id, name] == machine(name, metrics[name]), (run_id, name)

    metadata = result.asset_materializations_for_node("leaderboard")[0].metadata
    assert metadata["rows"].value == 2
    records = metadata["leaderboard"].records
    assert [r.data["run_id"] for r in records] == list(table["run_id"])
    assert {c.name for c in metadata["leaderboard"].schema.columns} == set(table.columns)


def test_leaderboard_depends_on_every_backtest_partition(ntrader_home):
    graph = build_definitions(ntrader_home).resolve_asset_graph()
    node = graph.get(AssetKey("leaderboard"))
    assert node.partitions_def is None
    assert AssetKey("backtest_metrics") in node.parent_keys
    assert isinstance(
        graph.get_partition_mapping(AssetKey("leaderboard"), AssetKey("backtest_metrics")), AllPartitionMapping
    )


def test_leaderboard_builds_when_the_newest_run_has_no_losing_trade(ntrader_home):
    """Undefined metrics (no losing trade: no profit factor, no average loss) are null, not a crash."""
    stores = PipelineStores.from_settings(ntrader_home)
    now = datetime.now(UTC)
    winner = store_run(stores, ORCL_DAILY, "ORCL", date(1995, 12, 28), "orcl_wins_only", now)
    loser = store_run(stores, NVDA_DAILY, "NVDA", date(2002, 12, 31), "nvda", now)
    assert winner["trade_count"] == 2 and winner["win_rate"] == 1.0 and winner["profit_factor"] is None
    assert loser["profit_factor"] is not None

    with instance_for_test() as instance:
        result = materialize([leaderboard], resources={"stores": stores}, instance=instance)

    assert result.success
    records = {
        r.data["run_id"]: r.data
        for r in result.asset_materializations_for_node("leaderboard")[0].metadata["leaderboard"].records
    }
    assert records["orcl_wins_only"]["profit_factor"] is None  # a blank cell
    assert records["nvda"]["profit_factor"] == display("profit_factor", loser["profit_factor"])
    table = pd.read_csv(ntrader_home.resolved_reports_dir / LEADERBOARD_FILE).set_index("run_id")
    assert pd.isna(table.loc["orcl_wins_only", "profit_factor"])
