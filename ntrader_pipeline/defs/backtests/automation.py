"""When Dagster re-runs backtests by itself: after new bars of their symbol passed their checks.

CSV bars: ``on_new_bars`` (on ``backtest``) is ``eager()`` (a dependency updated, or the partition
is newly missing, and nothing upstream is missing or running), gated on every blocking
data-quality check of the bars, and limited to partitions whose symbol has bars at the strategy's
interval. ``WITH_BACKTEST`` (on ledger, metrics and report) only follows ``backtest`` into the
same run.

IB bars: ``ibkr_bars`` is one asset over a whole universe, not one partition per symbol, so it
is not a dependency of the backtests (it would re-run every symbol's). ``ibkr_backtests_sensor``
watches its runs instead: once a run has succeeded (its blocking checks passed), each symbol it
stored new bars for gets the backtests of every strategy at the fetched interval, and no other.
"""

from collections.abc import Callable, Mapping
from pathlib import Path

from dagster import (
    AutomationCondition,
    AutomationContext,
    AutomationResult,
    DagsterEventType,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    SensorDefinition,
    run_status_sensor,
)

from ntrader_pipeline.adapters.catalog_manifest import manifest_key
from ntrader_pipeline.adapters.object_store import is_remote, open_store
from ntrader_pipeline.core.timeframes import Timeframe, bar_type_name
from ntrader_pipeline.defs.partitions import backtest_key, split_backtest_key
from ntrader_pipeline.settings import get_settings


class BarsForStrategy(AutomationCondition):
    """True for backtest partitions whose symbol has catalog bars at the strategy's interval.

    A symbol with only one-minute bars gets no automatic daily backtests that could only fail, and
    the ``_file`` partition (a YAML file named in run config) has no interval, so it never runs on
    its own.
    """

    def __init__(self, catalog_path: str, venue: str, timeframes: Mapping[str, Timeframe]):
        self._catalog = catalog_path
        self._venue = venue
        self._timeframes = dict(timeframes)

    @property
    def name(self) -> str:
        return "bars_for_strategy"

    def evaluate(self, context: AutomationContext) -> AutomationResult:
        keys = set()
        has_bars = series_reader(self._catalog)
        for key in context.candidate_subset.expensively_compute_partition_keys():
            strategy, symbol = split_backtest_key(key)
            timeframe = self._timeframes.get(strategy)
            if timeframe and has_bars(bar_type_name(symbol, self._venue, timeframe)):
                keys.add(key)
        return AutomationResult(context, context.candidate_subset.compute_intersection_with_partition_keys(keys))


def series_reader(catalog: str) -> Callable[[str], bool]:
    """``bar type -> whether the catalog holds that series``, without NautilusTrader.

    A local catalog has the series' folder; one on object storage has its manifest (the S3
    settings are read from this process's environment: the condition itself keeps no secret).
    """
    if not is_remote(catalog):
        bars = Path(catalog) / "data" / "bar"
        return lambda bar_type: (bars / bar_type).is_dir()
    store = open_store(catalog, get_settings().s3_options())
    return lambda bar_type: store.exists(manifest_key(bar_type))


def on_new_bars(catalog_path: str, venue: str, timeframes: Mapping[str, Timeframe]) -> AutomationCondition:
    """``eager()`` gated on the bars' blocking checks, for partitions that have bars to trade."""
    return (
        AutomationCondition.eager()
        & AutomationCondition.all_deps_blocking_checks_passed()
        & BarsForStrategy(catalog_path, venue, timeframes)
    )


def ibkr_backtests_sensor(
    ibkr_job, backtest_job, timeframes: Mapping[str, Timeframe], interval: int = 30
) -> SensorDefinition:
    """Requests the backtests of each symbol a successful ``ibkr_job`` run stored bars for."""

    @run_status_sensor(
        name="ibkr_backtests_sensor",
        run_status=DagsterRunStatus.SUCCESS,
        monitored_jobs=[ibkr_job],
        request_job=backtest_job,
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.RUNNING,
        description="Re-runs a symbol's backtests after an IB fetch stored new bars for it and passed its checks.",
    )
    def sensor(context: RunStatusSensorContext):
        run_id = context.dagster_run.run_id
        keys = ibkr_backtest_keys(context.instance, run_id, timeframes)
        if not keys:
            context.log.info(f"run {run_id} stored no new bars")
        return [RunRequest(run_key=f"{run_id}:{key}", partition_key=key) for key in keys]

    return sensor


def ibkr_backtest_keys(instance, run_id: str, timeframes: Mapping[str, Timeframe]) -> list[str]:
    """``strategy|symbol`` for every symbol the run's ``ibkr_bars`` stored bars for, times every
    strategy at the fetched interval (the summary in its materialization says which)."""
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    keys = []
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization.asset_key.to_user_string() != "ibkr_bars":
            continue
        metadata = materialization.metadata
        fetched = Timeframe.parse(str(metadata["timeframe"].value))
        stored = [row["symbol"] for row in metadata["symbols"].value if row["bars_stored"]]
        keys += [
            backtest_key(name, symbol) for symbol in stored for name, tf in sorted(timeframes.items()) if tf == fetched
        ]
    return keys


WITH_BACKTEST = AutomationCondition.any_deps_match(AutomationCondition.will_be_requested()).with_label("with_backtest")
"""For ledger, metrics and report: requested in the tick that requests their ``backtest``, never on
their own. Were they ``eager()``, a sensor tick in the middle of a CLI (or UI) run that had just
written ``backtest`` saw a dependency updated and its own partition not yet written, and requested
the rest of that partition again: extra runs of a partition that had just been run."""
