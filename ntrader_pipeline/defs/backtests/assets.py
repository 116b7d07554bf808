"""Backtests per strategy × symbol, and what is derived from each: ledger, metrics, reports.

The four assets are materialized by one step. The result is handed from the engine to the ledger,
the metrics, the warehouse and the reports in memory: no pickles through an IO manager and a
quarter of the step events (each a write to Dagster's event log), which made up half of a
partition's cost beside a sub-second engine run (``bench/backtest_overhead.py``).

A backfill runs up to ``backtests_per_run`` partitions per run (``BackfillPolicy.multi_run``),
so a run launched by the daemon pays its process start-up once per batch, not once per partition.
Every partition still gets its own materialization of each asset, with its own metadata, warehouse
run record, chart and text report; the report folder (tearsheet, CSVs, JSON) of a partition in a
batch of several is written when first asked for (``results.write_stored_reports``). When some
partitions of a batch fail, the others are recorded as materialized and the step fails with a
``Failure`` whose ``failed`` metadata maps each failed partition to its reason.

Strategy × symbol is a full product (Dagster's multi-partitions have no holes), so a daily strategy
× a symbol with only minute bars exists as a partition. It is *not applicable*, not failed: the
automation condition and ``ntrader backtest backfill`` never request it, and a run that does (a
backfill from the UI over every partition) leaves it unmaterialized with an observation
``not_applicable: ORCL has no DAILY bars`` and succeeds.
"""

from typing import TYPE_CHECKING, Any

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
    BackfillPolicy,
    Config,
    DagsterRun,
    DagsterRunStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    multi_asset,
)
from pydantic import Field

from ntrader_pipeline.core.metric_registry import panel_number
from ntrader_pipeline.core.timeframes import Timeframe
from ntrader_pipeline.defs.backtests.automation import WITH_BACKTEST
from ntrader_pipeline.defs.metadata import metric_metadata
from ntrader_pipeline.defs.partitions import FILE_STRATEGY_KEY, split_backtest_key, symbol_of
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.defs.strategy_files import StrategyFile, load_strategy
from ntrader_pipeline.settings import DEFAULT_BACKTESTS_PER_RUN

if TYPE_CHECKING:  # NautilusTrader is imported when a backtest runs, never when the code location loads
    from ntrader_pipeline.adapters.warehouse import Warehouse

BACKTEST_ASSET_KEYS = ("backtest", "trade_ledger", "backtest_metrics", "backtest_report")


class BacktestRunConfig(Config):
    start: str | None = Field(None, description="First date (YYYY-MM-DD); default: the YAML's or all bars.")
    end: str | None = Field(None, description="Last date (YYYY-MM-DD); default: the YAML's or all bars.")
    timeframe: str | None = Field(None, description="Bar interval; default: the YAML's (DAILY).")
    spec_file: StrategyFile | None = Field(
        None, description=f"Strategy file to run; only on strategy partition {FILE_STRATEGY_KEY}."
    )


class NotApplicableError(Exception):
    """The partition's symbol has bars, but none at the strategy's interval: nothing to run, nothing
    failed. (A symbol with no bars at all is a failed import's leftover: that fails, "import them first".)"""


class RunGivenUpError(RuntimeError):
    """Run monitoring marked this run failed while it was still executing (its retry takes over)."""


def given_up(context: AssetExecutionContext) -> bool:
    """Whether the instance already records this run as failed. A worker that missed its health
    checks (a loaded host) may still be alive; once its run is retried elsewhere it must stop, so
    the two never work on the batch side by side. One query per partition."""
    run = context.instance.get_run_by_id(context.run.run_id)
    return run is not None and run.status == DagsterRunStatus.FAILURE


def failed_partitions(keys: list[str], failed: dict[str, str]) -> Failure:
    """The step's failure when some partitions of a batch failed: ``failed`` (partition key →
    reason) travels as metadata, which ``Pipeline.run_backtests`` reads back; the description
    says the same for people."""
    lines = "\n".join(f"{key}: {reason}" for key, reason in failed.items())
    return Failure(
        description=f"{len(failed)} of {len(keys)} partitions failed:\n{lines}",
        metadata={"failed": MetadataValue.json(failed)},
    )


