"""Data-quality rules for stored bars: what the asset checks measure, free of any orchestration.

Each rule looks at one stored series and returns a ``Finding``: passed or not, one line a person
can act on, and the numbers behind it (counts and a few examples, never the whole series). The
calendar is the series' own from exchange-calendars (``XNYS`` unless imported with another, see
``core.calendar``); intraday slots are aligned to the session open, so a 1MIN XNYS series expects
bars opening 09:30, 09:31, ... 15:59 New York time (12:59 on early-close days).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ntrader_pipeline.core.bars import BAR_COLUMNS, PRICE_COLUMNS, SIZE_PRECISION, Timeframe, frame_hash
from ntrader_pipeline.core.calendar import DEFAULT_CALENDAR, exchange_calendar, session_dates
from ntrader_pipeline.core.validation import validate_bars

EXAMPLES = 10  # examples listed per finding; the counts are always complete
CONTENT_COLUMNS = BAR_COLUMNS  # the columns of ``bar_ticks``


@dataclass(frozen=True)
class Finding:
    """The outcome of one rule on one series."""

    passed: bool
    summary: str
    details: dict = field(default_factory=dict)


def _iso(ns) -> list[str]:
    return [pd.Timestamp(int(v), tz="UTC").isoformat() for v in np.asarray(ns)[:EXAMPLES]]


def ohlc_consistency(frame: pd.DataFrame) -> Finding:
    """Every stored bar obeys the bar rules of ``core.validation`` (prices, high/low, volume)."""
    columns = set(PRICE_COLUMNS) | {"volume"}
    problems = [p for p in validate_bars(frame, np.arange(len(frame))) if p.column in columns]
    bad_rows = sorted({p.line for p in problems})
    ts = frame["ts_event"].to_numpy()
    examples = [
        f"{pd.Timestamp(int(ts[p.line]), tz='UTC').isoformat()} {p.column}={p.value}: {p.rule}"
        for p in problems[:EXAMPLES]
    ]
    if not bad_rows:
        return Finding(True, f"all {len(frame)} bars are consistent", {"bars": len(frame)})
    return Finding(
        False,
        f"{len(bad_rows)} of {len(frame)} bars break an OHLC rule",
        {"bars": len(frame), "bad_bars": len(bad_rows), "examples": examples},
    )


def duplicate_bars(ts_event: np.ndarray) -> Finding:
    """No two stored bars share a timestamp."""
    ts = np.sort(np.asarray(ts_event, dtype=np.int64))
    repeated = ts[1:][ts[1:] == ts[:-1]]
    stamps = np.sort(repeated)
    stamps = stamps[np.r_[True, stamps[1:] != stamps[:-1]]] if len(stamps) else stamps
    if len(stamps) == 0:
        return Finding(True, f"no duplicate timestamps in {len(ts)} bars", {"bars": len(ts)})
    return Finding(
        False,
        f"{len(repeated)} bars repeat {len(stamps)} timestamps",
        {"bars": len(ts), "duplicate_bars": len(repeated), "examples": _iso(stamps)},
    )


def calendar_gaps(ts_event: np.ndarray, timeframe: Timeframe, calendar: str = DEFAULT_CALENDAR) -> Finding:
    """Bars missing between the first and last stored bar, against the series' exchange calendar.

    Daily: sessions without a bar, and bars on days that are not sessions. Intraday: slots inside
    regular sessions without a bar. Bars outside regular hours (pre- and post-market, fetched with
    extended hours) are counted, not failed, and never count as filling a regular slot.
    """
    ts = np.asarray(ts_event, dtype=np.int64)
    if len(ts) == 0:
        return Finding(False, "no bars stored", {"bars": 0})
    if timeframe is Timeframe.DAILY:
        return _daily_gaps(ts, calendar)
    return _intraday_gaps(ts, timeframe, calendar)


def _daily_gaps(ts: np.ndarray, name: str) -> Finding:
    dates = session_dates(ts, name)
    sessions = exchange_calendar(name).sessions_in_range(dates.min(), dates.max())
    missing = sessions.difference(dates)
    off_session = dates.difference(sessions)
    details = {
        "calendar": name,
        "sessions_expected": len(sessions),
        "missing_sessions": len(missing),
        "bars_on_non_session_days": len(off_session),
        "missing_examples": [d.date().isoformat() for d in missing[:EXAMPLES]],
        "non_session_examples": [d.date().isoformat() for d in off_session[:EXAMPLES]],
    }
    if len(missing) == 0 and len(off_session) == 0:
        return Finding(True, f"a bar for each of {len(sessions)} {name} sessions", details)
    return Finding(
        False,
        f"against the {name} calendar: {len(missing)} sessions without a bar, "
        f"{len(off_session)} bars on non-session days",
        details,
    )


def session_slots(first_ns: int, last_ns: int, step_ns: int, name: str = DEFAULT_CALENDAR) -> np.ndarray:
    """Opening times (UTC ns) of every ``step``-long slot of the regular sessions in a range."""
    calendar = exchange_calendar(name)
    opens = calendar.opens_nanos
    closes = calendar.closes_nanos
    wanted = (closes > first_ns) & (opens <= last_ns)
    opens, closes = opens[wanted], closes[wanted]
    counts = -(-(closes - opens) // step_ns)  # a last, shorter slot still counts
    starts = np.repeat(opens, counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    slots = starts + offsets * step_ns
    return slots[(slots >= first_ns) & (slots <= last_ns)]


def outside_regular_hours(ts_event: np.ndarray, timeframe: Timeframe, name: str = DEFAULT_CALENDAR) -> np.ndarray:
    """Which intraday bars (stamped at their close) open outside a regular session: pre- and
    post-market bars, which IB serves with ``useRTH=0``. Daily bars are never outside."""
    ts = np.asarray(ts_event, dtype=np.int64)
    if timeframe is Timeframe.DAILY or len(ts) == 0:
        return np.zeros(len(ts), dtype=bool)
    calendar = exchange_calendar(name)
    opens, closes = calendar.opens_nanos, calendar.closes_nanos
    bar_opens = ts - timeframe.nanos
    session = np.searchsorted(opens, bar_opens, side="right") - 1
    inside = (session >= 0) & (bar_opens < closes[np.maximum(session, 0)])
    return ~inside


def _isin_sorted(values: np.ndarray, sorted_pool: np.ndarray) -> np.ndarray:
    """``np.isin`` for a sorted pool, by binary search (no sort of a million values twice)."""
    if len(sorted_pool) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_pool, values), len(sorted_pool) - 1)
    return sorted_pool[at] == values


def _intraday_gaps(ts: np.ndarray, timeframe: Timeframe, name: str) -> Finding:
    bar_opens = np.sort(ts - timeframe.nanos)  # not np.unique: its hashing is 10x slower here
    bar_opens = bar_opens[np.r_[True, bar_opens[1:] != bar_opens[:-1]]]
    slots = session_slots(int(bar_opens[0]), int(bar_opens[-1]), timeframe.nanos, name)
    missing = slots[~_isin_sorted(slots, bar_opens)]
    outside = bar_opens[~_isin_sorted(bar_opens, slots)]
    details = {
        "calendar": name,
        "slots_expected": len(slots),
        "missing_bars": len(missing),
        "bars_outside_regular_hours": len(outside),
        "missing_examples": _iso(missing),
    }
    if len(missing) == 0:
        return Finding(True, f"a bar for each of {len(slots)} {timeframe.value} slots in session", details)
    return Finding(False, f"{len(missing)} of {len(slots)} {timeframe.value} slots in session have no bar", details)


def staleness(last_ns: int, now: pd.Timestamp, name: str = DEFAULT_CALENDAR) -> Finding:
    """The last bar reaches the close of the latest completed session (as of ``now``)."""
    calendar = exchange_calendar(name)
    now_ns = pd.Timestamp(now).tz_convert("UTC").value
    closes = calendar.closes_nanos
    completed = closes[closes <= now_ns]
    latest_close = int(completed[-1])
    behind = int(np.count_nonzero((closes > last_ns) & (closes <= now_ns)))
    details = {
        "last_bar": _iso([last_ns])[0],
        "latest_completed_session_close": _iso([latest_close])[0],
        "sessions_behind": behind,
    }
    if last_ns >= latest_close:
        return Finding(True, "bars reach the latest completed session", details)
    return Finding(False, f"last bar is {behind} sessions behind the latest completed session", details)


def row_counts(
    written: int, catalog_in_range: int, table_in_range: int, catalog_total: int, table_total: int
) -> Finding:
    """Both stores hold the same bars, and the imported range holds exactly the bars written."""
    details = {
        "bars_written": written,
        "catalog_bars_in_import_range": catalog_in_range,
        "table_rows_in_import_range": table_in_range,
        "catalog_bars": catalog_total,
        "table_rows": table_total,
    }
    if written == catalog_in_range == table_in_range and catalog_total == table_total:
        return Finding(True, f"{written} bars written; catalog and table agree ({catalog_total} bars)", details)
    return Finding(
        False,
        f"stores disagree: {written} written, import range holds {catalog_in_range} catalog bars and "
        f"{table_in_range} table rows; totals {catalog_total} vs {table_total}",
        details,
    )


def bar_ticks(frame: pd.DataFrame, price_precision: int) -> np.ndarray:
    """Bars as exact integers in time order, one row each: ts (ns), OHLC in ticks, volume.

    Ticks are units of the instrument's precision (185.25 at precision 2 is 18525), so both
    stores' copies of a bar compare exactly, whatever decimal type each keeps them in.
    """
    ticks = np.empty((len(frame), 6), dtype=np.int64)
    ticks[:, 0] = frame["ts_event"].to_numpy(dtype=np.int64)
    for i, column in enumerate(PRICE_COLUMNS, start=1):
        ticks[:, i] = np.rint(frame[column].to_numpy(dtype=np.float64) * 10**price_precision)
    ticks[:, 5] = np.rint(frame["volume"].to_numpy(dtype=np.float64) * 10**SIZE_PRECISION)
    return ticks[np.argsort(ticks[:, 0], kind="stable")]


def content_hash(ticks: np.ndarray, price_precision: int) -> str:
    """``BarSeries.content_hash`` of ``bar_ticks`` rows: the digest a backtest records as its data hash."""
    scale = 10**price_precision
    frame = pd.DataFrame({"ts_event": ticks[:, 0], "volume": ticks[:, 5].astype(np.float64)})
    for i, column in enumerate(PRICE_COLUMNS, start=1):
        frame[column] = ticks[:, i] / scale
    return frame_hash(frame, price_precision)


def same_content(catalog: np.ndarray, table: np.ndarray, price_precision: int) -> Finding:
    """The catalog and the table hold the same bars: same times and the same OHLCV, bar by bar.

    Counts alone miss a table left on old prices under a catalog with new ones; this does not.
    """
    hashes = {
        "catalog_sha256": content_hash(catalog, price_precision),
        "table_sha256": content_hash(table, price_precision),
    }
    if hashes["catalog_sha256"] == hashes["table_sha256"]:
        return Finding(True, f"catalog and table hold the same {len(catalog)} bars", {"bars": len(catalog), **hashes})
    common, at_catalog, at_table = np.intersect1d(catalog[:, 0], table[:, 0], return_indices=True)
    differ = (catalog[at_catalog] != table[at_table]).any(axis=1)
    examples = []
    for i, j in zip(at_catalog[differ][:EXAMPLES], at_table[differ][:EXAMPLES], strict=True):
        column = 1 + int(np.argmax(catalog[i, 1:] != table[j, 1:]))
        scale = 10 ** (price_precision if column <= 4 else SIZE_PRECISION)
        examples.append(
            f"{_iso([catalog[i, 0]])[0]} {CONTENT_COLUMNS[column]}: "
            f"catalog {catalog[i, column] / scale} vs table {table[j, column] / scale}"
        )
    details = {
        **hashes,
        "catalog_bars": len(catalog),
        "table_rows": len(table),
        "bars_differing": int(differ.sum()),
        "only_in_catalog": len(catalog) - len(common),
        "only_in_table": len(table) - len(common),
        "examples": examples,
    }
    return Finding(
        False,
        f"stores hold different bars: {details['bars_differing']} differ, {details['only_in_catalog']} only in "
        f"the catalog, {details['only_in_table']} only in the table",
        details,
    )
