"""``ntrader data``: import and inspect market data."""

from __future__ import annotations

import json
import sys

import click
from rich.table import Table

from ntrader_pipeline.cli.common import (
    calendar_param,
    console,
    open_pipeline,
    open_warehouse,
    symbol_param,
    timezone_param,
)


@click.group()
def data() -> None:
    """Import and list market data."""


SHOWN_SKIPPED = 20  # skipped rows printed by import-csv; the run's metadata lists up to 1,000


@data.command("import-csv")
@click.option("--file", "file", required=True, type=click.Path(exists=True, dir_okay=False), help="OHLCV CSV file.")
@click.option("--symbol", required=True, callback=symbol_param, help="Ticker the bars belong to, e.g. AAPL, BRK.B.")
@click.option("--timeframe", default=None, help="1MIN, 5MIN, 1HOUR or DAILY (inferred when omitted).")
@click.option(
    "--calendar",
    default=None,
    callback=calendar_param,
    help="Exchange calendar of the series: XNYS, XLON, XTKS... (exchange-calendars codes; "
    "default: the symbol's stored calendar, else XNYS).",
)
@click.option(
    "--timezone",
    default=None,
    callback=timezone_param,
    help="Timezone of naive timestamps (default: the calendar's, America/New_York for XNYS).",
)
@click.option(
    "--on-invalid",
    type=click.Choice(["reject", "skip"]),
    default="reject",
    show_default=True,
    help="reject: import nothing if any row is bad; skip: drop bad rows and list them.",
)
@click.option("--adjusted", is_flag=True, help="Scale OHLC by Adj Close / Close (Yahoo exports).")
def import_csv(
    file: str,
    symbol: str,
    timeframe: str | None,
    calendar: str | None,
    timezone: str | None,
    on_invalid: str,
    adjusted: bool,
) -> None:
    """Import a CSV into the catalog and the market_data table (replacing overlapping bars)."""
    from ntrader_pipeline.core.bars import Timeframe
    from ntrader_pipeline.core.validation import BarFileError, describe_problems

    if timeframe:
        try:
            timeframe = Timeframe.parse(timeframe).value
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--timeframe") from None
    try:
        stored = open_pipeline().import_csv(
            file, symbol, timeframe, timezone, on_invalid=on_invalid, adjusted=adjusted, calendar=calendar
        )
    except BarFileError as problem:  # the asset's own error: execute_in_process re-raises it as is
        for line in describe_problems(problem.file, problem.problems):
            click.echo(line, err=True)
        click.echo(f"error: {problem.summary}", err=True)
        sys.exit(1)
    adjusted_note = " (OHLC adjusted by Adj Close / Close)" if stored["adjusted"] else ""
    click.echo(
        f"Imported {stored['bars_written']} bars of {stored['bar_type']} on {stored['calendar']}{adjusted_note} "
        f"({stored['first']} -> {stored['last']}); {stored['bars_stored']} stored in all."
    )
    skipped = stored["bars_skipped"]
    if skipped:
        report = stored["skipped_report"].splitlines()
        click.echo(f"Skipped {skipped} of {stored['source_rows']} rows:")
        for line in report[:SHOWN_SKIPPED]:
            click.echo(f"  {line}")
        if len(report) > SHOWN_SKIPPED:
            click.echo(f"  ... the run's materialization metadata lists up to {len(report)} of them")


@data.command("list")
@click.option("--symbol", default=None, help="Only this symbol.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_data(symbol: str | None, fmt: str) -> None:
    """Stored bar series: symbol, bar type, source, count, first and last bar (UTC)."""
    rows = [
        {
            "symbol": row["symbol"],
            "bar_type": row["bar_type"],
            "source": row["source"],
            "bars": row["bars"],
            "first": row["first"].isoformat(),
            "last": row["last"].isoformat(),
        }
        for row in open_warehouse().bar_inventory(symbol)
    ]
    if fmt == "json":
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo("No market data stored" + (f" for {symbol.upper()}." if symbol else "."))
        return
    table = Table("symbol", "bar type", "source", "bars", "first (UTC)", "last (UTC)")
    for row in rows:
        first, last = (row[k].removesuffix("+00:00").replace("T", " ") for k in ("first", "last"))
        table.add_row(row["symbol"], row["bar_type"], row["source"], f"{row['bars']:,}", first, last)
    console.print(table)
