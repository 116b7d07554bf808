"""``ntrader report``: show and export the reports of stored runs, rebuilt from the warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ntrader_pipeline.cli.common import open_stores, open_warehouse

if TYPE_CHECKING:
    from ntrader_pipeline.adapters.warehouse.results import Market, StoredRun

# --format name → report kind (csv is the trade ledger; equity.csv comes with export-all)
FORMATS = {"text": "text", "csv": "trades", "returns": "returns", "json": "json", "html": "html"}


def _load(run_id: str) -> StoredRun:
    from ntrader_pipeline.adapters.warehouse.results import load_run

    return load_run(open_warehouse(), run_id)


def _needs_curve(stored: StoredRun, run_id: str) -> None:
    """The tearsheet, equity.csv and returns.csv draw on the equity curve, which ``ntrader ops
    prune`` deletes for results that are neither the newest of their strategy × symbol nor kept."""
    if len(stored.curve) == 0 and stored.record.bar_count:
        raise LookupError(
            f"the equity curve of run {run_id} was pruned (ntrader ops prune); its text, csv and json "
            "reports remain, and the report folder written when it ran"
        )


def _market(stored: StoredRun) -> Market:
    """The run's closes and its benchmark from the catalog, for the tearsheet's price and benchmark
    charts and the benchmark column of returns.csv (see ``results.stored_market``)."""
    from ntrader_pipeline.adapters.warehouse.results import stored_market, symbol_and_venue

    catalog = open_stores().catalog(symbol_and_venue(stored.record)[1])
    return stored_market(stored.record, stored.metrics, stored.curve, catalog)


def _warn_without_benchmark(market: Market, run_id: str) -> None:
    if market.problem is not None:
        click.echo(f"warning: run {run_id}: the benchmark column of returns.csv is empty: {market.problem}", err=True)


@click.group()
def report() -> None:
    """Show and export the reports of stored runs."""


@report.command("summary")
@click.argument("run_id")
def summary(run_id: str) -> None:
    """Print the text report of a run: every metric and the last trades."""
    from ntrader_pipeline.core.reports import render

    stored = _load(run_id)
    click.echo(render("text", stored.record, stored.metrics, stored.ledger, stored.curve), nl=False)


@report.command("generate")
@click.option("--backtest-id", "run_id", required=True, help="Run id (see `ntrader backtest list-results`).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="text",
    show_default=True,
    help="text report, csv trade ledger, returns (daily returns of the strategy and its benchmark), "
    "json metrics, or html tearsheet.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: standard output).",
)
def generate(run_id: str, fmt: str, output: Path | None) -> None:
    """Write one report of a run to a file or standard output."""
    from ntrader_pipeline.adapters.warehouse.results import Market
    from ntrader_pipeline.core.reports import render, write_text

    stored = _load(run_id)
    if fmt in ("html", "returns"):
        _needs_curve(stored, run_id)
    market = _market(stored) if fmt in ("html", "returns") else Market(None, None)
    if fmt == "returns":
        _warn_without_benchmark(market, run_id)
    kind = FORMATS[fmt]
    text = render(
        kind, stored.record, stored.metrics, stored.ledger, stored.curve, None, market.prices, market.benchmark
    )
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {write_text(output, text)}")


@report.command("export-all")
@click.argument("run_id")
@click.option(
    "--output-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write into (created if missing).",
)
def export_all(run_id: str, output_dir: Path) -> None:
    """Write metrics.json, trades.csv, equity.csv, returns.csv, report.txt and tearsheet.html of a run."""
    from ntrader_pipeline.core.reports import write_reports

    stored = _load(run_id)
    _needs_curve(stored, run_id)
    market = _market(stored)
    _warn_without_benchmark(market, run_id)
    record, metrics = stored.record, stored.metrics
    written = write_reports(
        output_dir, record, metrics, stored.ledger, stored.curve, None, market.prices, market.benchmark
    )
    for path in written.values():
        click.echo(f"wrote {path}")
