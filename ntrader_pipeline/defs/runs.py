"""What an asset does with a run once the engine made it: record it and show it in the UI.

Backtests, sweep sets and walk-forward runs are all recorded by ``record_run``: the run record,
metrics, trades and equity curve go to the warehouse in one transaction, then (except for sweep
sets) the reports are written with the same inputs (the chart, the bars' closes and the
benchmark). ``report_metadata`` is what the UI shows of those reports.

A backfill batch defers the report folder (``folder=False``): its partitions get the UI's chart and
text report at once, and the folder (tearsheet, CSVs, JSON) is written from the warehouse the first
time something asks for it (``results.write_stored_reports``: ``ntrader``'s tearsheet links, the Python
API's ``report_dir``). Rendering it cost about a fifth of a partition beside the engine.

The engine, pandas and the report writers are imported at the top: this module is imported inside
asset bodies only, so the code location still loads with Dagster alone (``test_startup.py``).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from dagster import DagsterRun, MetadataValue

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.object_store import written_folder
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.backtest import BacktestResult, run_backtest
from ntrader_pipeline.core.bars import BarSeries
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metric_registry import Metrics
from ntrader_pipeline.core.metrics import Benchmark, benchmark_for, compute_metrics, equity_curve
from ntrader_pipeline.core.records import RunRecord
from ntrader_pipeline.core.reports import REPORT_FILES, render, write_reports
from ntrader_pipeline.core.strategy_specs import StrategySpec
from ntrader_pipeline.core.tearsheet import (
    chart_caption,
    chart_title,
    equity_drawdown_png,
    png_markdown,
    sparkline_markdown,
)
from ntrader_pipeline.core.timeframes import Timeframe
from ntrader_pipeline.defs.resources import PipelineStores


def date_of(text: str | None) -> date | None:
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


def read_series(catalog: BarCatalog, symbol: str, timeframe: Timeframe) -> BarSeries:
    series = catalog.read(symbol, timeframe)
    if series is None:
        raise ValueError(f"the catalog has no {timeframe.value} bars for {symbol}; import them first")
    return series


@dataclass(frozen=True)
class Measured:
    """A backtest just run: its result, trade ledger, metrics and what they were measured against."""

    result: BacktestResult
    ledger: pd.DataFrame
    metrics: Metrics
    benchmark: Benchmark


def backtest(
    catalog: BarCatalog,
    series: BarSeries,
    strategy: StrategySpec,
    stores: PipelineStores,
    run_id: str,
    start: date | None,
    end: date | None,
) -> Measured:
    """Run ``strategy`` on ``series`` in NautilusTrader and measure it against its benchmark."""
    result = run_backtest(series, strategy, stores.venue, run_id, start, end, stores.strategy_module_allowlist)
    ledger = trade_ledger(result.fills)
    benchmark = benchmark_for(result, catalog.closes_reader(series.timeframe))
    return Measured(result, ledger, compute_metrics(result, ledger, benchmark), benchmark)


def run_record(result: BacktestResult, dagster_run_id: str, stores: PipelineStores) -> RunRecord:
    """The ``backtest_runs`` row: everything needed to say what ran and to run it again."""
    return RunRecord.of_result(result, dagster_run_id, str(stores.reports_dir_for(result.run_id)))


@dataclass(frozen=True)
class RecordedRun:
    """What ``record_run`` stored and wrote; the chart and report text are None without reports."""

    record: RunRecord
    curve: pd.DataFrame
    chart: bytes | None = None
    report_text: str | None = None


def record_run(
    stores: PipelineStores,
    result: BacktestResult,
    ledger: pd.DataFrame,
    metrics: Metrics,
    dagster_run_id: str,
    *,
    benchmark: Benchmark | None = None,
    warehouse: Warehouse | None = None,
    reports: bool = True,
    folder: bool = True,
) -> RecordedRun:
    """Store a run (record, metrics, trades, equity curve) and, with ``reports``, draw the chart
    the UI shows and write its reports to ``<reports>/<run id>/``: the tearsheet with its price and
    benchmark charts. Without ``folder`` only the chart and the text report are made, and the folder
    waits for ``results.write_stored_reports``. The one way every run is recorded, whatever made it."""
    record = run_record(result, dagster_run_id, stores)
    curve = equity_curve(result)
    (warehouse or stores.warehouse()).save_run(record, metrics, ledger.to_dict("records"), curve)
    if not reports:
        return RecordedRun(record, curve)
    chart = equity_drawdown_png(curve, chart_title(record))  # the UI's chart; the tearsheet draws SVG
    if not folder:
        return RecordedRun(record, curve, chart, render("text", record, metrics, ledger, curve))
    prices = result.equity[["ts_event", "close"]]
    with written_folder(stores.reports(), result.run_id) as out:
        paths = write_reports(out, record, metrics, ledger, curve, chart, prices, benchmark)
        text = paths["text"].read_text()  # on object storage the folder is gone after the block
    return RecordedRun(record, curve, chart, text)


def report_metadata(stores: PipelineStores, recorded: RecordedRun) -> dict[str, Any]:
    """The UI's view of a run's reports: its equity inline, the chart, the text report, links."""
    reports, run_id = stores.reports(), recorded.record.run_id
    return {
        # first and under Dagster's inline limit: the curve shows without a click
        "equity": MetadataValue.md(sparkline_markdown(recorded.curve["equity"])),
        "run_id": run_id,
        "report_dir": MetadataValue.path(reports.url(run_id)),
        "tearsheet": MetadataValue.path(reports.url(f"{run_id}/{REPORT_FILES['html']}")),
        "equity_and_drawdown": MetadataValue.md(
            f"{png_markdown(recorded.chart or b'', 'equity and drawdown')}\n\n{chart_caption(recorded.curve)}"
        ),
        "report": MetadataValue.md(f"```\n{recorded.report_text}\n```"),
    }
