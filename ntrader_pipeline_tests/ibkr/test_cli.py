"""``ntrader data connect`` and ``ntrader data fetch`` against the fake gateway."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ntrader_pipeline.cli.main import cli

from .fake_gateway import ACCOUNT, SERVER_VERSION


@pytest.fixture
def gateway_env(ntrader_home, monkeypatch):
    """Fast pacing and timeouts through the environment, as a user would set them."""
    for key, value in {
        "NTRADER_IB_CONNECT_TIMEOUT": "2",
        "NTRADER_IB_REQUEST_TIMEOUT": "5",
        "NTRADER_IB_RETRY_BACKOFF": "0.05",
        "NTRADER_IB_PACING_WINDOW": "1",
        "NTRADER_IB_MAX_REQUESTS": "6",
        "NTRADER_IB_IDENTICAL_INTERVAL": "0.6",
        "NTRADER_IB_PER_CONTRACT_WINDOW": "0.4",
        "NTRADER_IB_PER_CONTRACT_REQUESTS": "3",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_HOME", str(ntrader_home.resolved_dagster_home))  # restored after the test
    return ntrader_home


def test_connect_prints_version_time_and_accounts(gateway_env, start_gateway, gateway_bars, monkeypatch):
    monkeypatch.setenv("TWS_USERID", "login-name-zqx")
    monkeypatch.setenv("TWS_PASSWORD", "s3cret-pass-zqx")
    gateway = start_gateway(gateway_bars)
    result = CliRunner().invoke(cli, ["data", "connect", "--port", str(gateway.port), "--client-id", "3"])
    assert result.exit_code == 0, result.output
    assert "zqx" not in result.output  # the gateway login never reaches ntrader's output
    assert f"server version:   {SERVER_VERSION}" in result.output
    assert f"managed accounts: {ACCOUNT}" in result.output
    assert "client id 3 (paper, read-only)" in result.output


def test_connect_to_a_silent_server_fails_within_the_timeout(gateway_env, start_gateway):
    gateway = start_gateway(silent=True)
    result = CliRunner().invoke(cli, ["data", "connect", "--port", str(gateway.port), "--timeout", "1"])
    assert result.exit_code == 1
    assert "handshake did not finish within 1 s" in result.output and "client id" in result.output


def test_fetch_stores_bars_and_reports_each_symbol(gateway_env, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars)
    args = ["data", "fetch", "--instruments", "ORCL,NOSUCH", "--start", "2013-01-01", "--end", "2013-03-31",
            "--port", str(gateway.port)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "error: 1 of 2 symbols failed: NOSUCH: IB error 200" in result.output
    assert "ORCL" in result.output and "fetched" in result.output

    listing = CliRunner().invoke(cli, ["data", "list", "--format", "json"])
    [series] = json.loads(listing.output)
    assert (series["symbol"], series["source"], series["bars"]) == ("ORCL", "ibkr", 60)  # Q1 2013 sessions

    again = CliRunner().invoke(cli, args[:3] + ["ORCL"] + args[4:])
    assert again.exit_code == 0 and "up to date" in again.output
    assert len(gateway.requests) == 1


def test_cli_connect_to_a_closed_port_exits_nonzero_with_one_line(gateway_env):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-c", "from ntrader_pipeline.cli import main; main()", "data", "connect", "--port", str(port)],
        capture_output=True, text=True, timeout=180, env=os.environ.copy(),  # a hang, not slowness
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the gateway at 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr and "4001" in lines[0]
