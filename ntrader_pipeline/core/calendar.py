"""Exchange sessions from a maintained calendar (exchange-calendars), never a hand-made list."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

EXCHANGE = "XNYS"  # NYSE and Nasdaq share sessions and early closes.


@lru_cache(maxsize=4)
def exchange_calendar(name: str = EXCHANGE):
    import exchange_calendars

    return exchange_calendars.get_calendar(name, start="1990-01-01")


def session_count(start, end, name: str = EXCHANGE) -> int | None:
    """Exchange sessions from ``start`` to ``end`` (dates, both included); None when the span
    reaches outside the calendar's years, where it cannot say."""
    calendar = exchange_calendar(name)
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if first < calendar.first_session or last > calendar.last_session:
        return None
    return len(calendar.sessions_in_range(first, last))


def session_close_ns(dates: pd.Series, timezone: str = "America/New_York") -> np.ndarray:
    """UTC nanoseconds of each date's session close (13:00 on early-close days).

    Dates the calendar has no session for (weekends, holidays) fall back to 16:00 local so that
    the caller's validation, not this lookup, decides whether such a bar is acceptable.
    """
    days = pd.to_datetime(dates).dt.normalize().dt.tz_localize(None)
    schedule = exchange_calendar().schedule
    closes = schedule["close"].reindex(pd.DatetimeIndex(days.to_numpy()))
    fallback = (days + pd.Timedelta(hours=16)).dt.tz_localize(timezone).dt.tz_convert("UTC")
    fallback_ns = fallback.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    closes_ns = closes.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return np.where(closes.isna().to_numpy(), fallback_ns, closes_ns)


def session_open_ns(dates: pd.Series, timezone: str = "America/New_York") -> np.ndarray:
    """UTC nanoseconds of each date's session open (09:30 local where the calendar has no session)."""
    days = pd.to_datetime(dates).dt.normalize().dt.tz_localize(None)
    opens = exchange_calendar().schedule["open"].reindex(pd.DatetimeIndex(days.to_numpy()))
    fallback = (days + pd.Timedelta(hours=9, minutes=30)).dt.tz_localize(timezone).dt.tz_convert("UTC")
    fallback_ns = fallback.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    opens_ns = opens.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return np.where(opens.isna().to_numpy(), fallback_ns, opens_ns)
