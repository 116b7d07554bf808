"""``ntrader report``: show and export the reports of stored runs, rebuilt from the warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ntrader_pipeline.cli.common import open_warehouse

if TYPE_CHECKING:
    from ntrader_pipeline.core.records import RunRecord

# --format name → report kind (csv is the trade ledger; equity.csv comes with export-all)
FORMATS = {"text": "text", "csv": "trades", "json": "json", "html": "html"}


def _load(run_id: str):
    from ntrader_pipeline.adapters.warehouse.results import load_run

    return load_run(open_warehouse(), run_id)


def _market(record: RunRecord):
    """The run's closes and its benchmark from the catalog, for the tearsheet's price and benchmark
    charts; (None, None) when the bars are not there any more."""
    import pandas as pd

    from ntrader_pipeline.adapters.catalog import BarCatalog
    from ntrader_pipeline.core.bars import Timeframe
    from ntrader_pipeline.core.metrics import Benchmark
    from ntrader_pipeline.settings import get_settings

    try:
        symbol, venue = record.bar_type.split("-", 1)[0].rsplit(".", 1)
        settings = get_settings()
        catalog = BarCatalog(settings.catalog_location, venue, settings.s3_options())
        read = catalog.closes_reader(Timeframe.of_bar_type(record.bar_type))
        span = [pd.Timestamp(record.start), pd.Timestamp(record.end)]  # UTC

        def cut(frame):
            if frame is None:
                return None
            ts = frame["ts_event"].to_numpy()
            frame = frame[(ts >= span[0].value) & (ts <= span[1].value)].reset_index(drop=True)
            return frame if len(frame) else None

        prices = cut(read(symbol))
        other = (record.config or {}).get("benchmark")
        bench = cut(read(other)) if other and other != symbol else prices
        return prices, None if bench is None else Benchmark(other or symbol, bench)
    except (OSError, ValueError, KeyError):
        return None, None


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
    help="text report, csv trade ledger, json metrics, or html tearsheet.",
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
    from ntrader_pipeline.core.reports import render, write_text

    stored = _load(run_id)
    market = _market(stored.record) if fmt == "html" else (None, None)
    text = render(FORMATS[fmt], stored.record, stored.metrics, stored.ledger, stored.curve, None, *market)
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
    """Write metrics.json, trades.csv, equity.csv, report.txt and tearsheet.html of a run."""
    from ntrader_pipeline.core.reports import write_reports

    stored = _load(run_id)
    written = write_reports(
        output_dir, stored.record, stored.metrics, stored.ledger, stored.curve, None, *_market(stored.record)
    )
    for path in written.values():
        click.echo(f"wrote {path}")
