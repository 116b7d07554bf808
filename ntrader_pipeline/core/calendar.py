"""Exchange sessions from a maintained calendar (exchange-calendars), never a hand-made list.

The calendar is a property of each bar series (``BarSeries.calendar``), named by its
exchange-calendars code (``XNYS``, ``XLON``, ``XTKS``...). A daily bar is stamped at its
session's close and its date is the session's date in the calendar's own time zone.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

DEFAULT_CALENDAR = "XNYS"  # NYSE and Nasdaq share sessions and early closes.
FIRST_SESSION = "1990-01-01"


class CalendarError(ValueError):
    """A calendar name exchange-calendars does not know."""


@lru_cache(maxsize=1)
def calendar_names() -> tuple[str, ...]:
    """The exchange-calendars codes (``XNYS``, ``XLON``...), without aliases."""
    import exchange_calendars

    return tuple(sorted(exchange_calendars.get_calendar_names(include_aliases=False)))


def check_calendar(name: str) -> str:
    """The canonical code of ``name`` (an alias such as ``NYSE`` gives ``XNYS``), else a ``CalendarError``
    that lists the codes."""
    import exchange_calendars
    from exchange_calendars.calendar_utils import global_calendar_dispatcher

    text = str(name).strip()
    if text not in exchange_calendars.get_calendar_names(include_aliases=True):
        raise CalendarError(f"unknown exchange calendar {text[:40]!r}; known calendars: {', '.join(calendar_names())}")
    return global_calendar_dispatcher.resolve_alias(text)


@lru_cache(maxsize=8)
def exchange_calendar(name: str = DEFAULT_CALENDAR):
    import exchange_calendars

    try:
        return exchange_calendars.get_calendar(name, start=FIRST_SESSION)
    except ValueError:  # a calendar whose data begins after FIRST_SESSION: from its own first session
        return exchange_calendars.get_calendar(name)


def calendar_timezone(name: str = DEFAULT_CALENDAR) -> str:
    """The calendar's local time zone (``America/New_York`` for XNYS, ``Europe/London`` for XLON)."""
    return str(exchange_calendar(name).tz)


def session_dates(ts_ns, name: str = DEFAULT_CALENDAR) -> pd.DatetimeIndex:
    """The local date (in the calendar's time zone, naive) of each UTC nanosecond time: a daily bar's session."""
    stamps = pd.to_datetime(np.asarray(ts_ns, dtype=np.int64), utc=True).tz_convert(calendar_timezone(name))
    return pd.DatetimeIndex(stamps.tz_localize(None).normalize())


def _session_edge_ns(dates: pd.Series, name: str, column: str, fallback: pd.Timedelta) -> np.ndarray:
    days = pd.to_datetime(dates).dt.normalize().dt.tz_localize(None)
    edges = exchange_calendar(name).schedule[column].reindex(pd.DatetimeIndex(days.to_numpy()))
    local = (days + fallback).dt.tz_localize(calendar_timezone(name), nonexistent="shift_forward", ambiguous=False)
    fallback_ns = local.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]").astype(np.int64)
    edges_ns = edges.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return np.where(edges.isna().to_numpy(), fallback_ns, edges_ns)


def session_count(start, end, name: str = DEFAULT_CALENDAR) -> int | None:
    """Exchange sessions from ``start`` to ``end`` (dates, both included); None when the span
    reaches outside the calendar's years, where it cannot say."""
    calendar = exchange_calendar(name)
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if first < calendar.first_session or last > calendar.last_session:
        return None
    return len(calendar.sessions_in_range(first, last))


def session_close_ns(dates: pd.Series, name: str = DEFAULT_CALENDAR) -> np.ndarray:
    """UTC nanoseconds of each date's session close in calendar ``name`` (early closes included).

    Dates the calendar has no session for (weekends, holidays) fall back to 16:00 local so that
    the caller's validation, not this lookup, decides whether such a bar is acceptable.
    """
    return _session_edge_ns(dates, name, "close", pd.Timedelta(hours=16))


def session_open_ns(dates: pd.Series, name: str = DEFAULT_CALENDAR) -> np.ndarray:
    """UTC nanoseconds of each date's session open (09:30 local where the calendar has no session)."""
    return _session_edge_ns(dates, name, "open", pd.Timedelta(hours=9, minutes=30))
