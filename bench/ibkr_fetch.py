"""IBKR fetch against the test suite's fake gateway: how fast errors surface, how close to IB's
pacing limit a long fetch runs, bars/s through fetch → validate → both stores at the text (176)
and protobuf (223) server versions, and what a pacing reservation costs in the warehouse ledger.

Run: ``uv run python bench/ibkr_fetch.py``. Prints ratios; nothing is asserted.
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.ibkr.client import IbkrRequestError, IbkrSession
from ntrader_pipeline.adapters.ibkr.fetch import IbkrFetcher
from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.calendar import exchange_calendar
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline_tests.ibkr.fake_gateway import FakeBar, FakeGateway, Pacing, daily_bars
from ntrader_pipeline_tests.support import NVDA_DAILY, ORCL_DAILY

PACING = Pacing(max_requests=6, window=1.0, identical_interval=0.6, per_contract=3, per_contract_window=0.4)
TIMEOUT = 3


def settings(port: int, **extra) -> IbkrSettings:
    return IbkrSettings(
        port=port,
        connect_timeout=3,
        request_timeout=TIMEOUT,
        retry_backoff=0.05,
        max_requests=PACING.max_requests,
        pacing_window=PACING.window,
        identical_interval=PACING.identical_interval,
        per_contract_requests=PACING.per_contract,
        per_contract_window=PACING.per_contract_window,
        **extra,
    )


def error_latency(bars) -> None:
    """An IB error on a request: NautilusTrader's own historic client vs our session."""
    from nautilus_trader.adapters.interactive_brokers.common import IBContract
    from nautilus_trader.adapters.interactive_brokers.historical.client import HistoricInteractiveBrokersClient

    pacing_error = (162, "Historical Market Data Service error message:pacing violation")
    with FakeGateway(bars, pacing=None, script=lambda request: pacing_error) as gateway:

        async def ours() -> float:
            async with IbkrSession(settings(gateway.port)) as session:
                await session.instrument("ORCL")  # contract details first, as the historic client caches them
                started = time.perf_counter()
                try:
                    await session.bars("ORCL", "1-DAY", pd.Timestamp("2014-01-10 21:00", tz="UTC"), "10 D")
                except IbkrRequestError:
                    return time.perf_counter() - started
            raise AssertionError("no error raised")

        async def nautilus() -> tuple[float, int]:
            os.environ["IB_MAX_CONNECTION_ATTEMPTS"] = "1"
            client = HistoricInteractiveBrokersClient(port=gateway.port, client_id=2, log_level="ERROR")
            await client.connect()
            contract = IBContract(secType="STK", symbol="ORCL", exchange="SMART", primaryExchange="NASDAQ")
            started = time.perf_counter()
            bars = await client.request_bars(
                ["1-DAY-LAST"],
                pd.Timestamp("2014-01-10 21:00"),
                "UTC",
                duration="10 D",
                contracts=[contract],
                timeout=TIMEOUT,
            )
            elapsed = time.perf_counter() - started
            await client._client._stop_async()  # it has no public disconnect
            return elapsed, len(bars)

        fast = asyncio.run(ours())
        slow, returned = asyncio.run(nautilus())
    print(
        f"IB error 162 on a request: ours raised in {fast * 1000:.1f} ms; NautilusTrader's historic client "
        f"returned {returned} bars after {slow:.2f} s (timeout {TIMEOUT} s): ratio {slow / fast:,.0f}x"
    )


def pacing_efficiency(bars) -> None:
    """A 16-request fetch under 6 requests/s: elapsed vs the least time the rules allow."""
    with FakeGateway(bars, pacing=PACING) as gateway, tempfile.TemporaryDirectory() as tmp:
        store = MarketDataStore(BarCatalog(Path(tmp) / "catalog", "XNAS"), Warehouse.open(f"sqlite:///{tmp}/w.sqlite"))
        fetcher = IbkrFetcher(settings(gateway.port), store, now_ns=10**19)
        started = time.perf_counter()
        results = fetcher.fetch(["ORCL", "NVDA"], date(2007, 1, 1), date(2014, 12, 31), Timeframe.DAILY)
        elapsed = time.perf_counter() - started
        requests = sum(r.requests for r in results)
        floor = (math.ceil(requests / PACING.max_requests) - 1) * PACING.window
        print(
            f"pacing: {requests} requests in {elapsed:.2f} s, rules allow {floor:.2f} s at best: ratio "
            f"{elapsed / floor:.2f} (violations seen by the gateway: {len(gateway.violations)})"
        )


