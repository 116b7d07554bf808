"""``ntrader backtest list-results | compare | reproduce``: stored runs, side by side and re-run."""

from __future__ import annotations

import json
import sys

import click
from rich.markup import escape
from rich.table import Table

from ntrader_pipeline.cli.common import console, open_warehouse

# core.metric_display.SORT_KEYS, spelled out so that `--help` imports nothing more; a test keeps them equal.
SORT_CHOICES = ["sharpe", "return", "drawdown"]


@click.command("list-results")
@click.option("--strategy", default=None, help="Only runs of this strategy.")
@click.option("--symbol", default=None, help="Only runs on this symbol.")
@click.option(
    "--sort",
    type=click.Choice(SORT_CHOICES),
    default="sharpe",
    show_default=True,
    help="Best first: highest Sharpe or total return, shallowest max drawdown.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_results(strategy: str | None, symbol: str | None, sort: str, fmt: str) -> None:
    """Stored backtest runs with their headline metrics (JSON: every headline metric)."""
    from ntrader_pipeline.core.metric_display import ranked_results
    from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS, display, label, machine_metrics

    table = ranked_results(open_warehouse().list_results(strategy, symbol), sort)
    if fmt == "json":
        click.echo(json.dumps([{**row, **machine_metrics(row, HEADLINE_METRICS)} for row in table], indent=2))
        return
    shown = ("total_return", "cagr", "sharpe_ratio", "max_drawdown", "trade_count")
    out = Table(
        "run id", "strategy", "symbol", "created (UTC)", *map(label, shown), title=f"{len(table)} runs, by {sort}"
    )
    for row in table:
        values = [display(n, row[n]) for n in shown]
        # escaped: a sweep set's name ("sma[fast_period=10]") is not a Rich style tag
        out.add_row(row["run_id"], escape(row["strategy"]), row["symbol"], row["created_at"][:19], *values)
    console.print(out)


@click.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
def compare(run_ids: tuple[str, ...]) -> None:
    """Headline metrics of two or more runs side by side."""
    from ntrader_pipeline.adapters.warehouse.results import load_run
    from ntrader_pipeline.core.metric_registry import HEADLINE_METRICS, display

    if len(run_ids) < 2:
        raise click.UsageError("compare needs at least two run ids")
    warehouse = open_warehouse()
    runs = [load_run(warehouse, run_id) for run_id in run_ids]
    out = Table("metric", *(f"{r.record.run_id}\n{r.record.strategy} {r.record.symbol}" for r in runs))
    for name in ("start", "end", *HEADLINE_METRICS):
        out.add_row(name, *(display(name, r.metrics.get(name)) for r in runs), end_section=name == "end")
    console.print(out)


@click.command("reproduce")
@click.argument("run_id")
def reproduce(run_id: str) -> None:
    """Re-run a stored run from its stored inputs and say whether every metric is identical.

    Exits 1 when the data, the versions or any metric differ, naming each difference.
    """
    from ntrader_pipeline.reproduction import reproduce_run  # imports NautilusTrader: only when needed

    outcome = reproduce_run(open_warehouse(), run_id)
    for line in outcome.explanation():
        click.echo(line)
    if not outcome.identical:
        sys.exit(1)
