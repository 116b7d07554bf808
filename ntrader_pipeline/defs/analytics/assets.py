"""The leaderboard: the newest run of every strategy × symbol, side by side.

It reads the warehouse rather than loading every ``backtest_metrics`` partition through the IO
manager: the warehouse is where every run is recorded (UI and CLI alike), a partition that was
never materialized is simply absent instead of failing the load, and it costs one query instead of
one unpickling per partition. The ``AllPartitionMapping`` dependency still draws the lineage.
"""

from dagster import AllPartitionMapping, AssetDep, MetadataValue, Output, TableColumn, TableRecord, TableSchema, asset

from ntrader_pipeline.defs.backtests.automation import AFTER_BACKTESTS
from ntrader_pipeline.defs.resources import PipelineStores

LEADERBOARD_FILE = "leaderboard.csv"


@asset(
    group_name="analytics",
    deps=[AssetDep("backtest_metrics", partition_mapping=AllPartitionMapping())],
    kinds={"pandas"},
    automation_condition=AFTER_BACKTESTS,
)
def leaderboard(stores: PipelineStores) -> Output[str]:
    """One row per strategy file × symbol (its newest run) with the key metrics, best Sharpe first;
    sweep sets and walk-forward runs are left to their own reports."""
    from ntrader_pipeline.core.reports import results_table, to_jsonable  # pandas: only in the run

    # a sweep's parameter sets and walk-forward runs ("name[...]") have their own sweep report
    latest = [r for r in stores.warehouse().latest_results() if "[" not in r["strategy"]]
    table = results_table(latest, sort="sharpe")
    path = stores.reports().put(LEADERBOARD_FILE, table.to_csv(index=False).encode())
    # Every record keeps every column: an undefined metric (no losing trade: no profit factor) is
    # null, since Dagster refuses a table whose records have different fields.
    records = [TableRecord(to_jsonable(row)) for row in table.astype(object).to_dict("records")]
    schema = TableSchema(
        columns=[
            TableColumn(
                name, "float" if table[name].dtype.kind == "f" else "int" if name == "trade_count" else "string"
            )
            for name in table.columns
        ]
    )
    return Output(
        path,
        metadata={
            "rows": len(table),
            "path": MetadataValue.path(path),
            "leaderboard": MetadataValue.table(records, schema=schema),
        },
    )