def minute_throughput(max_version: int) -> float:
    """Synthetic one-minute bars for 60 sessions: bars/s from request to both stores."""
    sessions = exchange_calendar().sessions_in_range("2023-01-03", "2023-03-31")[:60]
    fake = []
    for day in sessions:
        opens = pd.date_range(f"{day.date()} 09:30", periods=390, freq="min", tz="America/New_York").tz_convert("UTC")
        for i, t in enumerate(opens):
            price = 100 + (i % 50) / 100
            seconds = int(t.timestamp())
            fake.append(FakeBar((seconds + 60) * 10**9, str(seconds), price, price + 0.05, price - 0.05, price, 1000))
    loose = dict(max_requests=1000, pacing_window=1, per_contract_requests=1000, per_contract_window=0.01)
    with (
        FakeGateway({"SYN": fake}, pacing=None, max_version=max_version) as gateway,
        tempfile.TemporaryDirectory() as tmp,
    ):
        store = MarketDataStore(BarCatalog(Path(tmp) / "catalog", "XNAS"), Warehouse.open(f"sqlite:///{tmp}/w.sqlite"))
        fetcher = IbkrFetcher(IbkrSettings(port=gateway.port, **loose), store, now_ns=10**19)
        started = time.perf_counter()
        [result] = fetcher.fetch(["SYN"], sessions[0].date(), sessions[-1].date(), Timeframe.MIN1)
        elapsed = time.perf_counter() - started
    if result.error:
        raise SystemExit(f"minute fetch failed: {result.error}")
    rate = result.bars_stored / elapsed
    print(
        f"minute bars at server version {max_version}: {result.bars_stored} bars in {result.requests} requests, "
        f"{elapsed:.2f} s: {rate:,.0f} bars/s end to end (no pacing waits)"
    )
    return rate


def ledger_cost(n: int = 300) -> None:
    """One pacing reservation: the in-process ledger vs the warehouse ledger on SQLite."""
    from ntrader_pipeline.adapters.ibkr.ledger import WarehouseLedger
    from ntrader_pipeline.adapters.ibkr.pacing import MemoryLedger, PacingLimits

    limits = PacingLimits(max_requests=10**6, per_contract=10**6, identical_interval=0)
    with tempfile.TemporaryDirectory() as tmp:
        ledgers = {"memory": MemoryLedger(), "sqlite": WarehouseLedger(Warehouse.open(f"sqlite:///{tmp}/w.sqlite"))}
        costs = {}
        for name, ledger in ledgers.items():
            started = time.perf_counter()
            for i in range(n):
                ledger.reserve("SYM", ("SYM", i), time.time(), limits)
            costs[name] = (time.perf_counter() - started) / n
    print(
        f"pacing reservation: {costs['memory'] * 1e6:.0f} µs in memory, {costs['sqlite'] * 1e3:.2f} ms in the "
        f"SQLite warehouse ({costs['sqlite'] / costs['memory']:,.0f}x; IB allows one request per 10 s on average)"
    )


if __name__ == "__main__":
    fixture = {
        "ORCL": daily_bars(read_bar_csv(ORCL_DAILY, "ORCL").frame),
        "NVDA": daily_bars(read_bar_csv(NVDA_DAILY, "NVDA").frame),
    }
    error_latency(fixture)
    pacing_efficiency(fixture)
    text, protobuf = minute_throughput(176), minute_throughput(223)
    print(f"protobuf (223) vs text (176) bars/s: ratio {protobuf / text:.2f}")
    ledger_cost()
