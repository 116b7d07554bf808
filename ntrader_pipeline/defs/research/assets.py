"""Research: each parameter set of a sweep as its own backtest partition, the sweep's ranked table
(with the Deflated Sharpe Ratio and the Probability of Backtest Overfitting) and walk-forward runs.

``sweep_results`` and ``walk_forward`` are partitioned like the backtests (strategy file × symbol)
and run every set in their one process with the bars read once: a 100-set sweep is one Dagster
run, not a hundred. Each set a sweep runs is recorded as a materialization of its own
``sweep_backtest`` partition (``<file>[a=1,b=2]|SYMBOL``) and stored in the warehouse under that
key, so ``ntrader backtest reproduce``, ``report`` and ``compare`` work on it, and one set can be
re-run alone from the UI. The engine is imported only inside the assets: the code location loads
without it.
"""

import re
from typing import Any

from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetExecutionContext,
    AssetMaterialization,
    AssetsDefinition,
    Config,
    MetadataValue,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    Output,
    asset,
)
from pydantic import Field

from ntrader_pipeline.adapters.object_store import written_folder
from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS, table_cell
from ntrader_pipeline.core.strategy_specs import StrategySpec
from ntrader_pipeline.core.sweeps import parameter_key, parse_parameter_key, rankable
from ntrader_pipeline.defs.metadata import metric_metadata, metric_table
from ntrader_pipeline.defs.partitions import FILE_STRATEGY_KEY, parameter_set_partitions, sweep_set_partitions
from ntrader_pipeline.defs.resources import PipelineStores
from ntrader_pipeline.defs.strategy_files import StrategyFile, load_strategy

SWEEP_SET_ASSET = "sweep_backtest"
SWEEP_TABLE_COLUMNS = ("rank", "key", "run_id", *HEADLINE_METRICS)


class ResearchConfig(Config):
    spec_file: StrategyFile | None = Field(
        None, description=f"Strategy file; required on strategy partition {FILE_STRATEGY_KEY}."
    )
    start: str | None = Field(None, description="First date (YYYY-MM-DD); default: the YAML's or all bars.")
    end: str | None = Field(None, description="Last date (YYYY-MM-DD); default: the YAML's or all bars.")
    metric: str | None = Field(None, description="Metric that ranks the sets; default: the YAML's sweep metric.")
    processes: int | None = Field(
        None, ge=1, description="Worker processes for the sets; default: NTRADER_RESEARCH_PROCESSES, else one per core."
    )


def _spec(name: str, config: ResearchConfig, stores: PipelineStores, context: AssetExecutionContext) -> StrategySpec:
    """The strategy file, checked whole before any set runs (its warnings go to the run's log)."""
    if name == FILE_STRATEGY_KEY and config.spec_file is None:
        raise ValueError(f"spec_file is required on strategy partition {FILE_STRATEGY_KEY}")
    if config.metric is not None:
        rankable(config.metric)  # a metric no set has would rank them all last, in file order
    spec = load_strategy(name, config.spec_file, stores)
    if spec.is_custom:  # a registered strategy's sets and windows were checked as the file was read
        from ntrader_pipeline.core.strategy_specs import check_spec

        check_spec(spec, stores.strategy_module_allowlist)
    for line in spec.warnings:
        context.log.warning(line)
    return spec


def sweep_report_prefix(strategy: str, symbol: str) -> str:
    """Where a strategy's sweep and walk-forward reports on a symbol go, under the reports root."""
    return f"research/{re.sub(r'[^A-Za-z0-9_.-]', '_', strategy)}__{symbol}"


def _set_metadata(run) -> dict:
    """A sweep set's materialization metadata: its parameters, run id and metrics."""
    return {"params": MetadataValue.json(run.params), "run_id": run.result.run_id, **metric_metadata(run.metrics)}


