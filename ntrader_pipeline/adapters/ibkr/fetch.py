"""Fetch the bars the catalog lacks from IB and store them like CSV bars (same rules, both stores).

Per symbol: find the runs of sessions not stored, request each run in chunks IB allows (paced,
retried with backoff when the error is transient), turn the answers into one ``BarSeries`` per
run with ``source="ibkr"`` (``"ibkr-adjusted"`` for ADJUSTED_LAST bars), validate it with the
CSV rules and store it with ``MarketDataStore.replace`` (all or nothing per run). A symbol that
fails is reported and the others go on; a gateway that cannot be reached fails the whole fetch at
once.

Sessions before a symbol's listing are never requested: the first fetch that finds sessions
missing asks IB for the symbol's head time stamp once and keeps it in the warehouse
(``ledger.ListingDates``). That request is optional: when IB leaves it unanswered the symbol is
fetched over the whole range asked (sessions before the listing come back empty) and the result
says so; the next fetch asks again. Requests are paced through the warehouse ledger, shared by
every process using the same warehouse.

Time is bounded. A request that times out is followed by a time request (``reqCurrentTime``,
which a live gateway answers at once): no answer within ``connect_timeout`` means the gateway
stopped answering altogether, and the whole fetch fails at once (``IbkrGatewaySilent``) instead
of waiting out every retry of every symbol.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from nautilus_trader.model.data import Bar

from ntrader_pipeline.adapters.ibkr.chunking import (
    EXCHANGE_TZ,
    MAX_REQUEST_DAYS,
    Chunk,
    missing_runs,
    plan_chunks,
    session_dates,
)
from ntrader_pipeline.adapters.ibkr.client import (
    IbkrConnectionError,
    IbkrDisconnected,
    IbkrError,
    IbkrGatewaySilent,
    IbkrRequestError,
    IbkrRequestTimeout,
    IbkrSession,
    RejectedBar,
)
from ntrader_pipeline.adapters.ibkr.ledger import ListingDates, WarehouseLedger, wall_clock
from ntrader_pipeline.adapters.ibkr.pacing import PacingLimits, RequestPacer
from ntrader_pipeline.adapters.ibkr.settings import IbkrSettings
from ntrader_pipeline.adapters.market_data_store import MarketDataStore, MixedAdjustmentError, StoredSeries
from ntrader_pipeline.core.bars import BAR_COLUMNS, BarSeries, Timeframe
from ntrader_pipeline.core.calendar import session_close_ns
from ntrader_pipeline.core.quality import outside_regular_hours
from ntrader_pipeline.core.symbols import parse_listing
from ntrader_pipeline.core.validation import BarFileError, describe_problems, validate_bars

SOURCE = "ibkr"
ADJUSTED_SOURCE = "ibkr-adjusted"


@dataclass(frozen=True)
class Listing:
    """``SYMBOL`` or ``SYMBOL:EXCHANGE``: the exchange picks one listing when SMART finds several.

    Only the symbol names the stored series; the exchange is how IB is asked.
    """

    symbol: str
    exchange: str = ""

    @classmethod
    def parse(cls, text: str) -> Listing:
        return cls(*parse_listing(text))

    def __str__(self) -> str:
        return f"{self.symbol}:{self.exchange}" if self.exchange else self.symbol


@dataclass
class SymbolResult:
    """What a fetch did for one symbol."""

    symbol: str
    planned_requests: int = 0
    requests: int = 0  # sent to the gateway, retries included
    bars_stored: int = 0
    written: list[StoredSeries] = field(default_factory=list)
    error: str | None = None
    retryable: bool = False  # the error may go away (pacing, timeouts, drops), unlike error 200
    listed: str | None = None  # IB's first bar of the series (ISO), when it was asked
    outside_regular_hours: int = 0  # stored bars in pre- or post-market
    note: str | None = None  # what the user should know about a fetch that succeeded (an unanswered request)

    @property
    def up_to_date(self) -> bool:
        return self.planned_requests == 0 and self.error is None


# progress(done, total, what): called once before the first request and after each chunk.
Progress = Callable[[int, int, str], None]


class IbkrFetcher:
    def __init__(
        self,
        settings: IbkrSettings,
        store: MarketDataStore,
        progress: Progress | None = None,
        now_ns: int | None = None,
        pacer: RequestPacer | None = None,
    ):
        self.settings = settings
        self.store = store
        self.progress = progress or (lambda done, total, what: None)
        self.now_ns = now_ns
        limits = PacingLimits.from_settings(settings)
        self.pacer = pacer or RequestPacer(limits, clock=wall_clock, ledger=WarehouseLedger(store.warehouse))
        self.listings = ListingDates(store.warehouse)
        self.what_to_show = "ADJUSTED_LAST" if settings.adjusted else "TRADES"
        self.source = ADJUSTED_SOURCE if settings.adjusted else SOURCE
        self._head_unanswered: str | None = None  # once IB left a head request unanswered: why

    def _now_ns(self) -> int:
        return self.now_ns if self.now_ns is not None else time.time_ns()

    def plan(
        self, listings: list[Listing], start: date, end: date, timeframe: Timeframe
    ) -> dict[Listing, list[list[Chunk]]]:
        """Per listing, the runs of missing sessions from its listing date on, each split into requests."""
        return {listing: self._plan_one(listing.symbol, start, end, timeframe) for listing in listings}

    def _plan_one(self, symbol: str, start: date, end: date, timeframe: Timeframe) -> list[list[Chunk]]:
        now = self._now_ns()
        head = self.listings.get(symbol, self.what_to_show, self.settings.use_rth)
        if head is not None:
            start = max(start, head.tz_convert(EXCHANGE_TZ).date())
        stored = self.store.catalog.read(symbol, timeframe)
        ts = stored.frame["ts_event"].to_numpy(dtype=np.int64) if stored else np.array([], dtype=np.int64)
        extended = not self.settings.use_rth
        today = pd.Timestamp(now, tz="UTC").tz_convert(EXCHANGE_TZ).date() if self.settings.adjusted else None
        return [plan_chunks(run, timeframe, extended, today) for run in missing_runs(ts, start, end, now)]

    def fetch(self, symbols: list[str], start: date, end: date, timeframe: Timeframe) -> list[SymbolResult]:
        if start > end:
            raise ValueError(f"start {start} is after end {end}")
        listings = [Listing.parse(s) for s in symbols if s.strip()]
        plans = self.plan(listings, start, end, timeframe)
        return asyncio.run(self._fetch(plans, start, end, timeframe))

    async def _fetch(
        self, plans: dict[Listing, list[list[Chunk]]], start: date, end: date, timeframe: Timeframe
    ) -> list[SymbolResult]:
        results = {
            k: SymbolResult(k.symbol, planned_requests=sum(len(run) for run in runs)) for k, runs in plans.items()
        }
        total = sum(r.planned_requests for r in results.values())
        self.progress(0, total, "planning done")
        if total == 0:
            return list(results.values())
        done = 0
        async with IbkrSession(self.settings) as session:
            for listing, runs in plans.items():
                result = results[listing]
                symbol = listing.symbol
                start_done = done
                try:
                    instrument, _ = await self._answered(session, session.instrument(symbol, listing.exchange))
                    if self.listings.get(symbol, self.what_to_show, self.settings.use_rth) is None:
                        runs = await self._clip_to_listing(session, listing, start, end, timeframe, result)
                        total -= result.planned_requests - sum(len(run) for run in runs)
                        result.planned_requests = sum(len(run) for run in runs)
                        self.progress(
                            done, total, f"{symbol} listed {result.listed}" if result.listed else result.note or ""
                        )
                    for run in runs:
                        frames = []
                        for chunk in run:
                            bars, bad = await self._request(session, listing, timeframe, chunk, result)
                            frames.append(chunk_frame(bars, bad, timeframe, chunk.sessions))
                            done += 1
                            self.progress(done, total, f"{symbol} {chunk.sessions[0]}..{chunk.sessions[-1]}")
                        label = f"IBKR {symbol} {timeframe.value} bars {run[0].sessions[0]}..{run[-1].sessions[-1]}"
                        series = validated_series(
                            symbol, timeframe, frames, instrument.price_precision, label, self.source
                        )
                        if len(series):
                            result.written.append(self.store.replace(series))
                            result.bars_stored += len(series)
                            if timeframe is not Timeframe.DAILY:
                                ts = series.frame["ts_event"].to_numpy(dtype=np.int64)
                                result.outside_regular_hours += int(outside_regular_hours(ts, timeframe).sum())
                except IbkrConnectionError:
                    raise  # the gateway is gone: no other symbol can succeed
                except (IbkrError, BarFileError, MixedAdjustmentError) as exc:
                    result.error = (
                        "; ".join(describe_problems(exc.file, exc.problems))
                        if isinstance(exc, BarFileError)
                        else str(exc)
                    )
                    result.retryable = bool(getattr(exc, "transient", False))
                    done = start_done + result.planned_requests  # its remaining chunks are skipped
                    self.progress(done, total, f"{symbol} failed: {exc}")
        return list(results.values())

    async def _clip_to_listing(
        self,
        session: IbkrSession,
        listing: Listing,
        start: date,
        end: date,
        timeframe: Timeframe,
        result: SymbolResult,
    ) -> list[list[Chunk]]:
        """Ask IB once where the series begins, keep it, and plan the symbol again from there.

        Unanswered (the gateway still alive), the symbol keeps its plan over the whole range, and
        the rest of this fetch does not ask again: IB leaves the request hanging for a while, not
        for one contract.
        """
        symbol = listing.symbol
        if self._head_unanswered is None:
            try:
                async with self.pacer.slot(symbol, ("head", symbol, self.what_to_show, self.settings.use_rth)):
                    head = await self._answered(
                        session, session.head_timestamp(symbol, self.what_to_show, listing.exchange)
                    )
            except IbkrRequestError as exc:
                if not exc.no_data:
                    raise
                raise IbkrRequestError(162, f"IB has no {self.what_to_show} bars for {symbol}") from None
            except IbkrRequestTimeout:
                self._head_unanswered = f"IB did not answer reqHeadTimeStamp within {self.settings.request_timeout:g} s"
        if self._head_unanswered is not None:
            result.note = f"listing date unknown ({self._head_unanswered}): fetched without clipping"
            return self._plan_one(symbol, start, end, timeframe)
        self.listings.put(symbol, self.what_to_show, self.settings.use_rth, head)
        result.listed = head.isoformat()
        return self._plan_one(symbol, start, end, timeframe)

    async def _request(
        self, session: IbkrSession, listing: Listing, timeframe: Timeframe, chunk: Chunk, result: SymbolResult
    ) -> tuple[list[Bar], list[RejectedBar]]:
        """One chunk: paced, retried with exponential backoff while the error is transient."""
        settings = self.settings
        symbol = listing.symbol
        if chunk.to_now and timeframe is not Timeframe.DAILY and chunk.days > MAX_REQUEST_DAYS[timeframe]:
            raise IbkrError(
                f"IB serves adjusted bars only up to now, and a {timeframe.value} request may reach back "
                f"{MAX_REQUEST_DAYS[timeframe]} days; {chunk.sessions[0]} is {chunk.days} days back "
                "(fetch a daily series, or unadjusted bars with NTRADER_IB_ADJUSTED=no)"
            )
        key = (symbol, timeframe.value, chunk.end_ns, chunk.duration, self.what_to_show, settings.use_rth)
        for attempt in range(settings.retries + 1):
            try:
                async with self.pacer.slot(symbol, key):
                    result.requests += 1
                    return await self._answered(
                        session,
                        session.bars(
                            symbol,
                            timeframe.nautilus_spec,
                            chunk.end,
                            chunk.duration,
                            self.what_to_show,
                            listing.exchange,
                        ),
                    )
            except IbkrRequestError as exc:
                if exc.no_data:
                    return [], []
                if not exc.transient or attempt == settings.retries:
                    raise
            except IbkrDisconnected:
                if attempt == settings.retries:
                    raise
                await asyncio.sleep(settings.retry_backoff * 2**attempt)
                await session.reconnect()
                continue
            except IbkrError as exc:
                if not exc.transient or attempt == settings.retries:
                    raise
            await asyncio.sleep(settings.retry_backoff * 2**attempt)
        raise AssertionError("unreachable")

    async def _answered(self, session: IbkrSession, request):
        """Await ``request``; when it times out, make sure the gateway still answers at all.

        Raises ``IbkrGatewaySilent`` (the whole fetch fails) when the gateway does not even tell
        its time within ``connect_timeout`` seconds; else the timeout, for the caller to retry.
        """
        try:
            return await request
        except IbkrRequestTimeout as exc:
            wait = self.settings.connect_timeout
            if not await session.answers(wait):
                raise IbkrGatewaySilent(
                    f"the gateway at {session.address} stopped answering: {exc}, and no answer to a time "
                    f"request within {wait:g} s. Is it still running and logged in (IB restarts it daily)?"
                ) from None
            raise


def chunk_frame(
    bars: list[Bar], rejected: list[RejectedBar], timeframe: Timeframe, sessions: tuple[date, ...]
) -> pd.DataFrame:
    """One answer as ``BAR_COLUMNS`` stamped at each bar's close, cut to the chunk's sessions.

    Bars NautilusTrader dropped as invalid are put back so the bar rules report them. The cut
    matters: IB's "N D" window need not match the chunk's sessions exactly (DST shifts it by an
    hour), and neighbouring chunks must not both deliver the same bar.
    """
    if timeframe is Timeframe.DAILY:  # IB stamps a daily bar with its date; NautilusTrader makes that midnight UTC
        days = pd.Series(pd.to_datetime([b.ts_event for b in bars], utc=True).tz_localize(None).normalize())
        ts = session_close_ns(days) if len(bars) else np.array([], dtype=np.int64)
    else:  # ts_init is the bar's close
        ts = np.fromiter((b.ts_init for b in bars), dtype=np.int64, count=len(bars))
    frame = pd.DataFrame(
        {
            "ts_event": ts,
            "open": [b.open.as_double() for b in bars],
            "high": [b.high.as_double() for b in bars],
            "low": [b.low.as_double() for b in bars],
            "close": [b.close.as_double() for b in bars],
            "volume": [b.volume.as_double() for b in bars],
        },
        columns=BAR_COLUMNS,
    )
    if rejected:
        frame = pd.concat([frame, _rejected_frame(rejected, timeframe)], ignore_index=True)
    frame = frame.astype({"ts_event": np.int64})
    keep = np.isin(session_dates(frame["ts_event"].to_numpy()), np.array(sessions, dtype=object))
    return frame[keep]


def validated_series(
    symbol: str,
    timeframe: Timeframe,
    frames: list[pd.DataFrame],
    price_precision: int,
    label: str,
    source: str = SOURCE,
) -> BarSeries:
    """The chunks of one run as one series, checked with the CSV rules (bar number = line)."""
    frame = pd.concat(frames, ignore_index=True).sort_values("ts_event", kind="stable").reset_index(drop=True)
    problems = validate_bars(frame, np.arange(1, len(frame) + 1))
    if problems:
        raise BarFileError(f"{label} (bar number)", problems)
    return BarSeries(symbol, timeframe, frame, price_precision, source=source)


def _rejected_frame(rejected: list[RejectedBar], timeframe: Timeframe) -> pd.DataFrame:
    if timeframe is Timeframe.DAILY:
        ts = session_close_ns(pd.Series(pd.to_datetime([r.date for r in rejected], format="%Y%m%d")))
    else:
        ts = np.array([int(r.date) * 1_000_000_000 + timeframe.nanos for r in rejected], dtype=np.int64)
    return pd.DataFrame(
        {
            "ts_event": ts,
            "open": [r.open for r in rejected],
            "high": [r.high for r in rejected],
            "low": [r.low for r in rejected],
            "close": [r.close for r in rejected],
            "volume": 0.0,
        }
    )
