"""The real NautilusTrader IB client against the fake gateway: connect, errors, drops, cleanup."""

from __future__ import annotations

import asyncio
import socket

import pandas as pd
import pytest

from ntrader_pipeline.adapters.ibkr.client import (
    IbkrConnectionError,
    IbkrDisconnected,
    IbkrRequestError,
    IbkrSession,
)

from .conftest import fast_settings
from .fake_gateway import ACCOUNT, DISCONNECT, MAX_VERSION

ORCL_END = pd.Timestamp("2014-01-10 21:00", tz="UTC")


# A request that waited out its timeout instead of ending on the IB answer shows as a hang:
# requests get far more time than ``HANG`` allows the whole test step.
REQUEST_TIMEOUT = 600
HANG = 120


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, HANG))


def test_connect_reports_server_version_time_and_accounts(start_gateway, gateway_bars, no_leaked_threads):
    gateway = start_gateway(gateway_bars)

    async def connect():
        async with IbkrSession(fast_settings(gateway.port, client_id=7)) as session:
            return session.info()

    info = run(connect())
    assert (info.server_version, info.accounts, info.client_id) == (MAX_VERSION, [ACCOUNT], 7)
    assert info.connection_time.startswith(pd.Timestamp.now(tz="America/New_York").strftime("%Y%m%d"))


def test_historical_bars_come_from_the_gateway_fixture(start_gateway, gateway_bars, no_leaked_threads):
    gateway = start_gateway(gateway_bars)

    async def fetch():
        async with IbkrSession(fast_settings(gateway.port)) as session:
            return await session.bars("ORCL", "1-DAY", ORCL_END, "10 D")

    bars, rejected = run(fetch())
    # The 10 days before Jan 10 21:00 UTC hold the sessions Jan 2..10 (Jan 1 is a holiday).
    expected = [b for b in gateway_bars["ORCL"] if ORCL_END.value - 10 * 86_400 * 10**9 < b.close_ns <= ORCL_END.value]
    assert [round(b.close.as_double(), 2) for b in bars] == [round(b.close, 2) for b in expected]
    assert len(bars) == 7 and rejected == []
    assert str(bars[0].bar_type) == "ORCL.XNAS-1-DAY-LAST-EXTERNAL"
    [request] = gateway.requests
    assert (request.end, request.duration, request.bar_size) == ("20140110 21:00:00 UTC", "10 D", "1 day")


def test_no_security_definition_fails_at_once(start_gateway, gateway_bars, no_leaked_threads):
    gateway = start_gateway(gateway_bars)

    async def unknown():
        async with IbkrSession(fast_settings(gateway.port, request_timeout=REQUEST_TIMEOUT)) as session:
            with pytest.raises(IbkrRequestError) as error:
                await session.instrument("NOSUCH")
            return error.value

    error = run(unknown())  # an IB error ends the request, not its timeout
    assert error.code == 200 and not error.transient


def test_pacing_violation_is_a_transient_error_raised_at_once(start_gateway, gateway_bars, no_leaked_threads):
    gateway = start_gateway(
        gateway_bars, script=lambda request: (162, "Historical Market Data Service error message:pacing violation")
    )

    async def paced():
        async with IbkrSession(fast_settings(gateway.port, request_timeout=REQUEST_TIMEOUT)) as session:
            with pytest.raises(IbkrRequestError) as error:
                await session.bars("ORCL", "1-DAY", ORCL_END, "10 D")
            return error.value

    error = run(paced())
    assert error.code == 162 and error.transient


def test_disconnect_in_the_middle_of_a_request_raises_at_once(start_gateway, gateway_bars, no_leaked_threads):
    gateway = start_gateway(gateway_bars, script=lambda request: DISCONNECT)

    async def dropped():
        async with IbkrSession(fast_settings(gateway.port, request_timeout=REQUEST_TIMEOUT)) as session:
            with pytest.raises(IbkrDisconnected):
                await session.bars("ORCL", "1-DAY", ORCL_END, "10 D")

    run(dropped())
    assert len(gateway.requests) == 1


def test_closed_port_fails_at_once_with_advice(no_leaked_threads):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there

    with pytest.raises(IbkrConnectionError, match=rf"127\.0\.0\.1:{port}.*4002.*API.*client id"):
        run(IbkrSession(fast_settings(port, connect_timeout=5)).connect())


def test_silent_server_fails_within_the_connect_timeout(start_gateway, no_leaked_threads):
    gateway = start_gateway(silent=True)

    with pytest.raises(IbkrConnectionError, match="handshake did not finish within 1 s"):
        run(IbkrSession(fast_settings(gateway.port, connect_timeout=1)).connect())


def test_session_leaves_no_tasks_behind(start_gateway, gateway_bars):
    gateway = start_gateway(gateway_bars)

    async def connect_and_count():
        async with IbkrSession(fast_settings(gateway.port)) as session:
            await session.bars("ORCL", "1-DAY", ORCL_END, "5 D")
        await asyncio.sleep(0)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    assert run(connect_and_count()) == []


def test_requests_beyond_ibs_limits_get_ibs_error_codes(start_gateway, gateway_bars, no_leaked_threads):
    gateway = start_gateway(gateway_bars, pacing=None)

    async def refused():
        codes = []
        async with IbkrSession(fast_settings(gateway.port, request_timeout=30)) as session:
            for spec, end, duration in [
                ("1-DAY", ORCL_END, "400 D"),
                ("1-DAY", ORCL_END, "1 Q"),
                ("1-MINUTE", ORCL_END, "8 D"),
                ("1-DAY", pd.Timestamp("1990-01-10", tz="UTC"), "5 D"),
            ]:
                with pytest.raises(IbkrRequestError) as error:
                    await session.bars("ORCL", spec, end, duration)
                codes.append(
                    (error.value.code, error.value.message.rsplit(":", 1)[-1].removeprefix(" cause - ").strip())
                )
        return codes

    assert run(refused()) == [
        (321, "Historical data requests for durations longer than 365 days must be made in years"),
        (321, "Invalid duration '1 Q'"),
        (162, "Time length exceed max."),
        (162, "HMDS query returned no data"),  # before ORCL's first bar
    ]
