"""``ntrader report``: read stored backtest results."""

from __future__ import annotations

from pathlib import Path

import click

from ntrader_pipeline.cli.common import open_warehouse


@click.group()
def report() -> None:
    """Show and export the reports of stored runs."""


@report.command("summary")
@click.argument("run_id")
def summary(run_id: str) -> None:
    """Print the text report of a run."""
    run = open_warehouse().get_run(run_id)
    if run is None:
        raise click.ClickException(f"no backtest run with id {run_id!r}")
    text = Path(run["report_dir"]) / "report.txt"
    if not text.exists():
        raise click.ClickException(f"run {run_id} has no text report at {text}")
    click.echo(text.read_text(), nl=False)
