"""Fetching through the real client from the fake gateway into the real catalog and warehouse.

Tests marked with ``VERSIONS`` run at each server version where the wire format changes.
"""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.ibkr.client import IbkrConnectionError
from ntrader_pipeline.adapters.ibkr.fetch import IbkrFetcher
from ntrader_pipeline.adapters.market_data_store import MarketDataStore
from ntrader_pipeline.adapters.warehouse import Warehouse, market_data
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.csv_bars import read_bar_csv

from .conftest import AAPL_MINUTE, FAST_PACING, ORCL_DAILY, VERSIONS, fast_settings
from .fake_gateway import DISCONNECT, SERVE, FakeBar

NEVER_CLOSED = 10**19  # "now" far in the future: every session of the sample data has closed


def finishes_within(seconds: float, function, *args):
    """``function(*args)``, failing the test if it is still running after ``seconds`` (a hang)."""
    outcome: dict = {}

    def call() -> None:
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = error

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def make_store(tmp_path: Path, url: str) -> MarketDataStore:
    return MarketDataStore(BarCatalog(tmp_path / "catalog", "XNAS"), Warehouse.open(url))


def table_rows(store: MarketDataStore, symbol: str) -> pd.DataFrame:
    with store.warehouse.engine.connect() as connection:
        rows = connection.execute(
            select(market_data.c.timestamp, market_data.c.close, market_data.c.data_source)
            .where(market_data.c.symbol == symbol)
            .order_by(market_data.c.timestamp)
        ).all()
    return pd.DataFrame(rows, columns=["timestamp", "close", "data_source"])


@pytest.mark.parametrize("server_version", VERSIONS, indirect=True)
def test_daily_fetch_lands_in_both_stores_as_ibkr(tmp_path, warehouse_url, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars)
    store = make_store(tmp_path, warehouse_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port), store, now_ns=NEVER_CLOSED)

    [result] = fetcher.fetch(["orcl"], date(2013, 1, 1), date(2013, 12, 31), Timeframe.DAILY)

    # Independent count: the CSV's 2013 rows, which the gateway serves.
    csv = pd.read_csv(ORCL_DAILY)
    expected = csv[(csv["Date"] >= "2013-01-01") & (csv["Date"] <= "2013-12-31")]
    assert (result.error, result.requests, result.bars_stored) == (None, 1, len(expected)) == (None, 1, 252)
    stored = store.catalog.read("ORCL", Timeframe.DAILY)
    assert len(stored) == 252
    assert np.allclose(stored.frame["close"], expected["Close"].round(2))
    # Daily bars are stamped at the session close: 16:00 New York, 13:00 on the early close of Jul 3.
    closes = pd.to_datetime(stored.frame["ts_event"], utc=True).dt.tz_convert("America/New_York")
    assert closes.iloc[0] == pd.Timestamp("2013-01-02 16:00", tz="America/New_York")
    assert pd.Timestamp("2013-07-03 13:00", tz="America/New_York") in set(closes)
    rows = table_rows(store, "ORCL")
    assert len(rows) == 252 and set(rows["data_source"]) == {"ibkr"}


def test_only_missing_sessions_are_requested(tmp_path, sqlite_url, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars)
    store = make_store(tmp_path, sqlite_url)
    # The catalog already holds Feb..Nov 2013 from the CSV (6-decimal prices, source csv).
    csv = read_bar_csv(ORCL_DAILY, "ORCL")
    frame = csv.frame
    inside = (frame["ts_event"] >= pd.Timestamp("2013-02-01", tz="UTC").value) & (
        frame["ts_event"] < pd.Timestamp("2013-12-01", tz="UTC").value
    )
    store.replace(type(csv)("ORCL", Timeframe.DAILY, frame[inside].reset_index(drop=True), csv.price_precision))
    fetcher = IbkrFetcher(fast_settings(gateway.port), store, now_ns=NEVER_CLOSED)

    [result] = fetcher.fetch(["ORCL"], date(2013, 1, 1), date(2013, 12, 31), Timeframe.DAILY)

    assert result.requests == 2  # January and December, not the stored months
    assert [r.end for r in gateway.requests] == ["20130131 21:00:00 UTC", "20131231 21:00:00 UTC"]
    assert [r.duration for r in gateway.requests] == ["30 D", "30 D"]  # Jan 2..31, Dec 2..31
    rows = table_rows(store, "ORCL")
    assert len(rows) == 252
    by_month = rows.groupby(pd.to_datetime(rows["timestamp"]).dt.month)["data_source"].agg(set)
    assert by_month[1] == {"ibkr"} and by_month[6] == {"csv"} and by_month[12] == {"ibkr"}

    again = fetcher.fetch(["ORCL"], date(2013, 1, 1), date(2013, 12, 31), Timeframe.DAILY)
    assert again[0].up_to_date and len(gateway.requests) == 2  # nothing missing: no request at all


