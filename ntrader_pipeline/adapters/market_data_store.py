"""Bars in both stores at once: the Parquet catalog and the ``market_data`` table.

A write lands in both or in neither, even when the process is killed at any instant:

1. the merged series is staged and sealed with a journal (``catalog_publish``);
2. one transaction replaces the table rows and marks the publish id in ``store_publishes``;
3. the staged folders are swapped in just before that transaction commits;
4. after the commit the journal and the staging are removed.

Whoever opens the stores next finds any journal a killed writer left and asks the warehouse
whether its transaction committed (the marker row): if so the catalog is rolled forward to the
staged folders, else back to the old ones. So the two stores always end up holding the same
bars, old or new. Transient database failures are retried whole (``warehouse.retry``).

Writers of one series take turns (an exclusive lock: a file beside a local catalog, the warehouse
for one on object storage): the staged contents
are a merge with what is stored, so two concurrent imports (the CLI and the inbox sensor, say)
would otherwise each publish a merge that lacks the other's bars. Recovery takes the same lock,
so it never touches a publish another live process is making.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import delete, select

from ntrader_pipeline.adapters.catalog import BarCatalog, StagedSeries
from ntrader_pipeline.adapters.catalog_manifest import ManifestPublish
from ntrader_pipeline.adapters.catalog_publish import Publish
from ntrader_pipeline.adapters.faults import kill_point
from ntrader_pipeline.adapters.locks import file_lock
from ntrader_pipeline.adapters.warehouse import Warehouse, market_data
from ntrader_pipeline.core.bars import BarSeries
from ntrader_pipeline.core.paths import confined

log = logging.getLogger(__name__)


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
        self.recover()

    def recover(self) -> list[str]:
        """Settle what killed writers left half-published; returns the bar types settled.

        A series another live process is writing (its lock is held) is left to that process.
        """
        log.debug("looking for unsettled publishes in %s", self.catalog.path)  # a listing: once per opening
        settled = []
        for bar_type in self.catalog.unsettled_series():
            with series_lock(self.catalog, bar_type, wait=False, warehouse=self.warehouse) as held:
                if held and self._recover_locked(bar_type):
                    settled.append(bar_type)
        return settled

    def _recover_locked(self, bar_type: str) -> bool:
        publishes, garbage = self.catalog.pending(bar_type)
        self.catalog.remove_garbage(bar_type, garbage)
        for publish in publishes:
            committed = self.warehouse.publish_committed(publish.publish_id, bar_type)
            if committed:
                publish.roll_forward()
            else:
                publish.roll_back()
            publish.remove()
            log.warning(
                "settled an interrupted publish of %s: catalog %s",
                bar_type,
                "rolled forward to the committed bars" if committed else "rolled back to the stored bars",
            )
        return bool(publishes or garbage)

    def replace(self, series: BarSeries) -> StoredSeries:
        """Store ``series``, replacing stored bars inside its time range and keeping the rest."""
        if len(series) == 0:
            raise ValueError(f"no bars to store for {series.symbol}")
        bar_type = str(series.bar_type(self.catalog.venue))
        with series_lock(self.catalog, bar_type, warehouse=self.warehouse):
            self._recover_locked(bar_type)  # a writer killed since this store was opened
            self.warehouse.retrying(
                f"checking the sources of {bar_type}",
                lambda: refuse_mixed_adjustment(self.warehouse, series, bar_type),
            )
            return self._replace_locked(series, bar_type)

    def _replace_locked(self, series: BarSeries, bar_type: str) -> StoredSeries:
        staged = self.catalog.stage(series)
        kill_point("staged")
        if series.recheck is not None:
            try:
                series.recheck()  # the source is still what was read: a file may have been growing
            except BaseException:
                staged.publish.remove()
                raise
        attempt = _PublishAttempt(self.warehouse, staged, series, bar_type)
        try:
            self.warehouse.retrying(f"storing {bar_type} bars", attempt)
        except BaseException:
            attempt.settle()
            raise
        staged.publish.remove()
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


class _PublishAttempt:
    """One try at the table write plus the catalog swap; called again by the retry loop."""

    def __init__(self, warehouse: Warehouse, staged: StagedSeries, series: BarSeries, bar_type: str):
        self.warehouse, self.staged, self.series, self.bar_type = warehouse, staged, series, bar_type
        self.commit_unknown = False  # a COMMIT failed: the database alone knows whether it landed

    @property
    def publish(self) -> Publish | ManifestPublish:
        return self.staged.publish

    def __call__(self) -> None:
        if self.commit_unknown:
            if self._committed():
                return
            self.commit_unknown = False
        series, bar_type = self.series, self.bar_type
        with self.warehouse.engine.connect() as connection:
            transaction = connection.begin()
            try:
                connection.execute(
                    delete(market_data).where(
                        market_data.c.symbol == series.symbol,
                        market_data.c.bar_type == bar_type,
                        market_data.c.timestamp >= _utc(series.first_ns),
                        market_data.c.timestamp <= _utc(series.last_ns),
                    )
                )
                self.warehouse.upsert_bars(connection, series, bar_type)
                self.warehouse.mark_publish(connection, self.publish.publish_id, bar_type)
                kill_point("table-written")
                self.publish.swap_in()
                kill_point("before-commit")
            except BaseException:
                connection.invalidate()  # closing it rolls back, whatever state a failure left it in
                self.publish.roll_back()  # keeps the staged folders for the next attempt
                raise
            self.commit_unknown = True
            try:
                transaction.commit()
            except BaseException:
                connection.invalidate()  # SQLite keeps the transaction open after a failed COMMIT
                raise
            self.commit_unknown = False
        kill_point("committed")

    def _committed(self) -> bool:
        """After a failed COMMIT: finish the swap if it landed, else undo it; True if it landed."""
        if self.warehouse.publish_committed(self.publish.publish_id, self.bar_type):
            self.publish.roll_forward()
            return True
        self.publish.roll_back()
        return False

    def settle(self) -> None:
        """After the last failed attempt: leave both stores on one side, old or new."""
        if self.commit_unknown:
            try:
                self._committed()
            except Exception:  # the database is still unreachable: the journal stays for the next open
                log.warning("left the publish of %s for the next open to settle", self.bar_type)
                return
        else:
            self.publish.roll_back()
        self.publish.remove()


ADJUSTED_SOURCES = frozenset({"csv-adjusted", "ibkr-adjusted"})


class MixedAdjustmentError(ValueError):
    """Adjusted and unadjusted bars would meet in one series: a split would leave a seam."""


def refuse_mixed_adjustment(warehouse: Warehouse, series: BarSeries, bar_type: str) -> None:
    """Refuse ``series`` when the bars it leaves in place come from the other kind of source.

    Bars inside the incoming range are replaced, so only those outside it can clash.
    """
    adjusted = series.source in ADJUSTED_SOURCES
    with warehouse.engine.connect() as connection:
        kept = (
            connection.execute(
                select(market_data.c.data_source)
                .distinct()
                .where(
                    market_data.c.symbol == series.symbol,
                    market_data.c.bar_type == bar_type,
                    (market_data.c.timestamp < _utc(series.first_ns))
                    | (market_data.c.timestamp > _utc(series.last_ns)),
                )
            )
            .scalars()
            .all()
        )
    clashing = sorted(source for source in kept if (source in ADJUSTED_SOURCES) != adjusted)
    if clashing:
        held = "adjusted" if not adjusted else "unadjusted"
        raise MixedAdjustmentError(
            f"{bar_type} already holds {held} bars (source {', '.join(clashing)}); refusing to add "
            f"{'adjusted' if adjusted else 'unadjusted'} bars (source {series.source}) to the same series. "
            "Keep one kind per series: import or fetch the same kind, or delete the series first."
        )


@contextmanager
def series_lock(
    catalog: BarCatalog, bar_type: str, wait: bool = True, warehouse: Warehouse | None = None
) -> Iterator[bool]:
    """Hold an exclusive lock on one series while the block runs (released on exit or crash).

    A local catalog keeps its locks beside it (its writers share its machine). A catalog on object
    storage is shared by machines, so its lock lives in the warehouse they share (``Warehouse.lock``).
    With ``wait=False`` the block gets False instead of waiting when another process holds it.
    """
    if catalog.remote:
        if warehouse is None:
            raise ValueError("a catalog on object storage is locked through the warehouse: pass it")
        with warehouse.lock(f"series:{catalog.path}:{bar_type}", wait) as held:
            yield held
        return
    with file_lock(confined(Path(catalog.path) / ".locks", f"{bar_type}.lock"), wait) as held:
        yield held


def _utc(ns: int):
    return pd.Timestamp(ns, tz="UTC").to_pydatetime()
