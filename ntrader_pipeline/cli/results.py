"""``ntrader backtest list-results | compare | reproduce``: stored runs, side by side and re-run."""

from __future__ import annotations

import json
import sys

import click
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from ntrader_pipeline.cli.common import console, open_stores, open_warehouse

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
    from ntrader_pipeline.core.metric_registry import (
        HEADLINE_METRICS,
        SUMMARY_METRICS,
        display,
        label,
        machine_metrics,
    )

    table = ranked_results(open_warehouse().list_results(strategy, symbol), sort)
    if fmt == "json":
        click.echo(json.dumps([{**row, **machine_metrics(row, HEADLINE_METRICS)} for row in table], indent=2))
        return
    from ntrader_pipeline.core.metric_display import SORT_KEYS
    from ntrader_pipeline.core.run_summary import parameter_columns

    names = [(row, *parameter_columns(row["strategy"])) for row in table]
    # the sort's figure first, then the others as far as the terminal's width allows
    order = [SORT_KEYS[sort], *(n for n in SUMMARY_METRICS if n != SORT_KEYS[sort])]

    def results_table(shown: list[str]) -> Table:
        out = Table(title=f"{len(table)} runs, by {sort}")
        # a sweep set's parameters in their own column; in a narrow terminal names fold onto more
        # lines rather than being cut, so no two rows read alike (15 sets of one sweep must not)
        out.add_column("run id", overflow="fold", min_width=12)
        for column in ("strategy", "parameters", "symbol", "created (UTC)"):
            out.add_column(column, overflow="fold")
        for name in shown:  # a figure is never folded: its column is as wide as its widest value
            widest = max(len(display(name, row[name])) for row in table) if table else 0
            out.add_column(label(name), justify="right", overflow="fold", min_width=widest)
        for row, strategy, parameters in names:
            created = row["created_at"][:16].replace("T", " ")
            # escaped: a sweep set's name ("sma[fast_period=10]") is not a Rich style tag
            cells = [row["run_id"], escape(strategy), escape(parameters), row["symbol"], created]
            out.add_row(*cells, *(display(n, row[n]) for n in shown))
        return out

    def fits(out: Table) -> bool:  # at its narrowest (names folded) within the terminal: nothing cropped
        unbounded = console.options.update(max_width=100_000)  # else the measure is clamped to the width
        return Measurement.get(console, unbounded, out).minimum <= console.width

    shown = order[:1]
    while len(shown) < len(order) and fits(results_table(order[: len(shown) + 1])):
        shown = order[: len(shown) + 1]
    console.print(results_table(shown))
    if len(shown) < len(order):
        left_out = ", ".join(label(n) for n in order[len(shown) :])
        console.print(f"({left_out}: left out at this width; a wider terminal or --format json shows them)")


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
    out = Table("metric")
    for r in runs:  # a set's name folds rather than being cut
        out.add_column(escape(f"{r.record.run_id}\n{r.record.strategy} {r.record.symbol}"), overflow="fold")
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

    outcome = reproduce_run(open_stores(), run_id)
    for line in outcome.explanation():
        click.echo(line)
    if not outcome.identical:
        sys.exit(1)
