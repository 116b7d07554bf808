"""The NautilusTrader Parquet catalog, holding one file per bar series and its instrument.

The catalog itself silently skips a write whose range already exists and raises on a partial
overlap, so we never append: a write builds the series' complete new contents in a staging
catalog and swaps it in. The staged publish lets a caller make the swap part of a larger
transaction (the warehouse write), recoverable after a crash.

The catalog lives in a local folder or under an ``s3://`` URL, and the swap takes the form each
can make atomic: on disk, folders renamed into the layout NautilusTrader reads (``catalog_publish``);
on object storage, which has no rename, a new version prefix and a manifest object PUT last
(``catalog_manifest``). Either way a series' files are the same NautilusTrader Parquet files.
"""

from __future__ import annotations

import io
import tempfile
from contextlib import ExitStack
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

from ntrader_pipeline.adapters import catalog_manifest, catalog_publish
from ntrader_pipeline.adapters.catalog_manifest import ManifestPublish, read_manifest
from ntrader_pipeline.adapters.catalog_publish import Publish
from ntrader_pipeline.adapters.faults import kill_point
from ntrader_pipeline.adapters.object_store import ObjectStore, S3Options, is_remote, open_store
from ntrader_pipeline.core.bars import (
    PRICE_COLUMNS,
    SIZE_PRECISION,
    BarSeries,
    Timeframe,
    bar_type_for,
    to_nautilus_bars,
)
from ntrader_pipeline.core.calendar import DEFAULT_CALENDAR
from ntrader_pipeline.core.instruments import make_equity
from ntrader_pipeline.core.paths import confined


class CalendarMismatchError(ValueError):
    """Bars on one exchange calendar sent to a series stored on another."""


def refuse_other_calendar(existing: BarSeries | None, incoming: BarSeries, bar_type: str) -> None:
    """A series keeps the calendar it was first stored with: its sessions decide its stamps and checks."""
    if existing is not None and len(existing) and existing.calendar != incoming.calendar:
        raise CalendarMismatchError(
            f"{bar_type} is stored on the {existing.calendar} calendar; these bars are on {incoming.calendar}. "
            f"Import them with --calendar {existing.calendar}, or under another symbol"
        )


def merge_series(existing: BarSeries | None, incoming: BarSeries) -> BarSeries:
    """Incoming bars replace stored bars inside their time range; stored bars outside it stay."""
    if existing is None or len(existing) == 0:
        return incoming
    refuse_other_calendar(existing, incoming, f"{incoming.symbol} {incoming.timeframe.value}")
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
        calendar=incoming.calendar,
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
    exact = pa.Array.from_buffers(
        pa.decimal128(38, FIXED_PRECISION), len(column), column.buffers(), offset=column.offset
    )
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


CALENDAR_KEY = b"ntrader_calendar"  # our own key in the bar file's schema metadata, beside NautilusTrader's


def _stored_calendar(table: pa.Table | pa.Schema) -> str:
    """The exchange calendar a bar file was written with; files from before calendars were kept
    per series carry none and are XNYS, the only calendar there was."""
    schema = table if isinstance(table, pa.Schema) else table.schema
    return (schema.metadata or {}).get(CALENDAR_KEY, DEFAULT_CALENDAR.encode()).decode()


def _stored_precision(table: pa.Table) -> int:
    """The price precision NautilusTrader wrote into the file's schema metadata: the series' own.

    A symbol's series (daily, one-minute…) share one instrument but keep their files' decimals, so
    bars are read at this precision, never the instrument's.
    """
    found = (table.schema.metadata or {}).get(b"price_precision")
    if found is None:
        raise ValueError(
            f"{(table.schema.metadata or {}).get(b'bar_type', b'?').decode()}: a bar file without its "
            "price precision (not written by NautilusTrader); re-import the series"
        )
    return int(found)


@dataclass(frozen=True)
class StagedSeries:
    """A merged series written to staging, waiting to be swapped into the live catalog."""

    series: BarSeries
    publish: Publish | ManifestPublish


def series_folders(symbol: str, venue: str, bar_type: str) -> tuple[Path, Path]:
    """The catalog folders (relative to its root) of one series: its bars, and its symbol's instrument.

    The names are built from the symbol, so each is confined to its parent folder: a value that
    slipped past the symbol grammar still cannot name a folder outside the catalog.
    """
    bars, instruments = Path("data") / "bar", Path("data") / "equity"
    for parent, name in ((bars, bar_type), (instruments, f"{symbol}.{venue}")):
        confined(parent, name)  # relative: resolved against the working folder, only the shape matters
    return bars / bar_type, instruments / f"{symbol}.{venue}"