def build_research_assets(partitions_def: MultiPartitionsDefinition) -> list[AssetsDefinition]:
    """``sweep_backtest`` (one partition per parameter set × symbol), and ``sweep_results`` and
    ``walk_forward`` over the given strategy × symbol partitions."""

    bars = AssetDep("bar_catalog", partition_mapping=MultiToSingleDimensionPartitionMapping("symbol"))

    @asset(partitions_def=sweep_set_partitions, group_name="research", deps=[bars], kinds={"nautilus"})
    def sweep_backtest(context: AssetExecutionContext, config: ResearchConfig, stores: PipelineStores) -> Output[dict]:
        """One parameter set of a sweep on one symbol: a backtest stored like any other run."""
        from ntrader_pipeline.core import research  # the engine, pandas: in the run only
        from ntrader_pipeline.defs import runs

        keys = context.partition_key.keys_by_dimension
        base, params = parse_parameter_key(keys["parameter_set"])
        spec = _spec(base, config, stores, context)
        catalog = stores.catalog()
        run = research.run_set(
            runs.read_series(catalog, keys["symbol"], spec.backtest.timeframe),
            spec,
            params,
            stores.venue,
            runs.run_ids(context.run, context.partition_key)(),
            runs.date_of(config.start),
            runs.date_of(config.end),
            stores.strategy_module_allowlist,
            catalog.closes_reader(spec.backtest.timeframe),
        )
        runs.record_run(stores, run.result, run.ledger, run.metrics, context.run.run_id, reports=False)
        return Output(run.metrics, metadata=_set_metadata(run))

    @asset(
        partitions_def=partitions_def,
        group_name="research",
        kinds={"nautilus"},
        deps=[bars, AssetDep(SWEEP_SET_ASSET, partition_mapping=AllPartitionMapping())],
    )
    def sweep_results(context: AssetExecutionContext, config: ResearchConfig, stores: PipelineStores) -> Output[dict]:
        """Every parameter set of the file's ``sweep:`` on the symbol, ranked, with DSR and PBO;
        a heatmap of the metric when two parameters are swept; ``sweep.html`` beside it."""
        from ntrader_pipeline.core import research, research_report, tearsheet  # the engine, pandas: in the run
        from ntrader_pipeline.defs import runs

        keys = context.partition_key.keys_by_dimension
        spec = _spec(keys["strategy"], config, stores, context)
        if spec.sweep is None:
            raise ValueError(f"{spec.source}: no sweep: block to run")
        symbol = keys["symbol"]
        metric = config.metric or spec.sweep.metric
        wanted = [parameter_key(spec.name, p) for p in spec.sweep.parameter_sets()]
        known = set(context.instance.get_dynamic_partitions(parameter_set_partitions.name))
        if new := [k for k in wanted if k not in known]:
            context.instance.add_dynamic_partitions(parameter_set_partitions.name, new)
        catalog = stores.catalog()
        warehouse = stores.warehouse()

        def record(run) -> None:
            runs.record_run(
                stores, run.result, run.ledger, run.metrics, context.run.run_id, warehouse=warehouse, reports=False
            )
            context.log_event(
                AssetMaterialization(
                    asset_key=SWEEP_SET_ASSET,
                    partition=MultiPartitionKey({"parameter_set": run.key, "symbol": symbol}),
                    metadata=_set_metadata(run),
                )
            )

        sets = research.run_sweep(
            runs.read_series(catalog, symbol, spec.backtest.timeframe),
            spec,
            stores.venue,
            runs.run_ids(context.run, context.partition_key),
            runs.date_of(config.start),
            runs.date_of(config.end),
            stores.strategy_module_allowlist,
            catalog.closes_reader(spec.backtest.timeframe),
            on_set=record,
            processes=config.processes or stores.research_processes,
        )
        rows = research.sweep_rows(sets, metric)
        summary = research.overfitting_summary(sets, metric)
        document = {
            "strategy": spec.name,
            "symbol": symbol,
            "metric": metric,
            "parameters": spec.sweep.parameters,
            "overfitting": summary,
            "sets": rows,
        }
        heatmap = research_report.sweep_heatmap_png(rows, spec.sweep.parameters, metric)
        reports, prefix = stores.reports(), sweep_report_prefix(spec.name, symbol)
        with written_folder(reports, prefix) as folder:
            paths = research_report.write_sweep_reports(folder, document, heatmap)
        metadata: dict[str, Any] = {}
        grid = research_report.sweep_grid_markdown(rows, spec.sweep.parameters, metric)
        if grid is not None and len(grid) < tearsheet.INLINE_MARKDOWN_LIMIT:  # first, and shown without a click
            metadata[f"{metric} by parameters"] = MetadataValue.md(grid)
        best = rows[0]
        metadata |= {
            "best": MetadataValue.json(
                {"key": best["key"], "params": best["params"], metric: table_cell(metric, best.get(metric))}
            ),
            "sets": len(rows),
            "deflated_sharpe_ratio": MetadataValue.float(round(summary["dsr"], 4))
            if summary["dsr"] is not None
            else MetadataValue.null(),
            "pbo": MetadataValue.float(round(summary["pbo"], 4))
            if summary["pbo"] is not None
            else MetadataValue.null(),
            "report": MetadataValue.path(reports.url(f"{prefix}/{paths['html'].name}")),
            "sweep": metric_table(SWEEP_TABLE_COLUMNS, rows),
        }
        from ntrader_pipeline.core.overfitting import sweep_figures

        undefined = sweep_figures(summary)["undefined"]
        if undefined:  # why the DSR or PBO above is null
            metadata["undefined"] = MetadataValue.json(undefined)
        if heatmap is not None:
            metadata["heatmap"] = MetadataValue.md(tearsheet.png_markdown(heatmap, f"{metric} by parameters"))
        return Output(document, metadata=metadata)

    @asset(partitions_def=partitions_def, group_name="research", deps=[bars], kinds={"nautilus"})
    def walk_forward(context: AssetExecutionContext, config: ResearchConfig, stores: PipelineStores) -> Output[dict]:
        """The file's ``walk_forward:``: in each window the best set on in-sample bars, run out of
        sample, and the out-of-sample equity stitched into one run (stored and reported like any
        backtest: the same tearsheet with its price and benchmark charts)."""
        from ntrader_pipeline.core import research, research_report, tearsheet  # the engine, pandas: in the run
        from ntrader_pipeline.defs import runs

        keys = context.partition_key.keys_by_dimension
        spec = _spec(keys["strategy"], config, stores, context)
        catalog = stores.catalog()
        wf = research.run_walk_forward(
            runs.read_series(catalog, keys["symbol"], spec.backtest.timeframe),
            spec,
            stores.venue,
            runs.run_ids(context.run, context.partition_key),
            stores.strategy_module_allowlist,
            catalog.closes_reader(spec.backtest.timeframe),
            processes=config.processes or stores.research_processes,
        )
        recorded = runs.record_run(stores, wf.result, wf.ledger, wf.metrics, context.run.run_id, benchmark=wf.benchmark)
        document = {
            "strategy": spec.name,
            "symbol": keys["symbol"],
            "run_id": wf.result.run_id,
            **research.walk_forward_document(wf),
        }
        reports, prefix = stores.reports(), sweep_report_prefix(spec.name, keys["symbol"])
        with written_folder(reports, prefix) as folder:
            paths = research_report.write_walk_forward_reports(folder, document, recorded.curve)
        return Output(
            document,
            metadata={
                "out_of_sample_equity": MetadataValue.md(
                    tearsheet.sparkline_markdown(recorded.curve["equity"], "out-of-sample equity")
                ),
                "run_id": wf.result.run_id,
                "windows": len(wf.windows),
                "chosen": MetadataValue.json(
                    [{"out_of_sample": w["out_of_sample"], "params": w["params"]} for w in document["windows"]]
                ),
                "report": MetadataValue.path(reports.url(f"{prefix}/{paths['html'].name}")),
                "tearsheet": MetadataValue.path(reports.url(f"{wf.result.run_id}/tearsheet.html")),
                **metric_metadata(wf.metrics),
            },
        )

    return [sweep_backtest, sweep_results, walk_forward]
