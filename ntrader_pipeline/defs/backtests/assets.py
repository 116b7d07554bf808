"""Backtests per strategy × symbol, and what is derived from each: ledger, metrics, reports."""


import uuid
from datetime import UTC, date, datetime

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetsDefinition,
    AutomationCondition,
    Config,
    MetadataValue,
    MultiPartitionsDefinition,
    MultiToSingleDimensionPartitionMapping,
    Output,
    asset,
)
from pydantic import Field

from ntrader_pipeline.core.backtest import BacktestResult, run_backtest
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.ledger import trade_ledger as build_ledger
from ntrader_pipeline.core.metrics import KEY_METRICS, compute_metrics, equity_curve
from ntrader_pipeline.core.reports import write_reports
from ntrader_pipeline.core.strategy_specs import load_spec
from ntrader_pipeline.core.tearsheet import chart_title, equity_drawdown_png, png_markdown
from ntrader_pipeline.defs.backtests.automation import WITH_BACKTEST
from ntrader_pipeline.defs.partitions import FILE_STRATEGY_KEY
from ntrader_pipeline.defs.resources import PipelineStores


class BacktestRunConfig(Config):
    start: str | None = Field(None, description="First date (YYYY-MM-DD); default: the YAML's or all bars.")
    end: str | None = Field(None, description="Last date (YYYY-MM-DD); default: the YAML's or all bars.")
    timeframe: str | None = Field(None, description="Bar interval; default: the YAML's (DAILY).")
    spec_path: str | None = Field(None, description=f"Strategy YAML to run; only on strategy partition {FILE_STRATEGY_KEY}.")


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def build_backtest_assets(
    partitions_def: MultiPartitionsDefinition, automation_condition: AutomationCondition | None = None
) -> list[AssetsDefinition]:
    """The backtest graph over the given strategy × symbol partitions.

    ``automation_condition`` says when Dagster runs ``backtest`` by itself (``automation.on_new_bars``);
    what derives from it then follows in the same run (``automation.WITH_BACKTEST``).
    """
    follows = WITH_BACKTEST if automation_condition is not None else None

    @asset(
        partitions_def=partitions_def,
        group_name="backtests",
        deps=[AssetDep("bar_catalog", partition_mapping=MultiToSingleDimensionPartitionMapping("symbol"))],
        kinds={"nautilus"},
        automation_condition=automation_condition,
    )
    def backtest(context: AssetExecutionContext, config: BacktestRunConfig, stores: PipelineStores) -> Output[BacktestResult]:
        """Run the strategy's YAML on the symbol's catalog bars in NautilusTrader's BacktestEngine."""
        keys = context.partition_key.keys_by_dimension
        if (keys["strategy"] == FILE_STRATEGY_KEY) != bool(config.spec_path):
            raise ValueError(f"spec_path is required on strategy partition {FILE_STRATEGY_KEY} and only there")
        spec = load_spec(config.spec_path or stores.strategy_file(keys["strategy"]))
        timeframe = Timeframe.parse(config.timeframe) if config.timeframe else spec.backtest.timeframe
        series = stores.catalog().read(keys["symbol"], timeframe)
        if series is None:
            raise ValueError(f"the catalog has no {timeframe.value} bars for {keys['symbol']}; import them first")
        result = run_backtest(series, spec, stores.venue, new_run_id(), _date(config.start), _date(config.end),
                              stores.strategy_module_allowlist)
        return Output(
            result,
            metadata={
                "run_id": result.run_id,
                "bars": result.bar_count,
                "fills": len(result.fills),
                "data_sha256": result.data_hash,
                "final_equity": float(result.equity["equity"].iloc[-1]),
            },
        )

    @asset(partitions_def=partitions_def, group_name="backtests", automation_condition=follows)
    def trade_ledger(backtest: BacktestResult) -> Output[pd.DataFrame]:
        """One row per round trip, exact decimals."""
        ledger = build_ledger(backtest.fills)
        return Output(ledger, metadata={"run_id": backtest.run_id, "trades": len(ledger)})

    @asset(partitions_def=partitions_def, group_name="backtests", automation_condition=follows)
    def backtest_metrics(
        context: AssetExecutionContext, backtest: BacktestResult, trade_ledger: pd.DataFrame, stores: PipelineStores
    ) -> Output[dict]:
        """Metrics from mark-to-market equity; the run, its metrics, trades and equity curve go to the warehouse."""
        metrics = compute_metrics(backtest, trade_ledger)
        record = run_record(backtest, context.run.run_id, stores)
        stores.warehouse().save_run(record, metrics, trade_ledger.to_dict("records"), equity_curve(backtest))
        return Output(metrics, metadata={"run_id": backtest.run_id, **metric_metadata(metrics)})

    @asset(partitions_def=partitions_def, group_name="backtests", automation_condition=follows)
    def backtest_report(
        context: AssetExecutionContext,
        backtest: BacktestResult,
        trade_ledger: pd.DataFrame,
        backtest_metrics: dict,
        stores: PipelineStores,
    ) -> Output[str]:
        """Text, CSV, JSON and HTML reports of the run in ``<reports>/<run id>/``, and its chart in the UI."""
        directory = stores.reports_dir_for(backtest.run_id)
        record = run_record(backtest, context.run.run_id, stores)
        curve = equity_curve(backtest)
        chart = equity_drawdown_png(curve, chart_title(record))  # once, for the tearsheet and the UI
        paths = write_reports(directory, record, backtest_metrics, trade_ledger, curve, chart)
        return Output(
            str(directory),
            metadata={
                "run_id": backtest.run_id,
                "report_dir": MetadataValue.path(str(directory)),
                "tearsheet": MetadataValue.path(str(paths["html"])),
                "equity_and_drawdown": MetadataValue.md(png_markdown(chart, "equity and drawdown")),
                "report": MetadataValue.md(f"```\n{paths['text'].read_text()}\n```"),
            },
        )

    return [backtest, trade_ledger, backtest_metrics, backtest_report]


def metric_metadata(metrics: dict) -> dict[str, MetadataValue]:
    """Key metrics as numeric metadata (the UI plots them across materializations); undefined is null."""
    return {
        name: MetadataValue.null() if metrics[name] is None
        else MetadataValue.int(metrics[name]) if isinstance(metrics[name], int)
        else MetadataValue.float(float(metrics[name]))
        for name in KEY_METRICS
    }


def run_record(result: BacktestResult, dagster_run_id: str, stores: PipelineStores) -> dict:
    """The ``backtest_runs`` row: everything needed to say what ran and to run it again."""
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
            {"time": pd.Timestamp(e["ts_event"], tz="UTC").isoformat(), **{k: v for k, v in e.items() if k != "ts_event"}}
            for e in result.risk_events
        ],
    }
