"""Which exchange sessions the catalog lacks, and how to ask IB for them in allowed requests.

A session counts as stored when the catalog holds the bar that closes at the session's close
(the daily bar, or the last intraday bar of a regular-hours session), so a half-stored day is
fetched again. Missing sessions are grouped into runs with no stored session between them; each
run is stored with one ``MarketDataStore.replace`` (which replaces everything inside its range)
and fetched in chunks no longer than IB serves per request for the bar size.

With extended hours (``useRTH=0``) an intraday chunk ends four hours after the last session's
close (20:00 New York, 17:00 on early-close days), so post-market bars are inside the window.
IB serves ADJUSTED_LAST bars only up to now (an end date is refused), so such a run is one
request reaching back from now to its first session.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from ntrader_pipeline.core.bars import Timeframe
from ntrader_pipeline.core.calendar import exchange_calendar, session_close_ns

# Longest request IB serves per bar size, in calendar days (one week of one-minute bars).
MAX_REQUEST_DAYS = {Timeframe.MIN1: 7, Timeframe.MIN5: 30, Timeframe.HOUR1: 30, Timeframe.DAILY: 365}
EXCHANGE_TZ = "America/New_York"
POST_MARKET_NS = 4 * 3600 * 10**9  # the post-market session ends four hours after the close


@dataclass(frozen=True)
class Chunk:
    """One historical request: the sessions it must cover, ending at the last one's close."""

    sessions: tuple[date, ...]
    end_ns: int  # UTC close of the last session (post-market close with extended hours): endDateTime
    to_now: bool = False  # endDateTime empty: from ``now`` back to the first session (ADJUSTED_LAST)
    now: date | None = None  # with ``to_now``: the day the request is planned

    @property
    def days(self) -> int:
        """Calendar days the request reaches back."""
        last = self.now if self.to_now and self.now is not None else self.sessions[-1]
        return (last - self.sessions[0]).days + 1

    @property
    def duration(self) -> str:
        days = self.days
        return f"{-(-days // 365)} Y" if days > 365 else f"{days} D"  # IB wants years beyond 365 days

    @property
    def end(self) -> pd.Timestamp | None:
        return None if self.to_now else pd.Timestamp(self.end_ns, tz="UTC")


def sessions_between(start: date, end: date, now_ns: int) -> tuple[list[date], np.ndarray]:
    """Sessions from ``start`` to ``end`` (inclusive) that have closed by ``now_ns``, and their closes."""
    calendar = exchange_calendar()
    days = calendar.sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
    dates = [d.date() for d in days]
    closes = session_close_ns(pd.Series(pd.DatetimeIndex(days))) if dates else np.array([], dtype=np.int64)
    done = closes <= now_ns
    return [d for d, ok in zip(dates, done) if ok], closes[done]


def missing_runs(stored_ts: np.ndarray, start: date, end: date, now_ns: int) -> list[list[date]]:
    """Runs of consecutive sessions in ``[start, end]`` whose closing bar is not stored."""
    if start > end:
        return []
    sessions, closes = sessions_between(start, end, now_ns)
    have = np.isin(closes, stored_ts)
    runs: list[list[date]] = []
    current: list[date] = []
    for session, stored in zip(sessions, have):
        if stored:
            if current:
                runs.append(current)
            current = []
        else:
            current.append(session)
    if current:
        runs.append(current)
    return runs


def plan_chunks(
    run: list[date], timeframe: Timeframe, extended: bool = False, to_now: date | None = None
) -> list[Chunk]:
    """Split a run of sessions into requests of at most ``MAX_REQUEST_DAYS`` calendar days.

    ``to_now`` (today's date) makes the whole run one request ending now.
    """
    if to_now is not None:
        return [Chunk(tuple(run), 0, to_now=True, now=to_now)]
    limit = MAX_REQUEST_DAYS[timeframe]
    groups: list[list[date]] = []
    for session in run:
        if groups and (session - groups[-1][0]).days + 1 <= limit:
            groups[-1].append(session)
        else:
            groups.append([session])
    ends = session_close_ns(pd.Series(pd.DatetimeIndex([g[-1] for g in groups])))
    if extended and timeframe is not Timeframe.DAILY:
        ends = ends + POST_MARKET_NS
    return [Chunk(tuple(g), int(e)) for g, e in zip(groups, ends)]


def session_dates(ts_ns: np.ndarray) -> np.ndarray:
    """Exchange-local date of each bar close (bars of one regular session share it)."""
    local = pd.to_datetime(ts_ns, utc=True).tz_convert(EXCHANGE_TZ)
    return np.array([d.date() for d in local])