def write_series_folders(root: Path, series: BarSeries, venue: str) -> None:
    """``series``' bars and instrument as a complete NautilusTrader catalog under ``root``."""
    bar_type = str(series.bar_type(venue))
    staging = ParquetDataCatalog(str(root))
    staging.write_data([make_equity(series.symbol, venue, series.price_precision)])
    folder = root / "data" / "bar" / bar_type
    folder.mkdir(parents=True)
    table = bars_table(series, venue)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), CALENDAR_KEY: series.calendar.encode()})
    pq.write_table(
        table,
        folder / _timestamps_to_filename(series.first_ns, series.last_ns),
        row_group_size=staging.max_rows_per_group,
    )


class VersionGoneError(FileNotFoundError):
    """A version vanished while being read: a newer publish settled and removed it."""


READ_ATTEMPTS = 5  # each retry re-resolves the manifest; one is enough unless publishes race the reader


class BarCatalog:
    """Bars and instruments in a ``ParquetDataCatalog``, one series per symbol and interval.

    ``path``: a local folder, or an ``s3://bucket/prefix`` URL reached with ``s3``.
    """

    def __init__(self, path: str | Path, venue: str, s3: S3Options | None = None):
        self.remote = is_remote(path)
        self.path = str(path).rstrip("/") if self.remote else Path(path)
        self.venue = venue
        self.objects = open_store(self.path, s3) if self.remote else None

    def _store(self) -> ObjectStore:
        """The bucket of a catalog on object storage."""
        if self.objects is None:
            raise TypeError(f"{self.path} is a local catalog, not one on object storage")
        return self.objects

    def _folder(self) -> Path:
        """The folder of a local catalog."""
        if not isinstance(self.path, Path):
            raise TypeError(f"{self.path} is on object storage, not a local folder")
        return self.path

    @property
    def _catalog(self) -> ParquetDataCatalog:
        return ParquetDataCatalog(str(self.path))

    def bar_files(self, symbol: str, timeframe: Timeframe) -> list[Path] | list[str]:
        bar_type = str(bar_type_for(symbol, self.venue, timeframe))
        if self.remote:
            manifest = read_manifest(self._store(), bar_type)
            prefix = catalog_manifest.version_prefix(bar_type, manifest["version"]) if manifest else ""
            return (
                [self._store().url(f"{prefix}/{f}") for f in manifest["files"] if f.startswith("data/bar/")]
                if manifest
                else []
            )
        folder = confined(self._folder() / "data" / "bar", bar_type)
        with catalog_publish.reading(self._folder(), bar_type, folder):
            return sorted(folder.glob("*.parquet")) if folder.exists() else []

    def read_bars(self, symbol: str, timeframe: Timeframe) -> list[Bar]:
        if self.remote:
            tables = self._read_version(str(bar_type_for(symbol, self.venue, timeframe)))
            return [bar for table in tables for bar in ArrowSerializer.deserialize(Bar, table)]
        if not self.bar_files(symbol, timeframe):
            return []
        return self._catalog.bars([str(bar_type_for(symbol, self.venue, timeframe))])

    def calendar_of(self, symbol: str) -> str | None:
        """The exchange calendar ``symbol``'s stored series follow (its first series' file says),
        or None when none is stored. Reads one file's schema, never the bars."""
        for timeframe in Timeframe:
            if self.remote:  # a version's files are only reached through its manifest
                tables = self._read_version(str(bar_type_for(symbol, self.venue, timeframe)))
                if tables:
                    return _stored_calendar(tables[0])
            elif files := self.bar_files(symbol, timeframe):
                return _stored_calendar(pq.read_schema(files[0]))
        return None

    def instrument(self, symbol: str) -> Equity | None:
        """The symbol's instrument at the catalog's root (its latest publish's), as NautilusTrader reads it."""
        found = self._catalog.instruments(instrument_ids=[f"{symbol}.{self.venue}"])
        return found[0] if found else None

    def read(self, symbol: str, timeframe: Timeframe) -> BarSeries | None:
        """The stored series, or None when the catalog has no bars for it.

        One whole version, whatever a writer is doing (see ``_read_files`` and ``_read_version``),
        at the precision its own files carry. Read column-wise from the Parquet files: no ``Bar``
        object is built (a million of them cost gigabytes and seconds), and the values equal
        ``frame_from_nautilus_bars``' exactly.
        """
        bar_type = str(bar_type_for(symbol, self.venue, timeframe))
        tables = self._read_version(bar_type) if self.remote else self._read_files(bar_type)
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return None
        precision = max(_stored_precision(t) for t in tables)
        table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
        calendar = _stored_calendar(tables[-1])
        frame = frame_from_bars_table(table, precision)
        return BarSeries(symbol, timeframe, frame, precision, source="catalog", calendar=calendar)

    def _read_files(self, bar_type: str) -> list[pa.Table]:
        """The live bar files of a local series, listed and opened under its shared swap lock.

        A swap renames folders under the same lock, exclusively, so the files opened are one
        version, whole; they are read after the lock is let go (an open file stays readable when
        a later swap moves or deletes it), so a reader never holds up a writer for longer than
        the opens take.
        """
        folder = confined(self._folder() / "data" / "bar", bar_type)
        with ExitStack() as opened:
            with catalog_publish.reading(self._folder(), bar_type, folder):
                files = sorted(folder.glob("*.parquet")) if folder.exists() else []
                handles = [opened.enter_context(open(f, "rb")) for f in files]
            return [pq.read_table(handle) for handle in handles]

    def _read_version(self, bar_type: str) -> list[pa.Table]:
        """The live version's bar files (empty when there is none), from the manifest resolved
        once per attempt.

        A version is deleted once a newer publish settles, so a reader that resolved the old
        manifest just before can find its files gone: it then resolves the manifest again.
        """
        for _ in range(READ_ATTEMPTS):
            manifest = read_manifest(self._store(), bar_type)
            if manifest is None:
                return []
            prefix = catalog_manifest.version_prefix(bar_type, manifest["version"])
            try:
                return [
                    pq.read_table(io.BytesIO(self._store().get(f"{prefix}/{f}")))
                    for f in manifest["files"]
                    if f.startswith("data/bar/")
                ]
            except FileNotFoundError:
                continue
        raise VersionGoneError(f"{bar_type}: every version read was replaced meanwhile ({READ_ATTEMPTS} tries)")

    def closes_reader(self, timeframe: Timeframe):
        """``symbol -> DataFrame[ts_event, close] | None``: what a benchmark is read with."""

        def closes(symbol: str):
            series = self.read(symbol, timeframe)
            return None if series is None else series.frame[["ts_event", "close"]]

        return closes

    def stage(self, series: BarSeries) -> StagedSeries:
        """Write ``series`` (merged with what is stored) to staging, beside the live catalog."""
        merged = merge_series(self.read(series.symbol, series.timeframe), series)
        bar_type = str(merged.bar_type(self.venue))
        if self.remote:
            return StagedSeries(merged, self._stage_version(merged, bar_type))
        bars, instrument = series_folders(merged.symbol, self.venue, bar_type)
        publish = Publish.create(self._folder(), bar_type, [bars], instrument)
        try:
            write_series_folders(publish.new, merged, self.venue)
            kill_point("staging")  # staged files written, no journal yet: garbage to whoever opens next
            publish.seal()
        except BaseException:
            publish.remove()  # a write that fails here leaves no staging behind
            raise
        return StagedSeries(merged, publish)

    def _stage_version(self, merged: BarSeries, bar_type: str) -> ManifestPublish:
        publish = ManifestPublish.begin(self._store(), bar_type)
        try:
            with tempfile.TemporaryDirectory(prefix="ntrader-stage-") as folder:
                write_series_folders(Path(folder), merged, self.venue)
                publish = publish.upload(Path(folder))
            kill_point("staging")  # the version uploaded, its journal still empty: garbage
            publish.seal()
        except BaseException:
            catalog_manifest.remove_garbage(self._store(), bar_type, [publish.publish_id])
            raise
        return publish

    def write(self, series: BarSeries) -> BarSeries:
        """Replace the stored bars in ``series``' range, catalog only; returns the full stored series."""
        staged = self.stage(series)
        staged.publish.swap_in()
        staged.publish.remove()
        return staged.series

    # --- settling what killed writers left (see market_data_store) ---------------------------

    def unsettled_series(self) -> list[str]:
        """Bar types with a publish left open: unsettled, or garbage from a killed writer."""
        if self.remote:
            return catalog_manifest.staged_series(self._store())
        return catalog_publish.staged_series(self._folder())

    def pending(self, bar_type: str) -> tuple[list[Publish] | list[ManifestPublish], list]:
        """The journaled publishes of a series and its unfinished staging (only under its lock)."""
        if self.remote:
            return catalog_manifest.pending(self._store(), bar_type)
        return catalog_publish.pending(self._folder(), bar_type)

    def remove_garbage(self, bar_type: str, garbage: list) -> None:
        if self.remote:
            catalog_manifest.remove_garbage(self._store(), bar_type, garbage)  # versions: settling collects
        else:
            catalog_publish.remove_garbage(garbage)