def build_backtest_assets(
    partitions_def: MultiPartitionsDefinition,
    automation_condition: AutomationCondition | None = None,
    partitions_per_run: int = DEFAULT_BACKTESTS_PER_RUN,
) -> list[AssetsDefinition]:
    """The backtest graph over the given strategy × symbol partitions.

    ``automation_condition`` says when Dagster runs ``backtest`` by itself (``automation.on_new_bars``);
    what derives from it follows in the same run (``automation.WITH_BACKTEST``).
    """
    follows = WITH_BACKTEST if automation_condition is not None else None

    def spec(key: str, description: str, deps: list, **kwargs: Any) -> AssetSpec:
        condition = automation_condition if key == "backtest" else follows
        return AssetSpec(
            key,
            deps=deps,
            description=description,
            group_name="backtests",
            automation_condition=condition,
            skippable=True,  # a partition that is not applicable materializes nothing (see above)
            **kwargs,
        )

    @multi_asset(
        name="backtest",  # the op; run config stays `ops: backtest: config:` as before the merge into one step
        specs=[
            spec(
                "backtest",
                "The strategy's YAML run on the symbol's catalog bars in NautilusTrader's BacktestEngine.",
                [AssetDep("bar_catalog", partition_mapping=MultiToSingleDimensionPartitionMapping("symbol"))],
                kinds={"nautilus"},
            ),
            spec("trade_ledger", "One row per round trip, exact decimals.", ["backtest"]),
            spec(
                "backtest_metrics",
                "Metrics from mark-to-market equity; the run, its metrics, trades and "
                "equity curve go to the warehouse.",
                ["backtest", "trade_ledger"],
            ),
            spec(
                "backtest_report",
                "Text, CSV, JSON and HTML reports of the run in <reports>/<run id>/, and its chart in the UI.",
                ["backtest", "trade_ledger", "backtest_metrics"],
            ),
        ],
        partitions_def=partitions_def,
        backfill_policy=BackfillPolicy.multi_run(partitions_per_run),
        can_subset=False,
    )
    def backtests(context: AssetExecutionContext, config: BacktestRunConfig, stores: PipelineStores):
        keys = context.partition_keys
        done, failed, skipped = run_partitions(context, keys, config, stores)
        for key, reason in skipped.items():  # shown on the partition in the UI, beside its (missing) materializations
            context.log_event(
                AssetObservation("backtest", partition=key, metadata={"not_applicable": MetadataValue.text(reason)})
            )
        if failed or skipped:
            # Outputs would mark every partition of the run materialized: record each one that ran.
            for key, metadata in done.items():
                for asset, values in metadata.items():
                    context.log_event(AssetMaterialization(asset, partition=key, metadata=values))
            if failed:
                raise failed_partitions(keys, failed)
            return
        for key, metadata in done.items():
            for asset, values in metadata.items():
                add_partition_metadata(context, asset, key if len(keys) > 1 else None, values)
        for asset in BACKTEST_ASSET_KEYS:
            yield MaterializeResult(asset_key=asset)

    return [backtests]


def run_partitions(
    context: AssetExecutionContext, keys: list[str], config: BacktestRunConfig, stores: PipelineStores
) -> tuple[dict[str, dict[str, dict]], dict[str, str], dict[str, str]]:
    """Each partition's backtest in turn: (metadata of those done, reasons of those failed, reasons
    of those not applicable). One partition alone raises its own error."""
    warehouse = stores.warehouse()
    done: dict[str, dict[str, dict]] = {}
    failed: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for key in keys:
        if given_up(context):
            raise RunGivenUpError(
                f"run {context.run.run_id} was marked failed while it ran (its worker looked "
                f"dead); its retry runs the batch, so this one stops before {key}"
            )
        try:
            done[key] = backtest_partition(key, config, stores, warehouse, context.run, folder=len(keys) == 1)
        except NotApplicableError as exc:
            context.log.info(f"{key}: {exc}")
            skipped[key] = str(exc)
        except Exception as exc:
            if len(keys) == 1:
                raise
            context.log.error(f"{key}: {exc}")
            failed[key] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return done, failed, skipped


def backtest_partition(
    key: str,
    config: BacktestRunConfig,
    stores: PipelineStores,
    warehouse: "Warehouse",
    dagster_run: DagsterRun,
    folder: bool = True,
) -> dict[str, dict[str, Any]]:
    """Run one partition's backtest, store it, make its reports (the folder too, with ``folder``);
    the metadata of each asset."""
    from ntrader_pipeline.defs import runs  # NautilusTrader and pandas: in the run only

    strategy, key_symbol = split_backtest_key(key)
    symbol = symbol_of(key_symbol)
    if (strategy == FILE_STRATEGY_KEY) != (config.spec_file is not None):
        raise ValueError(f"spec_file is required on strategy partition {FILE_STRATEGY_KEY} and only there")
    spec = load_strategy(strategy, config.spec_file, stores)
    timeframe = Timeframe.parse(config.timeframe) if config.timeframe else spec.backtest.timeframe
    catalog = stores.catalog()
    series = catalog.read(symbol, timeframe)
    if series is None and any(catalog.bar_files(symbol, other) for other in Timeframe):
        raise NotApplicableError(f"not applicable: {symbol} has no {timeframe.value} bars")
    series = series or runs.read_series(catalog, symbol, timeframe)  # no bars at all: import them first
    start, end = runs.date_of(config.start), runs.date_of(config.end)
    run = runs.backtest(catalog, series, spec, stores, runs.run_ids(dagster_run, key)(), start, end)
    recorded = runs.record_run(
        stores,
        run.result,
        run.ledger,
        run.metrics,
        dagster_run.run_id,
        benchmark=run.benchmark,
        warehouse=warehouse,
        folder=folder,
    )
    result = run.result
    return {
        "backtest": {
            "run_id": result.run_id,
            "bars": result.bar_count,
            "fills": len(result.fills),
            "data_sha256": result.data_hash,
            "final_equity": panel_number("final_equity", run.metrics["final_equity"]),
        },
        "trade_ledger": {"run_id": result.run_id, "trades": len(run.ledger)},
        "backtest_metrics": {"run_id": result.run_id, **metric_metadata(run.metrics)},
        "backtest_report": runs.report_metadata(stores, recorded),
    }


def add_partition_metadata(context: AssetExecutionContext, asset: str, key: str | None, values: dict) -> None:
    """``context.add_asset_metadata(values, asset_key=asset, partition_key=key)`` without its check
    that ``key`` is in the run's range: the keys come from ``context.partition_keys``, and the check
    reloads every dynamic partition key from the instance on each call (four calls per partition,
    ~20 ms each here, as much as a fifth of a daily-bar backtest). Dagster 1.13's accumulator."""
    step = context.op_execution_context._step_execution_context  # noqa: SLF001
    step._metadata_accumulator = step._metadata_accumulator.with_additional_asset_metadata(  # noqa: SLF001
        asset_key=AssetKey(asset), metadata=values, partition_key=key
    )
