"""The leaderboard: the newest run of every strategy × symbol, side by side.

It reads the warehouse rather than loading every ``backtest_metrics`` partition through the IO
manager: the warehouse is where every run is recorded (UI and CLI alike), a partition that was
never materialized is simply absent instead of failing the load, and it costs one query instead of
one unpickling per partition. The ``AllPartitionMapping`` dependency still draws the lineage.
"""

from dagster import AllPartitionMapping, AssetDep, AutomationCondition, MetadataValue, Output, asset

from ntrader_pipeline.defs.metadata import metric_table
from ntrader_pipeline.defs.resources import PipelineStores

LEADERBOARD_FILE = "leaderboard.csv"


AFTER_BACKTESTS = (
    AutomationCondition.any_deps_updated().since_last_handled() & ~AutomationCondition.any_deps_in_progress()
)
"""For the leaderboard: some backtest finished since it was last built, and none is running now.

Not ``eager()``: over all backtest partitions some are always missing (the ``_file`` ones, or
strategies never run on a symbol), and eager waits for none to be missing."""


@asset(
    group_name="analytics",
    deps=[AssetDep("backtest_metrics", partition_mapping=AllPartitionMapping())],
    kinds={"pandas"},
    automation_condition=AFTER_BACKTESTS,
)
def leaderboard(stores: PipelineStores) -> Output[str]:
    """One row per strategy file × symbol (its newest run) with the headline metrics, best Sharpe
    first; sweep sets and walk-forward runs are left to their own reports. The file carries the
    values (counts as integers), the UI's table their display text."""
    from ntrader_pipeline.core.metric_display import RESULT_COLUMNS, ranked_results
    from ntrader_pipeline.core.reports import machine_csv

    # a sweep's parameter sets and walk-forward runs ("name[...]") have their own sweep report
    latest = [r for r in stores.warehouse().latest_results() if "[" not in r.record.strategy]
    rows = ranked_results(latest, sort="sharpe")
    path = stores.reports().put(LEADERBOARD_FILE, machine_csv(rows, RESULT_COLUMNS).encode())
    return Output(
        path,
        metadata={
            "rows": len(rows),
            "path": MetadataValue.path(path),
            "leaderboard": metric_table(RESULT_COLUMNS, rows),
        },
    )
