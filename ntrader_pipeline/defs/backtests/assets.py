"""Backtests per strategy × symbol, and what is derived from each: ledger, metrics, reports.

The four assets are materialized by one step. The result is handed from the engine to the ledger,
the metrics, the warehouse and the reports in memory: no pickles through an IO manager and a
quarter of the step events (each a write to Dagster's event log), which made up half of a
partition's cost beside a sub-second engine run (``bench/backtest_overhead.py``).

A backfill runs up to ``backtests_per_run`` partitions per run (``BackfillPolicy.multi_run``),
so a run launched by the daemon pays its process start-up once per batch, not once per partition.
Every partition still gets its own materialization of each asset, with its own metadata, warehouse
run record and reports. When some partitions of a batch fail, the others are recorded as
materialized and the step fails naming each failed partition with its reason.
"""

import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
    BackfillPolicy,
    Config,
    DagsterRun,
    DagsterRunStatus,
    MaterializeResult,
    MetadataValue,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    multi_asset,
)
from pydantic import Field

from ntrader_pipeline.core.strategy_specs import StrategySpec, load_spec, spec_from_text
from ntrader_pipeline.core.timeframes import Timeframe
from ntrader_pipeline.defs.backtests.automation import WITH_BACKTEST
from ntrader_pipeline.defs.partitions import FILE_STRATEGY_KEY, split_backtest_key, symbol_of
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.settings import DEFAULT_BACKTESTS_PER_RUN

if TYPE_CHECKING:  # NautilusTrader is imported when a backtest runs, never when the code location loads
    from ntrader_pipeline.adapters.warehouse import Warehouse
    from ntrader_pipeline.core.backtest import BacktestResult

BACKTEST_ASSET_KEYS = ("backtest", "trade_ledger", "backtest_metrics", "backtest_report")


class StrategyFile(Config):
    """A strategy file carried in the run config: a run may execute on any worker, where the
    client's path does not exist."""

    name: str = Field(description="The file's name without .yaml: names the strategy in the results.")
    yaml: str = Field(description="The file's text.")


class BacktestRunConfig(Config):
    start: str | None = Field(None, description="First date (YYYY-MM-DD); default: the YAML's or all bars.")
    end: str | None = Field(None, description="Last date (YYYY-MM-DD); default: the YAML's or all bars.")
    timeframe: str | None = Field(None, description="Bar interval; default: the YAML's (DAILY).")
    spec_file: StrategyFile | None = Field(
        None, description=f"Strategy file to run; only on strategy partition {FILE_STRATEGY_KEY}."
    )


def load_strategy(name: str, spec_file: StrategyFile | None, stores: PipelineStores) -> StrategySpec:
    """The run config's strategy file when it carries one, else strategy ``name``'s own file."""
    if spec_file is not None:
        return spec_from_text(spec_file.name, spec_file.yaml)
    return load_spec(stores.strategy_file(name))


class BacktestBatchError(RuntimeError):
    """Some partitions of a batch failed; the others were recorded as materialized."""


class RunGivenUpError(RuntimeError):
    """Run monitoring marked this run failed while it was still executing (its retry takes over)."""


