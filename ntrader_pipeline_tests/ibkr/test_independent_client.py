"""The fake gateway checked by a client it was not written for: ib_async (PyPI, tests only).

ib_async offers server versions 157..178, so it negotiates 178 where NautilusTrader's client
negotiates 223 (protobuf): the same bars must come out of both conversations.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import date

import numpy as np
import pandas as pd
from ib_async import IB, Stock
from ib_async.ib import StartupFetchNONE

from ntrader_pipeline.adapters.ibkr.fetch import IbkrFetcher
from ntrader_pipeline.core.bars import Timeframe

from .conftest import fast_settings
from .fake_gateway import MAX_VERSION, synthetic_minutes
from .test_fetch import NEVER_CLOSED, make_store


async def ask_ib_async(port: int) -> dict:
    ib = IB()
    errors: list[tuple[int, str]] = []
    ib.errorEvent += lambda req_id, code, message, contract: errors.append((code, message))
    await ib.connectAsync("127.0.0.1", port, clientId=9, timeout=5, readonly=True, fetchFields=StartupFetchNONE)
    try:
        [orcl] = await ib.qualifyContractsAsync(Stock("ORCL", "SMART", "USD"))
        [syn] = await ib.qualifyContractsAsync(Stock("SYN", "SMART", "USD"))
        daily = await ib.reqHistoricalDataAsync(
            orcl,
            endDateTime="20131231 16:00:00 US/Eastern",
            durationStr="1 Y",
            barSizeSetting="1 day",
            whatToShow="TRADES",
            useRTH=True,
            formatDate=1,
        )
        minutes_text = await ib.reqHistoricalDataAsync(
            syn,
            endDateTime="20240103-01:00:00",
            durationStr="1 D",
            barSizeSetting="1 min",
            whatToShow="TRADES",
            useRTH=False,
            formatDate=1,
        )
        minutes_epoch = await ib.reqHistoricalDataAsync(
            syn,
            endDateTime="",
            durationStr="2 D",
            barSizeSetting="1 min",
            whatToShow="MIDPOINT",
            useRTH=True,
            formatDate=2,
        )
        head = await ib.reqHeadTimeStampAsync(orcl, whatToShow="TRADES", useRTH=True, formatDate=2)
        now = await ib.reqCurrentTimeAsync()
        return {
            "version": ib.client.serverVersion(),
            "daily": daily,
            "minutes_text": minutes_text,
            "minutes_epoch": minutes_epoch,
            "head": head,
            "now": now,
            "errors": errors,
        }
    finally:
        ib.disconnect()


def test_ib_async_gets_the_bars_nautilus_trader_gets(tmp_path, sqlite_url, start_gateway, clean_bars):
    syn = synthetic_minutes(["2024-01-02"], first="04:00", last="19:59")
    gateway = start_gateway({**clean_bars, "SYN": syn}, now=pd.Timestamp("2024-01-03 12:00", tz="UTC"))
    store = make_store(tmp_path, sqlite_url)
    [ours] = IbkrFetcher(fast_settings(gateway.port), store, now_ns=NEVER_CLOSED).fetch(
        ["ORCL"], date(2013, 1, 1), date(2013, 12, 31), Timeframe.DAILY
    )

    theirs = asyncio.run(ask_ib_async(gateway.port))

    assert gateway.versions == [MAX_VERSION, 178]  # ours, and ib_async's top version
    assert ours.bars_stored == len(theirs["daily"]) == 252
    stored = store.catalog.read("ORCL", Timeframe.DAILY).frame
    assert np.allclose(stored["close"], [bar.close for bar in theirs["daily"]])
    assert theirs["daily"][0].date == dt.date(2013, 1, 2)
    # formatDate 1: New York text; useRTH 0 up to 20:00 New York: the whole extended day, 04:00 to 19:59.
    text = theirs["minutes_text"]
    assert len(text) == 960 and text[0].date == dt.datetime(2024, 1, 2, 9, 0, tzinfo=dt.timezone.utc)  # 04:00 NY
    # formatDate 2: epoch seconds; an empty end is "now"; useRTH 1 keeps the 390 regular minutes.
    epoch = theirs["minutes_epoch"]
    assert len(epoch) == 390 and epoch[0].date == dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.timezone.utc)
    assert theirs["head"] == dt.datetime(1995, 1, 3, 14, 30, tzinfo=dt.timezone.utc)
    assert [code for code, _ in theirs["errors"]] == [2104]  # the farm notice only
    assert theirs["now"] == dt.datetime(2024, 1, 3, 12, 0, tzinfo=dt.timezone.utc)
