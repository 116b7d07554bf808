"""Read an OHLCV CSV file into a validated ``BarSeries``.

Understands Yahoo exports (``Date,Open,High,Low,Close,Adj Close,Volume``) and plain
``timestamp,open,high,low,close,volume`` files. Naive timestamps are read in the exchange's
timezone; daily bars are stamped at the session close, intraday bars at their end.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ntrader_pipeline.core.bars import PRICE_COLUMNS, BarSeries, Timeframe
from ntrader_pipeline.core.calendar import session_close_ns


@dataclass(frozen=True)
class BarProblem:
    """One thing wrong with one cell (or row) of a source file."""

    line: int  # 1-based line in the file, header = line 1
    column: str | None
    value: str | None
    rule: str

    def describe(self, file: str) -> str:
        where = f"{file}:{self.line}" + (f" column {self.column!r}" if self.column else "")
        value = f" value {self.value!r}:" if self.value is not None else ""
        return f"{where}:{value} {self.rule}"


class BarFileError(ValueError):
    """A source file that cannot become bars; carries every problem found."""

    def __init__(self, file: str | Path, problems: list[BarProblem]):
        self.file = str(file)
        self.problems = problems
        shown = "; ".join(p.describe(self.file) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(shown + more)


_TIME_ALIASES = ("timestamp", "datetime", "date", "time")


def read_bar_csv(
    path: str | Path,
    symbol: str,
    timeframe: Timeframe | None = None,
    timezone: str = "America/New_York",
) -> BarSeries:
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise BarFileError(path, [BarProblem(1, None, None, "file is empty")]) from None
    raw.columns = [c.strip().lower() for c in raw.columns]
    if raw.empty:
        raise BarFileError(path, [BarProblem(2, None, None, "file has a header but no rows")])
    time_col = next((c for c in _TIME_ALIASES if c in raw.columns), None)
    missing = [c for c in PRICE_COLUMNS + ["volume"] if c not in raw.columns]
    if time_col is None or missing:
        need = ([] if time_col else ["timestamp"]) + missing
        raise BarFileError(path, [BarProblem(1, None, None, f"no column for {', '.join(need)}")])

    lines = np.arange(len(raw)) + 2
    problems: list[BarProblem] = []
    numbers = {}
    for column in PRICE_COLUMNS + ["volume"]:
        values = pd.to_numeric(raw[column].str.strip(), errors="coerce")
        for i in np.flatnonzero(values.isna().to_numpy()):
            problems.append(BarProblem(int(lines[i]), column, raw[column].iat[i], "not a number"))
        numbers[column] = values.to_numpy(dtype=np.float64)

    stamps = pd.to_datetime(raw[time_col].str.strip(), errors="coerce")
    for i in np.flatnonzero(stamps.isna().to_numpy()):
        problems.append(BarProblem(int(lines[i]), time_col, raw[time_col].iat[i], "not a timestamp"))
    if problems:
        raise BarFileError(path, problems)

    timeframe = timeframe or _infer_timeframe(stamps)
    if timeframe is Timeframe.DAILY:
        ts_event = session_close_ns(stamps)
    else:
        local = stamps if stamps.dt.tz is not None else stamps.dt.tz_localize(timezone)
        opens = local.dt.tz_convert("UTC").to_numpy(dtype="datetime64[ns]").astype(np.int64)
        ts_event = opens + timeframe.nanos

    frame = pd.DataFrame({"ts_event": ts_event, **numbers})
    problems = validate_bars(frame, lines)
    if problems:
        raise BarFileError(path, problems)
    precision = _price_precision(raw[PRICE_COLUMNS])
    return BarSeries(symbol=symbol.upper(), timeframe=timeframe, frame=frame, price_precision=precision)


def validate_bars(frame: pd.DataFrame, lines: np.ndarray) -> list[BarProblem]:
    """Every OHLCV rule a bar must obey, checked column-wise (no per-row Python)."""
    o, h, low, c, v = (frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
    checks = [
        ("open", o <= 0, "price must be positive"),
        ("high", h <= 0, "price must be positive"),
        ("low", low <= 0, "price must be positive"),
        ("close", c <= 0, "price must be positive"),
        ("high", h < np.maximum.reduce([o, c, low]), "high is below open, close or low"),
        ("low", low > np.minimum(o, c), "low is above open or close"),
        ("volume", v < 0, "volume must not be negative"),
    ]
    ts = frame["ts_event"].to_numpy()
    order = np.zeros(len(ts), dtype=bool)
    order[1:] = ts[1:] <= ts[:-1]
    checks.append(("timestamp", order, "timestamp is not after the previous bar's"))
    problems = [
        BarProblem(int(lines[i]), column, repr_value(frame, column, i), rule)
        for column, mask, rule in checks
        for i in np.flatnonzero(mask)
    ]
    return sorted(problems, key=lambda p: p.line)


def repr_value(frame: pd.DataFrame, column: str, i: int) -> str:
    key = "ts_event" if column == "timestamp" else column
    value = frame[key].iat[i]
    if key == "ts_event":
        return pd.Timestamp(int(value), tz="UTC").isoformat()
    return f"{value:g}"


def _infer_timeframe(stamps: pd.Series) -> Timeframe:
    steps = stamps.diff().dropna()
    if steps.empty:
        return Timeframe.DAILY
    step = steps.min()
    for tf in (Timeframe.MIN1, Timeframe.MIN5, Timeframe.HOUR1):
        if step == pd.Timedelta(tf.nanos):
            return tf
    return Timeframe.DAILY


def _price_precision(prices: pd.DataFrame) -> int:
    decimals = 0
    for column in prices.columns:
        text = prices[column].str.strip()
        frac = text.str.extract(r"\.(\d*)$", expand=False).fillna("")
        decimals = max(decimals, int(frac.str.len().max()))
    return decimals