def test_a_long_fetch_keeps_every_pacing_rule(tmp_path, sqlite_url, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars)
    store = make_store(tmp_path, sqlite_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port), store, now_ns=NEVER_CLOSED)

    results = fetcher.fetch(["ORCL", "NVDA"], date(2007, 1, 1), date(2014, 12, 31), Timeframe.DAILY)

    assert [r.error for r in results] == [None, None]
    assert sum(r.requests for r in results) == len(gateway.requests) == 16  # 8 yearly chunks each
    assert gateway.violations == []
    # Check the gateway's own log against the rules, independently of its 162 logic.
    times = np.array([r.at for r in gateway.requests])
    for i, request in enumerate(gateway.requests):
        window = times[(times > request.at - FAST_PACING.window) & (times <= request.at)]
        assert len(window) <= FAST_PACING.max_requests
        same_symbol = [r.at for r in gateway.requests[: i + 1] if r.symbol == request.symbol]
        recent = [t for t in same_symbol if request.at - t < FAST_PACING.per_contract_window]
        assert len(recent) <= FAST_PACING.per_contract
    assert len({r.key for r in gateway.requests}) == 16  # no request repeated
    assert store.catalog.read("NVDA", Timeframe.DAILY).first_ns < store.catalog.read("NVDA", Timeframe.DAILY).last_ns


@pytest.mark.parametrize("server_version", VERSIONS, indirect=True)
def test_transient_errors_are_retried_and_definitive_ones_reported_at_once(
    tmp_path, sqlite_url, start_gateway, clean_bars
):
    answers = iter([(162, "Historical Market Data Service error message:pacing violation"), DISCONNECT])

    def flaky(request):  # the first two ORCL requests fail, everything after is served
        return next(answers, SERVE) if request.symbol == "ORCL" else SERVE

    gateway = start_gateway(clean_bars, script=flaky)
    store = make_store(tmp_path, sqlite_url)
    # An error that waited out its request timeout instead of ending the request shows as a hang.
    fetcher = IbkrFetcher(fast_settings(gateway.port, request_timeout=600), store, now_ns=NEVER_CLOSED)

    orcl, missing = finishes_within(
        120, fetcher.fetch, ["ORCL", "NOSUCH"], date(2013, 1, 1), date(2013, 12, 31), Timeframe.DAILY
    )

    assert (orcl.error, orcl.requests, orcl.bars_stored) == (None, 3, 252)
    first, retry = gateway.requests[0], gateway.requests[1]
    assert first.key == retry.key and retry.at - first.at >= FAST_PACING.identical_interval
    assert gateway.violations == []
    assert gateway.connections >= 3  # probe + first session + the session after the drop
    assert missing.error == "IB error 200: No security definition has been found for the request"
    assert missing.requests == 0


def test_retries_give_up_with_the_reason(tmp_path, sqlite_url, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars, script=lambda request: (162, "pacing violation"))
    store = make_store(tmp_path, sqlite_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port, retries=2), store, now_ns=NEVER_CLOSED)

    [result] = fetcher.fetch(["ORCL"], date(2013, 1, 1), date(2013, 3, 31), Timeframe.DAILY)

    assert result.requests == 3 and result.error == "IB error 162: pacing violation"
    assert store.catalog.read("ORCL", Timeframe.DAILY) is None


