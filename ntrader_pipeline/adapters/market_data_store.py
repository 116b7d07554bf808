"""Bars in both stores at once: the Parquet catalog and the ``market_data`` table.

A write either lands in both or in neither. The new catalog contents are staged first, the table
rows are replaced inside a transaction, the staged folders are swapped in just before that
transaction commits, and a failure anywhere puts the old catalog folders back.

Writers of one series take turns (an exclusive file lock beside the catalog): the staged contents
are a merge with what is stored, so two concurrent imports (the CLI and the inbox sensor, say)
would otherwise each publish a merge that lacks the other's bars.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import delete, select

from ntrader_pipeline.adapters.catalog import BarCatalog
from ntrader_pipeline.adapters.warehouse import Warehouse, market_data
from ntrader_pipeline.core.bars import BarSeries


@dataclass(frozen=True)
class StoredSeries:
    """What a write left in the stores."""

    symbol: str
    bar_type: str
    written: int  # bars in the incoming series
    stored: int  # bars of this series now in the catalog (old ones outside the range kept)
    first_ns: int
    last_ns: int
    catalog_files: int


class MarketDataStore:
    def __init__(self, catalog: BarCatalog, warehouse: Warehouse):
        self.catalog = catalog
        self.warehouse = warehouse

    def replace(self, series: BarSeries) -> StoredSeries:
        """Store ``series``, replacing stored bars inside its time range and keeping the rest."""
        if len(series) == 0:
            raise ValueError(f"no bars to store for {series.symbol}")
        bar_type = str(series.bar_type(self.catalog.venue))
        with series_lock(self.catalog, bar_type):
            refuse_mixed_adjustment(self.warehouse, series, bar_type)
            return self._replace_locked(series, bar_type)

    def _replace_locked(self, series: BarSeries, bar_type: str) -> StoredSeries:
        staged = self.catalog.stage(series)
        try:
            with self.warehouse.transaction() as connection:
                connection.execute(
                    delete(market_data).where(
                        market_data.c.symbol == series.symbol,
                        market_data.c.bar_type == bar_type,
                        market_data.c.timestamp >= _utc(series.first_ns),
                        market_data.c.timestamp <= _utc(series.last_ns),
                    )
                )
                self.warehouse.upsert_bars(connection, series, bar_type)
                staged.publish()
        except BaseException:
            staged.restore()
            raise
        staged.discard()
        merged = staged.series
        return StoredSeries(
            symbol=series.symbol,
            bar_type=bar_type,
            written=len(series),
            stored=len(merged),
            first_ns=merged.first_ns,
            last_ns=merged.last_ns,
            catalog_files=len(self.catalog.bar_files(series.symbol, series.timeframe)),
        )


ADJUSTED_SOURCES = frozenset({"csv-adjusted", "ibkr-adjusted"})


class MixedAdjustmentError(ValueError):
    """Adjusted and unadjusted bars would meet in one series: a split would leave a seam."""


def refuse_mixed_adjustment(warehouse: Warehouse, series: BarSeries, bar_type: str) -> None:
    """Refuse ``series`` when the bars it leaves in place come from the other kind of source.

    Bars inside the incoming range are replaced, so only those outside it can clash.
    """
    adjusted = series.source in ADJUSTED_SOURCES
    with warehouse.engine.connect() as connection:
        kept = connection.execute(
            select(market_data.c.data_source).distinct().where(
                market_data.c.symbol == series.symbol,
                market_data.c.bar_type == bar_type,
                (market_data.c.timestamp < _utc(series.first_ns)) | (market_data.c.timestamp > _utc(series.last_ns)),
            )
        ).scalars().all()
    clashing = sorted(source for source in kept if (source in ADJUSTED_SOURCES) != adjusted)
    if clashing:
        held = "adjusted" if not adjusted else "unadjusted"
        raise MixedAdjustmentError(
            f"{bar_type} already holds {held} bars (source {', '.join(clashing)}); refusing to add "
            f"{'adjusted' if adjusted else 'unadjusted'} bars (source {series.source}) to the same series. "
            "Keep one kind per series: import or fetch the same kind, or delete the series first."
        )


@contextmanager
def series_lock(catalog: BarCatalog, bar_type: str) -> Iterator[None]:
    """Hold an exclusive lock on one series for as long as the block runs (released on exit or crash)."""
    folder = Path(catalog.path) / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{bar_type}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _utc(ns: int):
    return pd.Timestamp(ns, tz="UTC").to_pydatetime()
