"""The NautilusTrader Parquet catalog, holding one file per bar series and its instrument.

The catalog itself silently skips a write whose range already exists and raises on a partial
overlap, so we never append: a write builds the series' complete new contents in a staging
catalog and swaps its folders in. The staged ``Publish`` (see ``catalog_publish``) lets a caller
make the swap part of a larger transaction (the warehouse write), recoverable after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from nautilus_trader.model.data import Bar
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import FIXED_PRECISION
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.catalog.parquet import _timestamps_to_filename
from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

from ntrader_pipeline.adapters.catalog_publish import Publish
from ntrader_pipeline.adapters.faults import kill_point
from ntrader_pipeline.core.bars import (
    PRICE_COLUMNS,
    SIZE_PRECISION,
    BarSeries,
    Timeframe,
    bar_type_for,
    to_nautilus_bars,
)
from ntrader_pipeline.core.instruments import make_equity
from ntrader_pipeline.core.paths import confined


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


def decimals_from_fixed_point(column: pa.ChunkedArray | pa.Array, precision: int) -> np.ndarray:
    """Inverse of ``fixed_point_128``: the int128 values are read as Arrow decimals (the same bytes),
    rescaled exactly to ``precision`` places and divided as ticks, so each float is the one
    ``np.round(value, precision)`` gives."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    exact = pa.Array.from_buffers(pa.decimal128(38, FIXED_PRECISION), len(column), column.buffers(), offset=column.offset)
    scaled = pc.cast(pc.round(exact, precision), pa.decimal128(38, precision))
    limbs = np.frombuffer(scaled.buffers()[1], dtype="<i8")[2 * scaled.offset : 2 * (scaled.offset + len(scaled))]
    return limbs[0::2] / 10.0**precision  # the low limb: ticks stay below 2**53 (see csv_bars.EXACT_TICKS)


def frame_from_bars_table(table: pa.Table, price_precision: int) -> pd.DataFrame:
    """The ``BAR_COLUMNS`` frame of a catalog bar table, sorted by close time."""
    frame = pd.DataFrame(
        {
            "ts_event": table.column("ts_event").to_numpy().astype(np.int64),
            **{c: decimals_from_fixed_point(table.column(c), price_precision) for c in PRICE_COLUMNS},
            "volume": decimals_from_fixed_point(table.column("volume"), SIZE_PRECISION),
        }
    )
    return frame.sort_values("ts_event", kind="stable", ignore_index=True)


def _stored_precision(table: pa.Table) -> int:
    """The price precision NautilusTrader wrote into the file's schema metadata."""
    return int((table.schema.metadata or {}).get(b"price_precision", b"0"))


@dataclass(frozen=True)
class StagedSeries:
    """A merged series written to staging, waiting to be swapped into the live catalog."""

    series: BarSeries
    publish: Publish


def series_folders(symbol: str, venue: str, bar_type: str) -> list[Path]:
    """The catalog folders (relative to its root) one series owns: its bars, then its instrument.

    The names are built from the symbol, so each is confined to its parent folder: a value that
    slipped past the symbol grammar still cannot name a folder outside the catalog.
    """
    bars, instruments = Path("data") / "bar", Path("data") / "equity"
    for parent, name in ((bars, bar_type), (instruments, f"{symbol}.{venue}")):
        confined(parent, name)  # relative: resolved against the working folder, only the shape matters
    return [bars / bar_type, instruments / f"{symbol}.{venue}"]


class BarCatalog:
    """Bars and instruments in a ``ParquetDataCatalog``, one series per symbol and interval."""

    def __init__(self, path: str | Path, venue: str):
        self.path = Path(path)
        self.venue = venue

    @property
    def _catalog(self) -> ParquetDataCatalog:
        return ParquetDataCatalog(str(self.path))

    def bar_files(self, symbol: str, timeframe: Timeframe) -> list[Path]:
        folder = confined(self.path / "data" / "bar", str(bar_type_for(symbol, self.venue, timeframe)))
        return sorted(folder.glob("*.parquet")) if folder.exists() else []

    def read_bars(self, symbol: str, timeframe: Timeframe) -> list[Bar]:
        if not self.bar_files(symbol, timeframe):
            return []
        return self._catalog.bars([str(bar_type_for(symbol, self.venue, timeframe))])

    def instrument(self, symbol: str) -> Equity | None:
        found = self._catalog.instruments(instrument_ids=[f"{symbol}.{self.venue}"])
        return found[0] if found else None

    def read(self, symbol: str, timeframe: Timeframe) -> BarSeries | None:
        """The stored series, or None when the catalog has no bars for it.

        Read column-wise from the Parquet files: no ``Bar`` object is built (a million of them
        cost gigabytes and seconds), and the values equal ``frame_from_nautilus_bars``' exactly.
        """
        files = self.bar_files(symbol, timeframe)
        if not files:
            return None
        instrument = self.instrument(symbol)
        table = pq.read_table(files[0]) if len(files) == 1 else pa.concat_tables(pq.read_table(f) for f in files)
        if table.num_rows == 0:
            return None
        precision = instrument.price_precision if instrument else _stored_precision(table)
        return BarSeries(symbol, timeframe, frame_from_bars_table(table, precision), precision, source="catalog")

    def closes_reader(self, timeframe: Timeframe):
        """``symbol -> DataFrame[ts_event, close] | None``: what a benchmark is read with."""

        def closes(symbol: str):
            series = self.read(symbol, timeframe)
            return None if series is None else series.frame[["ts_event", "close"]]

        return closes

    def stage(self, series: BarSeries) -> StagedSeries:
        """Write ``series`` (merged with what is stored) to a staging catalog beside the live one."""
        merged = merge_series(self.read(series.symbol, series.timeframe), series)
        bar_type = str(merged.bar_type(self.venue))
        publish = Publish.create(self.path, bar_type, series_folders(merged.symbol, self.venue, bar_type))
        try:
            staging = ParquetDataCatalog(str(publish.new))
            staging.write_data([make_equity(merged.symbol, self.venue, merged.price_precision)])
            folder = publish.new / "data" / "bar" / bar_type
            folder.mkdir(parents=True)
            pq.write_table(
                bars_table(merged, self.venue),
                folder / _timestamps_to_filename(merged.first_ns, merged.last_ns),
                row_group_size=staging.max_rows_per_group,
            )
            kill_point("staging")  # staged files written, no journal yet: garbage to whoever opens next
            publish.seal()
        except BaseException:
            publish.remove()  # a write that fails here leaves no staging behind
            raise
        return StagedSeries(merged, publish)

    def write(self, series: BarSeries) -> BarSeries:
        """Replace the stored bars in ``series``' range, catalog only; returns the full stored series."""
        staged = self.stage(series)
        staged.publish.swap_in()
        staged.publish.remove()
        return staged.series
