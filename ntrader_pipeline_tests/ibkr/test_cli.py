"""``ntrader data connect`` and ``ntrader data fetch`` against the fake gateway."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.cli.main import cli
from ntrader_pipeline.defs.ibkr.assets import IBKR_JOB

from .fake_gateway import ACCOUNT, MAX_VERSION, SILENCE, Pacing
from .test_fetch import finishes_within


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
    assert f"server version:   {MAX_VERSION}" in result.output  # the most both sides speak
    assert f"managed accounts: {ACCOUNT}" in result.output
    assert "client id 3 (paper, read-only)" in result.output


def test_connect_to_a_silent_server_fails_within_the_timeout(gateway_env, start_gateway):
    gateway = start_gateway(silent=True)
    result = CliRunner().invoke(cli, ["data", "connect", "--port", str(gateway.port), "--timeout", "1"])
    assert result.exit_code == 1
    assert "handshake did not finish within 1 s" in result.output and "client id" in result.output


def test_fetch_stores_bars_and_reports_each_symbol(gateway_env, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars)
    args = [
        "data",
        "fetch",
        "--instruments",
        "ORCL,NOSUCH",
        "--start",
        "2013-01-01",
        "--end",
        "2013-03-31",
        "--port",
        str(gateway.port),
    ]
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

    # Each fetch was a Dagster run of ibkr_bars on the instance the UI shows, checks included.
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name=IBKR_JOB))
        assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE]
        checks = instance.all_logs(runs[0].run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        evaluations = {
            e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data for e in checks
        }
        assert evaluations["ohlc_consistent"].passed and evaluations["row_count_matches_source"].passed


def test_cli_connect_to_a_closed_port_exits_nonzero_with_one_line(gateway_env):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-c", "from ntrader_pipeline.cli import main; main()", "data", "connect", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=180,
        env=os.environ.copy(),  # a hang, not slowness
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the gateway at 127.0.0.1:{port}")
    assert "Traceback" not in done.stderr and "4001" in lines[0]


# One fetch in its own process, configured from the environment as the CLI is (without Dagster's
# imports: the CLI's Dagster run is tested above; this is about two processes and one budget).
FETCH_PROCESS = """
import sys
from datetime import date
from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.ibkr.fetch import IbkrFetcher
from ntrader_pipeline.adapters.ibkr.settings import get_ibkr_settings
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.settings import get_settings

settings = get_settings()
store = MarketDataStore(BarCatalog(settings.resolved_catalog_path, settings.venue),
                        Warehouse.open(settings.resolved_warehouse_url))
[result] = IbkrFetcher(get_ibkr_settings(client_id=int(sys.argv[2])), store).fetch(
    [sys.argv[1]], date(2011, 1, 1), date(2014, 6, 30), Timeframe.DAILY)
sys.exit(result.error)
"""


def test_two_fetch_processes_keep_ibs_pacing_together(gateway_env, start_gateway, clean_bars, monkeypatch):
    """Two fetch processes at once: together they stay within one pacing budget."""
    window, budget = 5.0, 6
    gateway = start_gateway(
        clean_bars,
        pacing=Pacing(
            max_requests=budget, window=window, identical_interval=0.6, per_contract=3, per_contract_window=0.4
        ),
    )
    monkeypatch.setenv("NTRADER_IB_PORT", str(gateway.port))
    monkeypatch.setenv("NTRADER_IB_PACING_WINDOW", str(window))
    monkeypatch.setenv("NTRADER_IB_MAX_REQUESTS", str(budget))
    monkeypatch.setenv("NTRADER_IB_REQUEST_TIMEOUT", "30")
    Warehouse.open(gateway_env.resolved_warehouse_url)  # migrated before either process starts
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FETCH_PROCESS, symbol, str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for i, symbol in enumerate(["ORCL", "NVDA"], start=1)
    ]
    outputs = [p.communicate(timeout=240) for p in processes]

    assert [p.returncode for p in processes] == [0, 0], outputs
    assert gateway.violations == []
    assert sorted(r.symbol for r in gateway.requests) == ["NVDA"] * 4 + ["ORCL"] * 4  # 4 chunks each
    times = sorted(r.at for r in gateway.requests)
    assert all(sum(1 for u in times if t - window < u <= t) <= budget for t in times)
    # 8 data requests (and 2 head time stamps) against a budget of 6: one process waited for the other's.
    assert times[-1] - times[0] >= window / 2


def _fetch_args(port: int) -> list[str]:
    return ["data", "fetch", "--instruments", "ORCL,NVDA", "--start", "2013-01-01", "--end", "2013-03-31"] + [
        "--port",
        str(port),
    ]


def test_fetch_goes_on_without_the_listing_date_when_ib_leaves_its_request_unanswered(
    gateway_env, start_gateway, clean_bars
):
    """reqHeadTimeStamp only saves requests: unanswered, the symbols are fetched unclipped, the
    output says so, and the fetch is not retried for it."""
    gateway = start_gateway(clean_bars, head_script=lambda symbol: SILENCE)

    result = finishes_within(300, CliRunner().invoke, cli, _fetch_args(gateway.port))

    output = " ".join(result.output.split())  # Rich may wrap a long line
    assert result.exit_code == 0, output
    note = "listing date unknown (IB did not answer reqHeadTimeStamp within 5 s): fetched without clipping"
    assert f"ORCL: {note}" in output and f"NVDA: {note}" in output
    assert len(gateway.head_requests) == 1  # asked once; IB leaves it hanging for a while, not per symbol
    listing = json.loads(CliRunner().invoke(cli, ["data", "list", "--format", "json"]).output)
    assert {(s["symbol"], s["bars"]) for s in listing} == {("ORCL", 60), ("NVDA", 60)}


def test_a_gateway_that_stops_answering_fails_the_fetch_at_once_with_the_reason(gateway_env, start_gateway, clean_bars):
    """Hung mid-fetch (connection open, nothing answered): one request times out, a time request
    goes unanswered too, and the command fails naming both, with no retry and no other symbol tried."""
    gateway = start_gateway(clean_bars)

    def hang(request):
        gateway.stop_answering()
        return SILENCE

    gateway.script = hang

    result = finishes_within(300, CliRunner().invoke, cli, _fetch_args(gateway.port))

    output = " ".join(result.output.split())
    assert result.exit_code == 1, output
    assert (
        f"error: the gateway at 127.0.0.1:{gateway.port} stopped answering: no answer from the gateway within 5 s, "
        "and no answer to a time request within 2 s" in output
    )
    assert len(gateway.requests) == 1 and gateway.time_requests == 1