@pytest.mark.parametrize("server_version", VERSIONS, indirect=True)
def test_a_bad_bar_stores_nothing_and_keeps_earlier_data(tmp_path, sqlite_url, start_gateway, gateway_bars):
    gateway = start_gateway(gateway_bars)
    store = make_store(tmp_path, sqlite_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port), store, now_ns=NEVER_CLOSED)
    fetcher.fetch(["ORCL"], date(2013, 1, 1), date(2013, 1, 31), Timeframe.DAILY)
    before = table_rows(store, "ORCL")

    [result] = fetcher.fetch(["AAPL", "ORCL"], date(2024, 1, 2), date(2024, 1, 2), Timeframe.MIN1)[:1]

    # NautilusTrader drops the bar with open 191.40 above high 191.25; we put it back and the CSV
    # rules name it: bar 32 of the day (file line 33 of the CSV the gateway serves).
    assert result.error == (
        "IBKR AAPL 1MIN bars 2024-01-02..2024-01-02 (bar number):32 column 'high': value '191.25': "
        "high is below open, close or low"
    )
    assert store.catalog.read("AAPL", Timeframe.MIN1) is None and table_rows(store, "AAPL").empty
    pd.testing.assert_frame_equal(table_rows(store, "ORCL"), before)


def test_minute_bars_are_stamped_at_their_close(tmp_path, sqlite_url, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars)
    store = make_store(tmp_path, sqlite_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port), store, now_ns=NEVER_CLOSED)

    [result] = fetcher.fetch(["AAPL"], date(2024, 1, 2), date(2024, 1, 2), Timeframe.MIN1)

    csv_rows = len(pd.read_csv(AAPL_MINUTE))
    assert (result.error, result.bars_stored) == (None, csv_rows - 1) == (None, 50)  # all but the bad bar
    [request] = gateway.requests
    assert (request.bar_size, request.duration, request.end) == ("1 min", "1 D", "20240102 21:00:00 UTC")
    first = store.catalog.read("AAPL", Timeframe.MIN1).frame.iloc[0]
    # The 09:30 bar of the CSV (open 185.25) closes at 09:31 New York = 14:31 UTC.
    assert first["ts_event"] == pd.Timestamp("2024-01-02 14:31", tz="UTC").value and first["open"] == 185.25


def test_unreachable_gateway_fails_the_fetch_without_writing(tmp_path, sqlite_url, start_gateway):
    gateway = start_gateway(silent=True)
    store = make_store(tmp_path, sqlite_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port, connect_timeout=1), store, now_ns=NEVER_CLOSED)

    with pytest.raises(IbkrConnectionError, match="handshake"):
        fetcher.fetch(["ORCL"], date(2013, 1, 1), date(2013, 1, 31), Timeframe.DAILY)
    assert store.catalog.read("ORCL", Timeframe.DAILY) is None


@pytest.mark.parametrize("server_version", VERSIONS, indirect=True)
def test_minute_chunks_across_the_dst_change_deliver_each_bar_once(tmp_path, sqlite_url, start_gateway):
    # Chunks Tue Feb 28..Mon Mar 6 and Tue Mar 7..Mon Mar 13. DST starts on Mar 12, so the second
    # request ends at 20:00 UTC and its "7 D" window reaches back into Mar 6's last hour (EST).
    sessions = pd.bdate_range("2023-02-28", "2023-03-13")
    bars = []
    for day in sessions:
        opens = pd.date_range(f"{day.date()} 09:30", periods=390, freq="min", tz="America/New_York")
        for i, t in enumerate(opens):
            seconds = int(t.timestamp())
            price = 100 + i / 100
            bars.append(FakeBar((seconds + 60) * 10**9, str(seconds), price, price + 0.02, price - 0.02, price, 100))
    gateway = start_gateway({"SYN": bars})
    store = make_store(tmp_path, sqlite_url)
    # 1,950 bars per answer: a generous timeout, so a loaded machine is not taken for a silent gateway.
    fetcher = IbkrFetcher(fast_settings(gateway.port, request_timeout=120), store, now_ns=NEVER_CLOSED)

    [result] = fetcher.fetch(["SYN"], date(2023, 2, 28), date(2023, 3, 13), Timeframe.MIN1)

    assert (result.error, result.requests, result.bars_stored) == (None, 2, 10 * 390)
    stored = store.catalog.read("SYN", Timeframe.MIN1).frame["ts_event"]
    assert stored.is_unique and len(stored) == 3900
