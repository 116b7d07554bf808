"""``ntrader data connect`` and ``ntrader data fetch``: Interactive Brokers historical bars."""

from __future__ import annotations

import asyncio
from datetime import date

import click
from rich.table import Table

from ntrader_pipeline.cli.common import console, parse_date
from ntrader_pipeline.cli.data import data


def _gateway_options(command):
    for option in reversed(
        [
            click.option("--host", default=None, help="Gateway host [env NTRADER_IB_HOST, default 127.0.0.1]."),
            click.option(
                "--port", type=int, default=None, help="API port [env NTRADER_IB_PORT; default 4002 paper, 4001 live]."
            ),
            click.option(
                "--client-id", type=int, default=None, help="API client id [env NTRADER_IB_CLIENT_ID, default 1]."
            ),
            click.option(
                "--timeout",
                "connect_timeout",
                type=float,
                default=None,
                help="Seconds to wait for the handshake [env NTRADER_IB_CONNECT_TIMEOUT, default 10].",
            ),
        ]
    ):
        command = option(command)
    return command


def _settings(**options):
    from ntrader_pipeline.adapters.ibkr.settings import get_ibkr_settings

    return get_ibkr_settings(**options)


@data.command("connect")
@_gateway_options
def connect(host: str | None, port: int | None, client_id: int | None, connect_timeout: float | None) -> None:
    """Connect to IB Gateway/TWS and show the server version, connection time and accounts."""
    from ntrader_pipeline.adapters.ibkr.client import IbkrSession

    settings = _settings(host=host, port=port, client_id=client_id, connect_timeout=connect_timeout)

    async def probe():
        async with IbkrSession(settings) as session:
            return session.info()

    info = asyncio.run(probe())
    mode = f"{settings.trading_mode}, {'read-only' if settings.read_only else 'read-write'}"
    console.print(f"Connected to {info.host}:{info.port} with client id {info.client_id} ({mode})")
    console.print(f"  server version:   {info.server_version}")
    console.print(f"  connection time:  {info.connection_time}")
    console.print(f"  managed accounts: {', '.join(info.accounts) or '(none)'}")


@data.command("fetch")
@click.option(
    "--instruments",
    required=True,
    help="Comma-separated symbols, e.g. AAPL,MSFT; SYMBOL:EXCHANGE (ABC:NYSE) picks one listing.",
)
@click.option("--start", required=True, callback=parse_date, help="First session (YYYY-MM-DD).")
@click.option("--end", default=None, callback=parse_date, help="Last session (YYYY-MM-DD); default today.")
@click.option("--timeframe", default="DAILY", show_default=True, help="1MIN, 5MIN, 1HOUR or DAILY.")
@_gateway_options
def fetch(
    instruments: str,
    start: date,
    end: date | None,
    timeframe: str,
    host: str | None,
    port: int | None,
    client_id: int | None,
    connect_timeout: float | None,
) -> None:
    """Fetch the bars the catalog lacks from IB (a Dagster run of ibkr_bars, with its checks)."""
    from ntrader_pipeline.cli.common import open_pipeline
    from ntrader_pipeline.core.bars import Timeframe
    from ntrader_pipeline.core.symbols import SymbolError, parse_listings
    from ntrader_pipeline.pipeline import IbkrRunFailed

    try:
        symbols = parse_listings(s.strip() for s in instruments.split(",") if s.strip())
    except SymbolError as exc:
        raise click.BadParameter(str(exc), param_hint="--instruments") from None
    if not symbols:
        raise click.BadParameter("name at least one symbol", param_hint="--instruments")
    tf = Timeframe.parse(timeframe)
    settings = _settings(host=host, port=port, client_id=client_id, connect_timeout=connect_timeout)
    pipeline = open_pipeline()
    with console.status(f"fetching {', '.join(symbols)} from {settings.host}:{settings.resolved_port}"):
        try:
            summary = pipeline.fetch_ibkr(symbols, start, end or date.today(), tf.value, settings)
            failure = None
        except IbkrRunFailed as exc:
            summary, failure = exc.summary, exc
    if summary:
        table = Table("symbol", "requests", "bars stored", "result")
        for row in summary:
            table.add_row(row["symbol"], str(row["requests"]), str(row["bars_stored"]), row["result"])
        console.print(table)
        for row in summary:
            if row.get("note"):
                console.print(f"{row['symbol']}: {row['note']}")
    if failure is not None:
        raise failure
