"""Which bars a fetch asks for: from the listing date on, extended hours, adjusted, one listing."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ntrader_pipeline.adapters.ibkr.fetch import IbkrFetcher
from ntrader_pipeline.adapters.market_data_store import MixedAdjustmentError
from ntrader_pipeline.core import quality
from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.calendar import exchange_calendar, session_close_ns
from ntrader_pipeline.core.csv_bars import read_bar_csv

from .conftest import ORCL_DAILY, VERSIONS, fast_settings
from .fake_gateway import FakeBar, synthetic_minutes
from .test_fetch import NEVER_CLOSED, make_store, table_rows


def daily_from(first: str, last: str, base: float = 50.0) -> list[FakeBar]:
    """A daily bar for every XNYS session from ``first`` to ``last``."""
    sessions = exchange_calendar().sessions_in_range(first, last)
    closes = session_close_ns(pd.Series(sessions))
    return [
        FakeBar(int(c), d.strftime("%Y%m%d"), base + i / 10, base + i / 10 + 1, base + i / 10 - 1, base + i / 10, 1000)
        for i, (d, c) in enumerate(zip(sessions, closes))
    ]


@pytest.mark.parametrize("server_version", VERSIONS, indirect=True)
def test_a_rerun_over_sessions_before_the_listing_sends_nothing(tmp_path, sqlite_url, start_gateway):
    # NEW lists on 2024-06-03; the user asks for all of 2024.
    gateway = start_gateway({"NEW": daily_from("2024-06-03", "2024-12-31")})
    store = make_store(tmp_path, sqlite_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port), store, now_ns=NEVER_CLOSED)

    [first] = fetcher.fetch(["NEW"], date(2024, 1, 1), date(2024, 12, 31), Timeframe.DAILY)

    sessions = len(exchange_calendar().sessions_in_range("2024-06-03", "2024-12-31"))
    assert (first.error, first.requests, first.bars_stored) == (None, 1, sessions)
    assert first.listed == "2024-06-03T13:30:00+00:00"  # 09:30 New York, IB's head time stamp
    assert gateway.head_requests == [("NEW", "TRADES", 1)]
    [request] = gateway.requests
    assert request.duration == "212 D"  # Jun 3 .. Dec 31, not from January

    connections = gateway.connections
    for start, end in [(date(2024, 1, 1), date(2024, 12, 31)), (date(2024, 1, 1), date(2024, 5, 31))]:
        [again] = fetcher.fetch(["NEW"], start, end, Timeframe.DAILY)
        assert again.up_to_date and again.requests == 0
    # Nothing at all went to the gateway: no data request, no head time stamp, no connection.
    assert (len(gateway.requests), len(gateway.head_requests), gateway.connections) == (1, 1, connections)


def test_extended_hours_reach_the_post_market_close_and_are_counted(tmp_path, sqlite_url, start_gateway):
    days = ["2024-01-02", "2024-01-03"]
    gateway = start_gateway({"SYN": synthetic_minutes(days, first="04:00", last="19:59")})
    extended = make_store(tmp_path / "extended", sqlite_url)
    regular = make_store(tmp_path / "regular", f"sqlite:///{tmp_path / 'regular.sqlite'}")

    [ext] = IbkrFetcher(
        fast_settings(gateway.port, use_rth=False, request_timeout=30), extended, now_ns=NEVER_CLOSED
    ).fetch(["SYN"], date(2024, 1, 2), date(2024, 1, 3), Timeframe.MIN1)
    [rth] = IbkrFetcher(fast_settings(gateway.port, request_timeout=30), regular, now_ns=NEVER_CLOSED).fetch(
        ["SYN"], date(2024, 1, 2), date(2024, 1, 3), Timeframe.MIN1
    )

    assert (ext.error, ext.bars_stored, ext.outside_regular_hours) == (None, 2 * 960, 2 * 570)
    assert (rth.error, rth.bars_stored, rth.outside_regular_hours) == (None, 2 * 390, 0)
    ext_request, rth_request = gateway.requests
    assert (ext_request.use_rth, ext_request.end) == (0, "20240104 01:00:00 UTC")  # Jan 3, 20:00 New York
    assert (rth_request.use_rth, rth_request.end) == (1, "20240103 21:00:00 UTC")
    ts = extended.catalog.read("SYN", Timeframe.MIN1).frame["ts_event"].to_numpy()
    last = pd.Timestamp(int(ts.max()), tz="UTC").tz_convert("America/New_York")
    assert last == pd.Timestamp("2024-01-03 20:00", tz="America/New_York")
    # The calendar-gap rule still finds every regular slot filled, and counts the rest.
    finding = quality.calendar_gaps(ts, Timeframe.MIN1)
    assert finding.passed and finding.details["bars_outside_regular_hours"] == 2 * 570
    assert int(quality.outside_regular_hours(ts, Timeframe.MIN1).sum()) == 2 * 570


def halved_before(bars: list[FakeBar], split_ns: int) -> list[FakeBar]:
    """The series as IB's ADJUSTED_LAST would show it after a 2:1 split at ``split_ns``."""
    return [
        FakeBar(b.close_ns, b.date, *(round(p / 2, 2) for p in (b.open, b.high, b.low, b.close)), b.volume * 2)
        if b.close_ns < split_ns
        else b
        for b in bars
    ]


