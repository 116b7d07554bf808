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
from datetime import date

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
    TableColumn,
    TableRecord,
    TableSchema,
    asset,
)
from pydantic import Field

from ntrader_pipeline.adapters.object_store import written_folder
from ntrader_pipeline.core.sweeps import parse_parameter_key
from ntrader_pipeline.core.timeframes import Timeframe
from ntrader_pipeline.defs.backtests.assets import StrategyFile, load_strategy, metric_metadata, run_ids, run_record
from ntrader_pipeline.defs.partitions import FILE_STRATEGY_KEY, parameter_set_partitions, sweep_set_partitions
from ntrader_pipeline.defs.resources import PipelineStores

SWEEP_SET_ASSET = "sweep_backtest"


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


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _spec(name: str, config: ResearchConfig, stores: PipelineStores):
    if name == FILE_STRATEGY_KEY and config.spec_file is None:
        raise ValueError(f"spec_file is required on strategy partition {FILE_STRATEGY_KEY}")
    return load_strategy(name, config.spec_file, stores)


def _series(stores: PipelineStores, symbol: str, timeframe: Timeframe):
    series = stores.catalog().read(symbol, timeframe)
    if series is None:
        raise ValueError(f"the catalog has no {timeframe.value} bars for {symbol}; import them first")
    return series


def _save(stores: PipelineStores, run, dagster_run_id: str) -> None:
    from ntrader_pipeline.core.metrics import equity_curve

    record = run_record(run.result, dagster_run_id, stores)
    stores.warehouse().save_run(record, run.metrics, run.ledger.to_dict("records"), equity_curve(run.result))


def sweep_report_prefix(strategy: str, symbol: str) -> str:
    """Where a strategy's sweep and walk-forward reports on a symbol go, under the reports root."""
    return f"research/{re.sub(r'[^A-Za-z0-9_.-]', '_', strategy)}__{symbol}"


def _table_metadata(rows: list[dict]) -> MetadataValue:
    from ntrader_pipeline.core.reports import to_jsonable

    columns = ["rank", "key", "run_id", *[k for k in rows[0] if k not in {"rank", "key", "run_id", "params", "symbol"}]]
    records = [TableRecord({c: v for c in columns if (v := to_jsonable(row.get(c))) is not None}) for row in rows]
    kinds = {
        c: "int" if c in {"rank", "trade_count"} else "string" if c in {"key", "run_id"} else "float" for c in columns
    }
    return MetadataValue.table(records, schema=TableSchema([TableColumn(c, kinds[c]) for c in columns]))


