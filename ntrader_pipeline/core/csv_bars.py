"""Read an OHLCV CSV file into a validated ``BarSeries``.

Understands Yahoo exports (``Date,Open,High,Low,Close,Adj Close,Volume``) and plain
``timestamp,open,high,low,close,volume`` files. Naive timestamps are read in the exchange's
timezone; daily bars are stamped at the session close, intraday bars at their end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntrader_pipeline.core.bars import PRICE_COLUMNS, BarSeries, Timeframe
from ntrader_pipeline.core.calendar import session_close_ns
from ntrader_pipeline.core.validation import BarFileError, BarProblem, validate_bars


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