def test_adjusted_bars_are_fetched_up_to_now_and_stored_as_ibkr_adjusted(
    tmp_path, sqlite_url, start_gateway, clean_bars
):
    split = pd.Timestamp("2013-07-01", tz="UTC").value
    now = pd.Timestamp("2014-01-15 21:00", tz="UTC")
    adjusted = halved_before(clean_bars["ORCL"], split)
    gateway = start_gateway(clean_bars, adjusted={"ORCL": adjusted}, now=now)
    store = make_store(tmp_path, sqlite_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port, adjusted=True), store, now_ns=now.value)

    [result] = fetcher.fetch(["ORCL"], date(2013, 1, 1), date(2013, 12, 31), Timeframe.DAILY)

    assert (result.error, result.requests, result.bars_stored) == (None, 1, 252)
    [request] = gateway.requests
    # IB refuses an end date with ADJUSTED_LAST: the request reaches back from now (379 days: 2 years).
    assert (request.what_to_show, request.end, request.duration) == ("ADJUSTED_LAST", "", "2 Y")
    assert gateway.head_requests == [("ORCL", "ADJUSTED_LAST", 1)]
    stored = store.catalog.read("ORCL", Timeframe.DAILY).frame
    expected = [
        b.close
        for b in adjusted
        if pd.Timestamp("2013-01-01", tz="UTC").value < b.close_ns < pd.Timestamp("2014-01-01", tz="UTC").value
    ]
    assert np.allclose(stored["close"], expected)
    assert set(table_rows(store, "ORCL")["data_source"]) == {"ibkr-adjusted"}


def test_adjusted_and_unadjusted_bars_never_share_a_series(tmp_path, sqlite_url, start_gateway, clean_bars):
    now = pd.Timestamp("2014-01-15 21:00", tz="UTC")
    gateway = start_gateway(clean_bars, now=now)
    store = make_store(tmp_path, sqlite_url)
    adjusted = IbkrFetcher(fast_settings(gateway.port, adjusted=True), store, now_ns=now.value)
    plain = IbkrFetcher(fast_settings(gateway.port), store, now_ns=now.value)
    adjusted.fetch(["ORCL"], date(2013, 7, 1), date(2013, 12, 31), Timeframe.DAILY)
    before = table_rows(store, "ORCL")

    [result] = plain.fetch(["ORCL"], date(2013, 1, 1), date(2013, 6, 30), Timeframe.DAILY)

    assert result.error.startswith("ORCL.XNAS-1-DAY-LAST-EXTERNAL already holds adjusted bars (source ibkr-adjusted)")
    pd.testing.assert_frame_equal(table_rows(store, "ORCL"), before)  # nothing written
    # A plain CSV is refused the same way, at the store both importers write through.
    csv = read_bar_csv(ORCL_DAILY, "ORCL")
    early = csv.frame[csv.frame["ts_event"] < pd.Timestamp("2013-01-01", tz="UTC").value].reset_index(drop=True)
    with pytest.raises(
        MixedAdjustmentError, match=r"already holds adjusted bars \(source ibkr-adjusted\).*source csv\)"
    ):
        store.replace(type(csv)("ORCL", Timeframe.DAILY, early, csv.price_precision))
    # And the other way round: CSV --adjusted bars keep IB's unadjusted bars out.
    other = make_store(tmp_path / "other", f"sqlite:///{tmp_path / 'other.sqlite'}")
    yahoo = read_bar_csv(ORCL_DAILY, "ORCL", adjusted=True)
    other.replace(
        type(yahoo)(
            "ORCL",
            Timeframe.DAILY,
            yahoo.frame[yahoo.frame["ts_event"] < early["ts_event"].max()].reset_index(drop=True),
            yahoo.price_precision,
            source=yahoo.source,
        )
    )
    [refused] = IbkrFetcher(fast_settings(gateway.port), other, now_ns=now.value).fetch(
        ["ORCL"], date(2013, 1, 1), date(2013, 3, 31), Timeframe.DAILY
    )
    assert "already holds adjusted bars (source csv-adjusted)" in refused.error


def test_adjusted_minutes_beyond_what_ib_serves_up_to_now_are_refused_before_any_request(
    tmp_path, sqlite_url, start_gateway
):
    now = pd.Timestamp("2024-01-31 21:00", tz="UTC")
    gateway = start_gateway({"SYN": synthetic_minutes(["2024-01-02"])}, now=now)
    store = make_store(tmp_path, sqlite_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port, adjusted=True), store, now_ns=now.value)

    [result] = fetcher.fetch(["SYN"], date(2024, 1, 2), date(2024, 1, 2), Timeframe.MIN1)

    assert "adjusted bars only up to now" in result.error and "30 days back" in result.error
    assert gateway.requests == []


def test_symbol_exchange_picks_one_listing(tmp_path, sqlite_url, start_gateway, clean_bars):
    gateway = start_gateway(clean_bars, listings={"ORCL": ["NYSE", "NASDAQ"]})
    store = make_store(tmp_path, sqlite_url)
    fetcher = IbkrFetcher(fast_settings(gateway.port), store, now_ns=NEVER_CLOSED)

    [ambiguous] = fetcher.fetch(["ORCL"], date(2013, 1, 1), date(2013, 1, 31), Timeframe.DAILY)
    [picked] = fetcher.fetch(["orcl:nyse"], date(2013, 1, 1), date(2013, 1, 31), Timeframe.DAILY)

    assert ambiguous.error == "IB error 200: ORCL is listed on NASDAQ, NYSE: name one, e.g. ORCL:NASDAQ"
    assert (picked.symbol, picked.error, picked.bars_stored) == ("ORCL", None, 21)
    assert gateway.contract_requests[0] == ("ORCL", "") and set(gateway.contract_requests[1:]) == {("ORCL", "NYSE")}
    assert {r.primary_exchange for r in gateway.requests} == {"NYSE"}
    assert len(store.catalog.read("ORCL", Timeframe.DAILY)) == 21  # stored under the bare symbol