def given_up(context: AssetExecutionContext) -> bool:
    """Whether the instance already records this run as failed. A worker that missed its health
    checks (a loaded host) may still be alive; once its run is retried elsewhere it must stop, so
    the two never work on the batch side by side. One query per partition."""
    run = context.instance.get_run_by_id(context.run.run_id)
    return run is not None and run.status == DagsterRunStatus.FAILURE


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def run_ids(run: DagsterRun, key: str) -> Callable[[], str]:
    """Successive warehouse run ids for partition ``key`` of ``run``, the same in every retry of it.

    Derived from the run's root (the first attempt): a retry of a run whose worker died, or a task
    the broker delivered twice, overwrites the results it stored (``Warehouse.save_run`` replaces a
    run id's rows) instead of adding a second copy.
    """
    root = run.root_run_id or run.run_id
    counter = itertools.count()
    return lambda: uuid.uuid5(uuid.NAMESPACE_URL, f"ntrader:{root}:{key}:{next(counter)}").hex[:12]


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
            key, deps=deps, description=description, group_name="backtests", automation_condition=condition, **kwargs
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
        warehouse = stores.warehouse()
        done: dict[str, dict[str, dict]] = {}
        failed: list[str] = []
        for key in keys:
            if given_up(context):
                raise RunGivenUpError(
                    f"run {context.run.run_id} was marked failed while it ran (its worker looked "
                    f"dead); its retry runs the batch, so this one stops before {key}"
                )
            try:
                done[key] = backtest_partition(key, config, stores, warehouse, context.run)
            except Exception as exc:
                if len(keys) == 1:
                    raise
                context.log.error(f"{key}: {exc}")
                failed.append(f"{key}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        if failed:
            for key, metadata in done.items():  # the step fails: record what did succeed
                for asset, values in metadata.items():
                    context.log_event(AssetMaterialization(asset, partition=key, metadata=values))
            raise BacktestBatchError(f"{len(failed)} of {len(keys)} partitions failed:\n" + "\n".join(failed))
        for key, metadata in done.items():
            for asset, values in metadata.items():
                add_partition_metadata(context, asset, key if len(keys) > 1 else None, values)
        for asset in BACKTEST_ASSET_KEYS:
            yield MaterializeResult(asset_key=asset)

    return [backtests]


def backtest_partition(
    key: str, config: BacktestRunConfig, stores: PipelineStores, warehouse: "Warehouse", dagster_run: DagsterRun
) -> dict[str, dict[str, Any]]:
    """Run one partition's backtest, store it, write its reports; the metadata of each asset."""
    from ntrader_pipeline.adapters.object_store import written_folder
    from ntrader_pipeline.core.backtest import run_backtest
    from ntrader_pipeline.core.ledger import trade_ledger
    from ntrader_pipeline.core.metrics import benchmark_for, compute_metrics, equity_curve
    from ntrader_pipeline.core.reports import write_reports
    from ntrader_pipeline.core.tearsheet import (
        chart_caption,
        chart_title,
        equity_drawdown_png,
        png_markdown,
        sparkline_markdown,
    )

    strategy, key_symbol = split_backtest_key(key)
    symbol = symbol_of(key_symbol)
    if (strategy == FILE_STRATEGY_KEY) != (config.spec_file is not None):
        raise ValueError(f"spec_file is required on strategy partition {FILE_STRATEGY_KEY} and only there")
    spec = load_strategy(strategy, config.spec_file, stores)
    timeframe = Timeframe.parse(config.timeframe) if config.timeframe else spec.backtest.timeframe
    catalog = stores.catalog()
    series = catalog.read(symbol, timeframe)
    if series is None:
        raise ValueError(f"the catalog has no {timeframe.value} bars for {symbol}; import them first")
    result = run_backtest(
        series,
        spec,
        stores.venue,
        run_ids(dagster_run, key)(),
        _date(config.start),
        _date(config.end),
        stores.strategy_module_allowlist,
    )
    ledger = trade_ledger(result.fills)
    benchmark = benchmark_for(result, catalog.closes_reader(timeframe))
    metrics = compute_metrics(result, ledger, benchmark)
    record = run_record(result, dagster_run.run_id, stores)
    curve = equity_curve(result)
    warehouse.save_run(record, metrics, ledger.to_dict("records"), curve)
    chart = equity_drawdown_png(curve, chart_title(record))  # the UI's chart; the tearsheet draws SVG
    reports = stores.reports()
    with written_folder(reports, result.run_id) as folder:
        paths = write_reports(
            folder, record, metrics, ledger, curve, chart, result.equity[["ts_event", "close"]], benchmark
        )
        report_text = paths["text"].read_text()
    return {
        "backtest": {
            "run_id": result.run_id,
            "bars": result.bar_count,
            "fills": len(result.fills),
            "data_sha256": result.data_hash,
            "final_equity": float(result.equity["equity"].iloc[-1]),
        },
        "trade_ledger": {"run_id": result.run_id, "trades": len(ledger)},
        "backtest_metrics": {"run_id": result.run_id, **metric_metadata(metrics)},
        "backtest_report": {
            # first and under Dagster's inline limit: the curve shows without a click
            "equity": MetadataValue.md(sparkline_markdown(curve["equity"])),
            "run_id": result.run_id,
            "report_dir": MetadataValue.path(reports.url(result.run_id)),
            "tearsheet": MetadataValue.path(reports.url(f"{result.run_id}/{paths['html'].name}")),
            "equity_and_drawdown": MetadataValue.md(
                f"{png_markdown(chart, 'equity and drawdown')}\n\n{chart_caption(curve)}"
            ),
            "report": MetadataValue.md(f"```\n{report_text}\n```"),
        },
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


def metric_metadata(metrics: dict) -> dict[str, MetadataValue]:
    """Key metrics as numeric metadata (the UI plots them across materializations); undefined is null.

    Read as people read them and still numbers: fractions as percent to 2 decimals under a
    ``<name> %`` label (383.95, not 3.8395000000000001), ratios to 4 decimals.
    """
    from ntrader_pipeline.core.metrics import KEY_METRICS, PERCENT  # pandas: in the run only

    out = {}
    for name in (*KEY_METRICS, "correlation", "up_capture", "down_capture"):
        value = metrics.get(name)
        label = f"{name} %" if name in PERCENT else name
        if value is None:
            out[label] = MetadataValue.null()
        elif isinstance(value, int):
            out[label] = MetadataValue.int(value)
        else:
            out[label] = MetadataValue.float(
                round(float(value) * 100, 2) if name in PERCENT else round(float(value), 4)
            )
    return out


def run_record(result: "BacktestResult", dagster_run_id: str, stores: PipelineStores) -> dict:
    """The ``backtest_runs`` row: everything needed to say what ran and to run it again."""
    import pandas as pd  # in the run only: the code location loads without pandas

    return {
        "run_id": result.run_id,
        "strategy": result.strategy,
        "symbol": result.symbol,
        "bar_type": result.bar_type,
        "dagster_run_id": dagster_run_id,
        "created_at": datetime.now(UTC),
        "start": pd.Timestamp(result.start_ns, tz="UTC").to_pydatetime(),
        "end": pd.Timestamp(result.end_ns, tz="UTC").to_pydatetime(),
        "bar_count": result.bar_count,
        "data_hash": result.data_hash,
        "config": result.spec,
        "versions": result.versions,
        "report_dir": str(stores.reports_dir_for(result.run_id)),
        "risk_events": [
            {
                "time": pd.Timestamp(e["ts_event"], tz="UTC").isoformat(),
                **{k: v for k, v in e.items() if k != "ts_event"},
            }
            for e in result.risk_events
        ],
    }
