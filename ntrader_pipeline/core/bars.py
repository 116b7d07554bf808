"""Bar series: the one in-memory shape bars take between a source and the stores.

A ``BarSeries`` is a validated frame with one row per bar and the columns of ``BAR_COLUMNS``:
``ts_event`` is the bar's *close* time in UTC nanoseconds (NautilusTrader requires ``ts_init`` to
be the close), prices are floats that round exactly to ``price_precision`` decimals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ntrader_pipeline.core.calendar import DEFAULT_CALENDAR
from ntrader_pipeline.core.timeframes import Timeframe, bar_type_name  # noqa: F401  (bars and their interval go together)
from ntrader_pipeline.core.validation import BarProblem

if TYPE_CHECKING:  # NautilusTrader is imported where bars meet the engine: loading it costs seconds
    from nautilus_trader.model.data import Bar, BarType

BAR_COLUMNS = ["ts_event", "open", "high", "low", "close", "volume"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
SIZE_PRECISION = 0  # US equities trade in whole shares; fractional volumes are rejected upstream.


def bar_type_for(symbol: str, venue: str, timeframe: Timeframe) -> BarType:
    from nautilus_trader.model.data import BarType

    return BarType.from_str(bar_type_name(symbol, venue, timeframe))


@dataclass(frozen=True)
class ReadNotes:
    """How a source file was read: what an import reports beside its bars."""

    file: str = ""
    source_rows: int = 0  # data rows in the file, kept or not
    skipped: tuple[BarProblem, ...] = ()  # the problems of rows left out (``on_invalid="skip"``)
    adjusted: bool = False  # prices scaled by Adj Close / Close
    interval_inferred: bool = False  # the interval came from the timestamps, not the caller
    delimiter: str = ","

    @property
    def skipped_lines(self) -> list[int]:
        """The file lines left out, each once, in order."""
        return sorted({problem.line for problem in self.skipped})


@dataclass(frozen=True)
class BarSeries:
    """Validated bars of one symbol and interval, ready for the catalog and the warehouse."""

    symbol: str
    timeframe: Timeframe
    frame: pd.DataFrame  # BAR_COLUMNS, sorted by ts_event, unique timestamps
    price_precision: int
    source: str = "csv"
    notes: ReadNotes = field(default_factory=ReadNotes)  # how the source was read
    # Raises when the source changed since it was read in a way that spoils these bars (a file
    # still being written); the store calls it under the series' lock, just before publishing.
    recheck: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    # The exchange calendar its sessions follow (exchange-calendars code): daily bars are stamped at
    # its session closes, and its checks, fills and run provenance use it.
    calendar: str = DEFAULT_CALENDAR

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def first_ns(self) -> int:
        return int(self.frame["ts_event"].iloc[0])

    @property
    def last_ns(self) -> int:
        return int(self.frame["ts_event"].iloc[-1])

    def bar_type(self, venue: str) -> BarType:
        return bar_type_for(self.symbol, venue, self.timeframe)

    def content_hash(self) -> str:
        """Hash of the bars as stored (rounded prices), so a backtest can name its exact input."""
        return frame_hash(self.frame, self.price_precision)


def frame_hash(frame: pd.DataFrame, price_precision: int) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(frame["ts_event"].to_numpy(dtype=np.int64)).tobytes())
    scale = 10**price_precision
    for column in PRICE_COLUMNS:
        ticks = np.rint(frame[column].to_numpy(dtype=np.float64) * scale).astype(np.int64)
        digest.update(np.ascontiguousarray(ticks).tobytes())
    digest.update(np.ascontiguousarray(frame["volume"].to_numpy(dtype=np.float64)).tobytes())
    return digest.hexdigest()


def _writable(values) -> np.ndarray:
    # pandas 3 hands out read-only buffers (copy-on-write); the Cython API needs writable ones.
    return np.array(values, dtype=np.float64, copy=True, order="C")


def to_nautilus_bars(series: BarSeries, venue: str) -> list[Bar]:
    from nautilus_trader.model.data import Bar

    frame = series.frame
    ts = np.array(frame["ts_event"].to_numpy(dtype=np.int64), dtype=np.uint64, copy=True, order="C")
    return Bar.from_raw_arrays_to_list(
        series.bar_type(venue),
        series.price_precision,
        SIZE_PRECISION,
        _writable(frame["open"]),
        _writable(frame["high"]),
        _writable(frame["low"]),
        _writable(frame["close"]),
        _writable(frame["volume"]),
        ts,
        ts.copy(),
    )


def frame_from_nautilus_bars(bars: list[Bar]) -> pd.DataFrame:
    """Inverse of ``to_nautilus_bars``; values are rounded back to their decimals, because the
    engine's fixed-point to double conversion leaves noise in the last bits."""
    n = len(bars)
    prices = bars[0].open.precision if n else 0
    sizes = bars[0].volume.precision if n else 0

    def column(get, places: int) -> np.ndarray:
        return np.round(np.fromiter((get(b).as_double() for b in bars), dtype=np.float64, count=n), places)

    return pd.DataFrame(
        {
            "ts_event": np.fromiter((b.ts_event for b in bars), dtype=np.int64, count=n),
            "open": column(lambda b: b.open, prices),
            "high": column(lambda b: b.high, prices),
            "low": column(lambda b: b.low, prices),
            "close": column(lambda b: b.close, prices),
            "volume": column(lambda b: b.volume, sizes),
        }
    )
