"""``ntrader data connect`` and ``ntrader data fetch``: Interactive Brokers historical bars."""

from __future__ import annotations

import asyncio
from datetime import date

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ntrader_pipeline.cli.common import console, parse_date
from ntrader_pipeline.cli.data import data


def _gateway_options(command):
    for option in reversed(
        [
            click.option("--host", default=None, help="Gateway host [env NTRADER_IB_HOST, default 127.0.0.1]."),
            click.option("--port", type=int, default=None,
                         help="API port [env NTRADER_IB_PORT; default 4002 paper, 4001 live]."),
            click.option("--client-id", type=int, default=None, help="API client id [env NTRADER_IB_CLIENT_ID, default 1]."),
            click.option("--timeout", "connect_timeout", type=float, default=None,
                         help="Seconds to wait for the handshake [env NTRADER_IB_CONNECT_TIMEOUT, default 10]."),
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
@click.option("--instruments", required=True, help="Comma-separated symbols, e.g. AAPL,MSFT.")
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
    """Fetch the bars the catalog lacks from IB into the catalog and market_data (source ibkr)."""
    from ntrader_pipeline.adapters.ibkr.fetch import IbkrFetcher
    from ntrader_pipeline.core.bars import Timeframe
    from ntrader_pipeline.core.symbols import SymbolError, parse_symbols
    from ntrader_pipeline.defs.resources import PipelineStores
    from ntrader_pipeline.settings import get_settings

    try:
        symbols = parse_symbols(s.strip() for s in instruments.split(",") if s.strip())
    except SymbolError as exc:
        raise click.BadParameter(str(exc), param_hint="--instruments") from None
    if not symbols:
        raise click.BadParameter("name at least one symbol", param_hint="--instruments")
    tf = Timeframe.parse(timeframe)
    settings = _settings(host=host, port=port, client_id=client_id, connect_timeout=connect_timeout)
    store = PipelineStores.from_settings(get_settings()).market_data()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("requests", total=None)

        def advance(done: int, total: int, what: str) -> None:
            progress.update(task, completed=done, total=total, description=what)

        fetcher = IbkrFetcher(settings, store, progress=advance)
        results = fetcher.fetch(symbols, start, end or date.today(), tf)

    table = Table("symbol", "requests", "bars stored", "result")
    for r in results:
        status = "up to date" if r.up_to_date else (f"failed: {r.error}" if r.error else "fetched")
        table.add_row(r.symbol, str(r.requests), str(r.bars_stored), status)
    console.print(table)
    _register_symbols([r.symbol for r in results if r.bars_stored])
    failed = [r for r in results if r.error]
    if failed:
        reasons = "; ".join(f"{r.symbol}: {r.error}" for r in failed)
        raise RuntimeError(f"{len(failed)} of {len(results)} symbols failed: {reasons}")


def _register_symbols(symbols: list[str]) -> None:
    """Fetched symbols become symbol partitions, so backtests (CLI and UI) can use them."""
    if symbols:
        from ntrader_pipeline.cli.common import open_pipeline

        open_pipeline().add_symbols(symbols)
