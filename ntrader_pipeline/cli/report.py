"""``ntrader report``: show and export the reports of stored runs, rebuilt from the warehouse."""

from __future__ import annotations

from pathlib import Path

import click

from ntrader_pipeline.cli.common import open_warehouse

# --format name → report kind (csv is the trade ledger; equity.csv comes with export-all)
FORMATS = {"text": "text", "csv": "trades", "json": "json", "html": "html"}


def _load(run_id: str):
    from ntrader_pipeline.adapters.warehouse.results import load_run

    return load_run(open_warehouse(), run_id)


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
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="text", show_default=True,
              help="text report, csv trade ledger, json metrics, or html tearsheet.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: standard output).")
def generate(run_id: str, fmt: str, output: Path | None) -> None:
    """Write one report of a run to a file or standard output."""
    from ntrader_pipeline.core.reports import render, write_text

    stored = _load(run_id)
    text = render(FORMATS[fmt], stored.record, stored.metrics, stored.ledger, stored.curve)
    if output is None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {write_text(output, text)}")


@report.command("export-all")
@click.argument("run_id")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into (created if missing).")
def export_all(run_id: str, output_dir: Path) -> None:
    """Write metrics.json, trades.csv, equity.csv, report.txt and tearsheet.html of a run."""
    from ntrader_pipeline.core.reports import write_reports

    stored = _load(run_id)
    for path in write_reports(output_dir, stored.record, stored.metrics, stored.ledger, stored.curve).values():
        click.echo(f"wrote {path}")
