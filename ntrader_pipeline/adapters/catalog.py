"""The NautilusTrader Parquet catalog, holding one file per bar series and its instrument.

The catalog itself silently skips a write whose range already exists and raises on a partial
overlap, so we never append: a write builds the series' complete new contents in a staging
catalog and swaps its folders in. ``StagedSeries.publish`` and ``restore`` let a caller make the
swap part of a larger transaction (the warehouse write), so both stores change or neither does.
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from nautilus_trader.model.data import Bar
from nautilus_trader.model.instruments import Equity
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from ntrader_pipeline.core.bars import (
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


@dataclass
class StagedSeries:
    """A series written to a staging catalog, waiting to be swapped into the live one."""

    catalog: BarCatalog
    series: BarSeries
    staging_root: Path
    _backup: Path | None = None
    _published: bool = False

    def _folders(self) -> list[Path]:
        """The catalog folders (relative to its root) that this series owns."""
        bar_type = str(self.series.bar_type(self.catalog.venue))
        instrument_id = f"{self.series.symbol}.{self.catalog.venue}"
        return [Path("data") / "bar" / bar_type, Path("data") / "equity" / instrument_id]

    def publish(self) -> None:
        """Swap the staged folders in; the old ones are kept until ``discard_backup``."""
        self._backup = self.staging_root / "backup"
        for relative in self._folders():
            live = self.catalog.path / relative
            staged = self.staging_root / "new" / relative
            if live.exists():
                (self._backup / relative).parent.mkdir(parents=True, exist_ok=True)
                live.rename(self._backup / relative)
            live.parent.mkdir(parents=True, exist_ok=True)
            staged.rename(live)
        self._published = True

    def restore(self) -> None:
        """Put the catalog back exactly as it was before ``publish``."""
        if self._published:
            for relative in self._folders():
                live = self.catalog.path / relative
                if live.exists():
                    shutil.rmtree(live)
                backup = self._backup / relative
                if backup.exists():
                    backup.rename(live)
            self._published = False
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

    def stage(self, series: BarSeries) -> StagedSeries:
        """Write ``series`` (merged with what is stored) to a staging catalog beside the live one."""
        merged = merge_series(self.read(series.symbol, series.timeframe), series)
        root = self.path / ".staging" / uuid.uuid4().hex
        staging = ParquetDataCatalog(str(root / "new"))
        staging.write_data([make_equity(merged.symbol, self.venue, merged.price_precision)])
        staging.write_data(to_nautilus_bars(merged, self.venue))
        return StagedSeries(self, merged, root)

    def write(self, series: BarSeries) -> BarSeries:
        """Replace the stored bars in ``series``' range; returns the full stored series."""
        staged = self.stage(series)
        staged.publish()
        staged.discard()
        return staged.series
