"""Fixtures for the IBKR tests: a fake gateway serving real sample bars, and fast settings."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline_tests.support import AAPL_MINUTE, NVDA_DAILY, ORCL_DAILY

from .fake_gateway import MAX_VERSION, FakeBar, FakeGateway, Pacing, daily_bars, minute_bars

# Server versions where the wire changes: text (176), error time stamps (194), a separate
# historicalDataEnd (196), protobuf historical data (208) and the most NautilusTrader's client offers.
VERSIONS = [176, 194, 196, 208, MAX_VERSION]

# Pacing small enough for a test to hit every rule within seconds, same shape as IB's.
FAST_PACING = Pacing(max_requests=6, window=1.0, identical_interval=0.6, per_contract=3, per_contract_window=0.4)


def fast_settings(port: int, **overrides) -> IbkrSettings:
    values = dict(
        host="127.0.0.1",
        port=port,
        connect_timeout=3.0,
        request_timeout=3.0,
        retries=2,
        retry_backoff=0.05,
        max_requests=FAST_PACING.max_requests,
        pacing_window=FAST_PACING.window,
        identical_interval=FAST_PACING.identical_interval,
        per_contract_requests=FAST_PACING.per_contract,
        per_contract_window=FAST_PACING.per_contract_window,
    )
    values.update(overrides)
    return IbkrSettings(**values)


@pytest.fixture(scope="session")
def gateway_bars() -> dict[str, list[FakeBar]]:
    """Real sample bars as the gateway serves them; AAPL minutes include the file's bad bar."""
    return {
        "ORCL": daily_bars(read_bar_csv(ORCL_DAILY, "ORCL").frame),
        "NVDA": daily_bars(read_bar_csv(NVDA_DAILY, "NVDA").frame),
        "AAPL": minute_bars(AAPL_MINUTE),
    }


@pytest.fixture
def clean_bars(gateway_bars) -> dict[str, list[FakeBar]]:
    """The same bars without AAPL's bar whose open is above its high."""
    return {**gateway_bars, "AAPL": [b for b in gateway_bars["AAPL"] if b.high >= max(b.open, b.close)]}


@pytest.fixture
def server_version(request) -> int:
    """The highest version the fake offers: what a current gateway negotiates, unless parametrized."""
    return getattr(request, "param", MAX_VERSION)


@pytest.fixture
def start_gateway(server_version) -> Iterator[Callable[..., FakeGateway]]:
    """Start fake gateways (``start_gateway(bars, **options)``); all are closed after the test."""
    started: list[FakeGateway] = []

    def start(bars=None, **options) -> FakeGateway:
        options.setdefault("pacing", FAST_PACING)
        options.setdefault("max_version", server_version)
        gateway = FakeGateway(bars or {}, **options).__enter__()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.__exit__(None, None, None)


@pytest.fixture
def no_leaked_threads() -> Iterator[None]:
    """Fail when a test leaves a non-daemon thread running (it would keep pytest alive)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    assert not leaked, f"threads left running: {leaked}"