def build_research_assets(partitions_def: MultiPartitionsDefinition) -> list[AssetsDefinition]:
    """``sweep_backtest`` (one partition per parameter set × symbol), and ``sweep_results`` and
    ``walk_forward`` over the given strategy × symbol partitions."""

    bars = AssetDep("bar_catalog", partition_mapping=MultiToSingleDimensionPartitionMapping("symbol"))

    @asset(partitions_def=sweep_set_partitions, group_name="research", deps=[bars], kinds={"nautilus"})
    def sweep_backtest(context: AssetExecutionContext, config: ResearchConfig, stores: PipelineStores) -> Output[dict]:
        """One parameter set of a sweep on one symbol: a backtest stored like any other run."""
        from ntrader_pipeline.core.research import run_set

        keys = context.partition_key.keys_by_dimension
        base, params = parse_parameter_key(keys["parameter_set"])
        spec = _spec(base, config, stores)
        series = _series(stores, keys["symbol"], spec.backtest.timeframe)
        run = run_set(
            series,
            spec,
            params,
            stores.venue,
            run_ids(context.run, context.partition_key)(),
            _date(config.start),
            _date(config.end),
            stores.strategy_module_allowlist,
            stores.catalog().closes_reader(spec.backtest.timeframe),
        )
        _save(stores, run, context.run.run_id)
        return Output(
            run.metrics,
            metadata={
                "params": MetadataValue.json(params),
                "run_id": run.result.run_id,
                **metric_metadata(run.metrics),
            },
        )

    @asset(
        partitions_def=partitions_def,
        group_name="research",
        kinds={"nautilus"},
        deps=[bars, AssetDep(SWEEP_SET_ASSET, partition_mapping=AllPartitionMapping())],
    )
    def sweep_results(context: AssetExecutionContext, config: ResearchConfig, stores: PipelineStores) -> Output[dict]:
        """Every parameter set of the file's ``sweep:`` on the symbol, ranked, with DSR and PBO;
        a heatmap of the metric when two parameters are swept; ``sweep.html`` beside it."""
        from ntrader_pipeline.core.research import overfitting_summary, run_sweep, sweep_rows
        from ntrader_pipeline.core.research_report import sweep_grid_markdown, sweep_heatmap_png, write_sweep_reports
        from ntrader_pipeline.core.sweeps import parameter_key
        from ntrader_pipeline.core.tearsheet import INLINE_MARKDOWN_LIMIT, png_markdown

        keys = context.partition_key.keys_by_dimension
        spec = _spec(keys["strategy"], config, stores)
        if spec.sweep is None:
            raise ValueError(f"{spec.source}: no sweep: block to run")
        symbol = keys["symbol"]
        metric = config.metric or spec.sweep.metric
        wanted = [parameter_key(spec.name, p) for p in spec.sweep.parameter_sets()]
        known = set(context.instance.get_dynamic_partitions(parameter_set_partitions.name))
        if new := [k for k in wanted if k not in known]:
            context.instance.add_dynamic_partitions(parameter_set_partitions.name, new)
        series = _series(stores, symbol, spec.backtest.timeframe)

        def record(run) -> None:
            _save(stores, run, context.run.run_id)
            context.log_event(
                AssetMaterialization(
                    asset_key=SWEEP_SET_ASSET,
                    partition=MultiPartitionKey({"parameter_set": run.key, "symbol": symbol}),
                    metadata={
                        "params": MetadataValue.json(run.params),
                        "run_id": run.result.run_id,
                        **metric_metadata(run.metrics),
                    },
                )
            )

        runs = run_sweep(
            series,
            spec,
            stores.venue,
            run_ids(context.run, context.partition_key),
            _date(config.start),
            _date(config.end),
            stores.strategy_module_allowlist,
            stores.catalog().closes_reader(spec.backtest.timeframe),
            on_set=record,
            processes=config.processes or stores.research_processes,
        )
        rows = sweep_rows(runs, metric)
        summary = overfitting_summary(runs, metric)
        document = {
            "strategy": spec.name,
            "symbol": symbol,
            "metric": metric,
            "parameters": spec.sweep.parameters,
            "overfitting": summary,
            "sets": rows,
        }
        heatmap = sweep_heatmap_png(rows, spec.sweep.parameters, metric)
        reports, prefix = stores.reports(), sweep_report_prefix(spec.name, symbol)
        with written_folder(reports, prefix) as folder:
            paths = write_sweep_reports(folder, document, heatmap)
        metadata = {}
        grid = sweep_grid_markdown(rows, spec.sweep.parameters, metric)
        if grid is not None and len(grid) < INLINE_MARKDOWN_LIMIT:  # first, and shown without a click
            metadata[f"{metric} by parameters"] = MetadataValue.md(grid)
        metadata |= {
            "best": MetadataValue.json({"key": rows[0]["key"], "params": rows[0]["params"], metric: rows[0][metric]}),
            "sets": len(rows),
            "deflated_sharpe_ratio": MetadataValue.float(round(summary["dsr"], 4))
            if summary["dsr"] is not None
            else MetadataValue.null(),
            "pbo": MetadataValue.float(round(summary["pbo"], 4))
            if summary["pbo"] is not None
            else MetadataValue.null(),
            "report": MetadataValue.path(reports.url(f"{prefix}/{paths['html'].name}")),
            "sweep": _table_metadata(rows),
        }
        if heatmap is not None:
            metadata["heatmap"] = MetadataValue.md(png_markdown(heatmap, f"{metric} by parameters"))
        return Output(document, metadata=metadata)

    @asset(partitions_def=partitions_def, group_name="research", deps=[bars], kinds={"nautilus"})
    def walk_forward(context: AssetExecutionContext, config: ResearchConfig, stores: PipelineStores) -> Output[dict]:
        """The file's ``walk_forward:``: in each window the best set on in-sample bars, run out of
        sample, and the out-of-sample equity stitched into one run (stored and reported like any)."""
        from ntrader_pipeline.core.metrics import equity_curve
        from ntrader_pipeline.core.reports import write_reports
        from ntrader_pipeline.core.research import run_walk_forward, walk_forward_document
        from ntrader_pipeline.core.research_report import write_walk_forward_reports
        from ntrader_pipeline.core.tearsheet import sparkline_markdown

        keys = context.partition_key.keys_by_dimension
        spec = _spec(keys["strategy"], config, stores)
        series = _series(stores, keys["symbol"], spec.backtest.timeframe)
        wf = run_walk_forward(
            series,
            spec,
            stores.venue,
            run_ids(context.run, context.partition_key),
            stores.strategy_module_allowlist,
            stores.catalog().closes_reader(spec.backtest.timeframe),
            processes=config.processes or stores.research_processes,
        )
        record = run_record(wf.result, context.run.run_id, stores)
        curve = equity_curve(wf.result)
        stores.warehouse().save_run(record, wf.metrics, wf.ledger.to_dict("records"), curve)
        reports, prefix = stores.reports(), sweep_report_prefix(spec.name, keys["symbol"])
        with written_folder(reports, wf.result.run_id) as folder:
            write_reports(folder, record, wf.metrics, wf.ledger, curve)
        document = {
            "strategy": spec.name,
            "symbol": keys["symbol"],
            "run_id": wf.result.run_id,
            **walk_forward_document(wf),
        }
        with written_folder(reports, prefix) as folder:
            paths = write_walk_forward_reports(folder, document, curve)
        return Output(
            document,
            metadata={
                "out_of_sample_equity": MetadataValue.md(sparkline_markdown(curve["equity"], "out-of-sample equity")),
                "run_id": wf.result.run_id,
                "windows": len(wf.windows),
                "chosen": MetadataValue.json(
                    [{"out_of_sample": w["out_of_sample"], "params": w["params"]} for w in document["windows"]]
                ),
                "report": MetadataValue.path(reports.url(f"{prefix}/{paths['html'].name}")),
                **metric_metadata(wf.metrics),
            },
        )

    return [sweep_backtest, sweep_results, walk_forward]
