"""The NautilusTrader Parquet catalog, holding one file per bar series and its instrument.

The catalog itself silently skips a write whose range already exists and raises on a partial
overlap, so we never append: a write builds the series' complete new contents in a staging
catalog and swaps its folders in. ``StagedSeries.publish`` and ``restore`` let a caller make the
swap part of a larger transaction (the warehouse write), so both stores change or neither does.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.model.data import Bar
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import FIXED_PRECISION
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.catalog.parquet import _timestamps_to_filename
from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

from ntrader_pipeline.core.bars import (
    PRICE_COLUMNS,
    SIZE_PRECISION,
    BarSeries,
    Timeframe,
    bar_type_for,
    frame_from_nautilus_bars,
    to_nautilus_bars,
)
from ntrader_pipeline.core.instruments import make_equity


def merge_series(existing: BarSeries | None, incoming: BarSeries) -> BarSeries:
    """Incoming bars replace stored bars inside their time range; stored bars outside it stay."""
    if existing is None or len(existing) == 0:
        return incoming
    old = existing.frame
    keep = old[(old["ts_event"] < incoming.first_ns) | (old["ts_event"] > incoming.last_ns)]
    frame = pd.concat([keep, incoming.frame], ignore_index=True).sort_values("ts_event", kind="stable")
    return BarSeries(
        symbol=incoming.symbol,
        timeframe=incoming.timeframe,
        frame=frame.reset_index(drop=True),
        price_precision=max(existing.price_precision, incoming.price_precision),
        source=incoming.source,
        notes=incoming.notes,
    )


def fixed_point_128(values: np.ndarray, precision: int) -> pa.FixedSizeBinaryArray:
    """Non-negative decimals as NautilusTrader stores prices and sizes: value * 10**16 as int128 LE.

    Done with two 64-bit limbs in numpy, so a million values take milliseconds instead of the
    seconds that building ``Bar`` objects and serialising them one by one costs.
    """
    ticks = np.rint(np.asarray(values, dtype=np.float64) * 10**precision).astype(np.int64)
    if (ticks < 0).any():
        raise ValueError("fixed_point_128 takes non-negative values only")
    t = ticks.astype(np.uint64)
    m = np.uint64(10 ** (FIXED_PRECISION - precision))
    low32 = np.uint64(0xFFFFFFFF)
    t0, t1, m0, m1 = t & low32, t >> np.uint64(32), m & low32, m >> np.uint64(32)
    p00, mid, p11 = t0 * m0, t0 * m1 + t1 * m0, t1 * m1
    lo = p00 + (mid << np.uint64(32))
    hi = p11 + (mid >> np.uint64(32)) + (lo < p00).astype(np.uint64)
    limbs = np.empty((len(t), 2), dtype="<u8")
    limbs[:, 0], limbs[:, 1] = lo, hi
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(t), [None, pa.py_buffer(limbs.tobytes())])


def bars_table(series: BarSeries, venue: str) -> pa.Table:
    """The Arrow table NautilusTrader's own serializer makes for these bars, built column-wise.

    The schema (with its metadata) is taken from the serializer itself on one bar, so the file is
    whatever NautilusTrader writes; a test compares the whole table with the serializer's output.
    """
    sample = BarSeries(series.symbol, series.timeframe, series.frame.iloc[:1], series.price_precision)
    reference = ArrowSerializer.serialize_batch(to_nautilus_bars(sample, venue), data_cls=Bar)
    frame = series.frame
    ts = pa.array(frame["ts_event"].to_numpy(dtype=np.int64).astype(np.uint64))
    columns = [fixed_point_128(frame[c].to_numpy(), series.price_precision) for c in PRICE_COLUMNS]
    columns.append(fixed_point_128(frame["volume"].to_numpy(), SIZE_PRECISION))
    return pa.Table.from_arrays([*columns, ts, ts], schema=reference.schema)


@dataclass
class StagedSeries:
    """A series written to a staging catalog, waiting to be swapped into the live one."""

    catalog: BarCatalog
    series: BarSeries
    staging_root: Path
    _backup: Path | None = None
    _swapping: list[Path] = field(default_factory=list)  # folders publish has started to swap

    def _folders(self) -> list[Path]:
        """The catalog folders (relative to its root) that this series owns."""
        bar_type = str(self.series.bar_type(self.catalog.venue))
        instrument_id = f"{self.series.symbol}.{self.catalog.venue}"
        return [Path("data") / "bar" / bar_type, Path("data") / "equity" / instrument_id]

    def publish(self) -> None:
        """Swap the staged folders in; the old ones are kept until ``discard``."""
        self._backup = self.staging_root / "backup"
        for relative in self._folders():
            live = self.catalog.path / relative
            staged = self.staging_root / "new" / relative
            self._swapping.append(relative)  # before moving anything: restore undoes a half-done swap
            if live.exists():
                (self._backup / relative).parent.mkdir(parents=True, exist_ok=True)
                live.rename(self._backup / relative)
            live.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(live)

    def restore(self) -> None:
        """Put the catalog back exactly as it was before ``publish``, even if it stopped half-way."""
        for relative in reversed(self._swapping):
            live = self.catalog.path / relative
            if not (self.staging_root / "new" / relative).exists() and live.exists():
                shutil.rmtree(live)  # the staged folder made it in: take it out again
            backup = self._backup / relative
            if backup.exists():
                backup.rename(live)
        self._swapping.clear()
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.staging_root, ignore_errors=True)


class BarCatalog:
    """Bars and instruments in a ``ParquetDataCatalog``, one series per symbol and interval."""

    def __init__(self, path: str | Path, venue: str):
        self.path = Path(path)
        self.venue = venue

    @property
    def _catalog(self) -> ParquetDataCatalog:
        return ParquetDataCatalog(str(self.path))

    def bar_files(self, symbol: str, timeframe: Timeframe) -> list[Path]:
        folder = self.path / "data" / "bar" / str(bar_type_for(symbol, self.venue, timeframe))
        return sorted(folder.glob("*.parquet")) if folder.exists() else []

    def read_bars(self, symbol: str, timeframe: Timeframe) -> list[Bar]:
        if not self.bar_files(symbol, timeframe):
            return []
        return self._catalog.bars([str(bar_type_for(symbol, self.venue, timeframe))])

    def instrument(self, symbol: str) -> Equity | None:
        found = self._catalog.instruments(instrument_ids=[f"{symbol}.{self.venue}"])
        return found[0] if found else None

    def read(self, symbol: str, timeframe: Timeframe) -> BarSeries | None:
        """The stored series, or None when the catalog has no bars for it."""
        bars = self.read_bars(symbol, timeframe)
        if not bars:
            return None
        instrument = self.instrument(symbol)
        precision = instrument.price_precision if instrument else bars[0].open.precision
        return BarSeries(symbol, timeframe, frame_from_nautilus_bars(bars), precision, source="catalog")

    def closes_reader(self, timeframe: Timeframe):
        """``symbol -> DataFrame[ts_event, close] | None``: what a benchmark is read with."""

        def closes(symbol: str):
            series = self.read(symbol, timeframe)
            return None if series is None else series.frame[["ts_event", "close"]]

        return closes

    def stage(self, series: BarSeries) -> StagedSeries:
        """Write ``series`` (merged with what is stored) to a staging catalog beside the live one."""
        merged = merge_series(self.read(series.symbol, series.timeframe), series)
        root = self.path / ".staging" / uuid.uuid4().hex
        staging = ParquetDataCatalog(str(root / "new"))
        staging.write_data([make_equity(merged.symbol, self.venue, merged.price_precision)])
        folder = root / "new" / "data" / "bar" / str(merged.bar_type(self.venue))
        folder.mkdir(parents=True)
        pq.write_table(
            bars_table(merged, self.venue),
            folder / _timestamps_to_filename(merged.first_ns, merged.last_ns),
            row_group_size=staging.max_rows_per_group,
        )
        return StagedSeries(self, merged, root)

    def write(self, series: BarSeries) -> BarSeries:
        """Replace the stored bars in ``series``' range; returns the full stored series."""
        staged = self.stage(series)
        staged.publish()
        staged.discard()
        return staged.series
