"""The tearsheet, sweep and walk-forward pages opened in a real headless Chromium over the DevTools
protocol: every chart is drawn, the log-scale switch works without scripts, nothing is fetched
from anywhere, and the page logs no error.

Skips when no Chromium is installed, except under ``NTRADER_REQUIRE_BROWSER=1`` (``.ci/run``
installs Debian's ``chromium`` and sets it), where a missing browser fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from datetime import date
from itertools import count
from pathlib import Path

import pytest

from ntrader_pipeline.core.backtest import run_backtest
from ntrader_pipeline.core.csv_bars import read_bar_csv
from ntrader_pipeline.core.ledger import trade_ledger
from ntrader_pipeline.core.metrics import compute_metrics, equity_curve, own_benchmark
from ntrader_pipeline.core.records import RunRecord
from ntrader_pipeline.core.reports import write_reports
from ntrader_pipeline.core.research import (
    overfitting_summary,
    run_sweep,
    run_walk_forward,
    sweep_rows,
    walk_forward_document,
)
from ntrader_pipeline.core.research_report import write_sweep_reports, write_walk_forward_reports
from ntrader_pipeline.core.strategy_specs import load_spec, parse_spec
from ntrader_pipeline_tests.support import ORCL_DAILY, STRATEGY_CONFIGS

pytestmark = pytest.mark.slow  # a headless Chromium

TEARSHEET_CHARTS = {
    "equity",
    "equity-log",
    "underwater",
    "monthly-returns",
    "annual-returns",
    "rolling-sharpe",
    "rolling-volatility",
    "returns-histogram",
    "price-trades",
}


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("NTRADER_REQUIRE_BROWSER") == "1":
        pytest.fail("NTRADER_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
    pytest.skip("no chromium on PATH (apt-get install chromium)")


class Page:
    """One Chromium tab driven over the DevTools websocket; remembers every event it saw."""

    def __init__(self, url: str):
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=None, open_timeout=30)
        self.ids = count(1)
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str) -> None:
        deadline = time.monotonic() + 60
        while not any(e.get("method") == method for e in self.events):
            assert time.monotonic() < deadline, f"no {method} within 60 s"
            self.events.append(json.loads(self.ws.recv(timeout=60)))

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")  # undefined has no value

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(str(p["exceptionDetails"]))
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in {"error", "assert"}:
                out.append(str(p.get("args")))
            elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"])
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1000,1400",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if match := re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line):
                port = int(match.group(1))
        assert port, "Chromium did not open its DevTools port within 60 s"
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def open_page(port: int, path: Path) -> Page:
    new_tab = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(new_tab, timeout=30) as answer:
        target = json.loads(answer.read())
    page = Page(target["webSocketDebuggerUrl"])
    for domain in ("Page", "Runtime", "Log", "Network"):
        page.call(f"{domain}.enable")
    page.call("Page.navigate", url=path.as_uri())
    page.wait_for("Page.loadEventFired")
    return page


def drawn_charts(page: Page) -> dict[str, dict]:
    return {
        c["id"]: c
        for c in page.evaluate(
            "[...document.querySelectorAll('svg.chart')].map(s => ({id: s.id, width: s.getBoundingClientRect().width,"
            " shapes: s.querySelectorAll('polyline,polygon,rect').length}))"
        )
    }


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    orcl = read_bar_csv(ORCL_DAILY, "ORCL")
    folder = tmp_path_factory.mktemp("pages")
    result = run_backtest(
        orcl,
        load_spec(STRATEGY_CONFIGS / "sma_crossover.yaml"),
        "XNAS",
        "browser",
        date(2000, 1, 1),
        date(2006, 12, 31),
    )
    ledger = trade_ledger(result.fills)
    write_reports(
        folder / "run",
        RunRecord.of_result(result),
        compute_metrics(result, ledger),
        ledger,
        equity_curve(result),
        prices=result.equity[["ts_event", "close"]],
        benchmark=own_benchmark(result),
    )
    spec = parse_spec(
        "sma_grid",
        {
            "strategy": "sma_crossover",
            "config": {"fast_period": 10, "slow_period": 30},
            "backtest": {"start": "2004-01-01", "end": "2006-12-31"},
            "sweep": {"grid": {"fast_period": [5, 10], "slow_period": [20, 40]}},
            "walk_forward": {"in_sample": 300, "out_of_sample": 150},
        },
        "sma_grid.yaml",
    )
    numbers = count(1)
    runs = run_sweep(orcl, spec, "XNAS", lambda: f"s{next(numbers)}")
    rows = sweep_rows(runs, "sharpe_ratio")
    write_sweep_reports(
        folder / "sweep",
        {
            "strategy": spec.name,
            "symbol": "ORCL",
            "metric": "sharpe_ratio",
            "parameters": spec.sweep.parameters,
            "overfitting": overfitting_summary(runs, "sharpe_ratio"),
            "sets": rows,
        },
    )
    wf = run_walk_forward(orcl, spec, "XNAS", lambda: f"w{next(numbers)}")
    write_walk_forward_reports(
        folder / "wf",
        {"strategy": spec.name, "symbol": "ORCL", "run_id": wf.result.run_id, **walk_forward_document(wf)},
        equity_curve(wf.result),
    )
    return {
        "tearsheet": folder / "run" / "tearsheet.html",
        "sweep": folder / "sweep" / "sweep.html",
        "walk_forward": folder / "wf" / "walk_forward.html",
    }


def test_the_tearsheet_draws_every_chart_offline_without_errors(browser, pages):
    page = open_page(browser, pages["tearsheet"])
    charts = drawn_charts(page)
    assert set(charts) == TEARSHEET_CHARTS
    for name, chart in charts.items():
        assert chart["shapes"] > 0, name
        assert (chart["width"] > 0) == (name != "equity-log"), name  # the log chart waits for its switch
    page.evaluate("document.getElementById('log-scale').click()")
    charts = drawn_charts(page)
    assert charts["equity-log"]["width"] > 0 and charts["equity"]["width"] == 0
    assert page.evaluate("document.querySelectorAll('h2')[0].textContent") == "Equity"
    assert page.evaluate("document.querySelectorAll('table').length") >= 4  # drawdowns, metrics ×2, trades, run
    assert page.evaluate("document.scripts.length") == 0
    assert page.requests() == [pages["tearsheet"].as_uri()]
    assert page.errors() == []


@pytest.mark.parametrize(("name", "chart"), [("sweep", "sweep-heatmap"), ("walk_forward", "oos-equity")])
def test_sweep_and_walk_forward_pages_draw_their_charts_without_errors(browser, pages, name, chart):
    page = open_page(browser, pages[name])
    charts = drawn_charts(page)
    assert chart in charts and charts[chart]["width"] > 0 and charts[chart]["shapes"] > 0
    assert page.evaluate("document.querySelectorAll('.card').length") >= 4
    assert page.requests() == [pages[name].as_uri()]
    assert page.errors() == []
