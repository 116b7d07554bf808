"""When Dagster re-runs backtests by itself: after new bars of their symbol passed their checks.

``ON_NEW_BARS`` is ``eager()`` (a dependency updated, or the partition is newly missing, and
nothing upstream is missing or running), gated on every blocking data-quality check of the bars,
and limited to strategies from the strategy folder: the ``_file`` partition only runs a YAML file
named in its run config, so Dagster has nothing to run there on its own.
"""

from dagster import AutomationCondition, AutomationContext, AutomationResult

from ntrader_pipeline.defs.partitions import FILE_STRATEGY_KEY


class FolderStrategyPartitions(AutomationCondition):
    """True for backtest partitions whose strategy is a file in the strategy folder."""

    @property
    def name(self) -> str:
        return "folder_strategy_partitions"

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        keys = {
            key
            for key in context.candidate_subset.expensively_compute_partition_keys()
            if not key.startswith(f"{FILE_STRATEGY_KEY}|")
        }
        return AutomationResult(context, context.candidate_subset.compute_intersection_with_partition_keys(keys))


ON_NEW_BARS = (
    AutomationCondition.eager()
    & AutomationCondition.all_deps_blocking_checks_passed()
    & FolderStrategyPartitions()
)


AFTER_BACKTESTS = AutomationCondition.any_deps_updated().since_last_handled() & ~AutomationCondition.any_deps_in_progress()
"""For the leaderboard: some backtest finished since it was last built, and none is running now.

Not ``eager()``: over all backtest partitions some are always missing (the ``_file`` ones, or
strategies never run on a symbol), and eager waits for none to be missing."""
