"""``ntrader data``: import and inspect market data."""

from __future__ import annotations

import json

import click
from rich.table import Table

from ntrader_pipeline.cli.common import console, open_pipeline, open_warehouse


@click.group()
def data() -> None:
    """Import and list market data."""


@data.command("import-csv")
@click.option("--file", "file", required=True, type=click.Path(exists=True, dir_okay=False), help="OHLCV CSV file.")
@click.option("--symbol", required=True, help="Ticker the bars belong to, e.g. AAPL.")
@click.option("--timeframe", default=None, help="1MIN, 5MIN, 1HOUR or DAILY (inferred when omitted).")
@click.option("--timezone", default="America/New_York", show_default=True, help="Timezone of naive timestamps.")
def import_csv(file: str, symbol: str, timeframe: str | None, timezone: str) -> None:
    """Import a CSV into the catalog and the market_data table (replacing overlapping bars)."""
    stored = open_pipeline().import_csv(file, symbol, timeframe, timezone)
    console.print(
        f"Imported {stored['bars_written']} bars of {stored['bar_type']} "
        f"({stored['first']} → {stored['last']}); {stored['bars_stored']} stored in all."
    )


@data.command("list")
@click.option("--symbol", default=None, help="Only this symbol.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def list_data(symbol: str | None, fmt: str) -> None:
    """Stored bar series: symbol, bar type, source, count, first and last bar."""
    rows = open_warehouse().bar_inventory(symbol)
    for row in rows:
        for key in ("first", "last"):
            row[key] = row[key].isoformat() if hasattr(row[key], "isoformat") else row[key]
    if fmt == "json":
        click.echo(json.dumps(rows))
        return
    table = Table("symbol", "bar type", "source", "bars", "first", "last")
    for row in rows:
        table.add_row(row["symbol"], row["bar_type"], row["source"], str(row["bars"]), row["first"], row["last"])
    console.print(table)
