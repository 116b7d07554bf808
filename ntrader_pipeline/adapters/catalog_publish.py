"""A catalog publish that a kill at any instant leaves recoverable, and that readers see whole.

One publish lives in ``<catalog>/.staging/<bar type>/<publish id>/``:

- ``new/`` the series' complete new folders (its bars, and the symbol's instrument), written and
  fsynced first;
- ``journal.json`` written (atomically, fsynced) once ``new/`` is complete: from then on the
  publish can be finished or undone whatever state a crash left;
- ``backup/`` the live bar folder the swap moved aside.

Every step of the swap is a rename, so ``roll_forward`` (to ``new``) and ``roll_back`` (to the
old folders, putting the staged ones back into ``new/`` for a retry) are idempotent and work from
any point, including a half-done swap or a recovery that was itself killed. Which way to go is
not this module's call: the warehouse records whether its transaction committed (see
``market_data_store``). A staging folder without a journal was killed while being written and is
only garbage.

The instrument folder (``data/equity/<SYMBOL.VENUE>``) is shared by the symbol's series (daily and
intraday), which are written under different series locks, so it is never swapped as a folder:
its file is placed by one rename onto the file of the same name, atomic whoever else writes. Each
series' prices are read at the precision its own bar files carry, not the instrument's.

Readers take turns with the swap, not with the whole write: the swap holds the series' swap lock
(``.locks/<bar type>.swap.lock``) exclusively for its renames, and a reader holds it shared only
while it lists and opens the series' files (``reading``), then reads from the open files. So a
reader sees the old bars or the new, whole, never the instant between two renames; neither side
waits longer than a few renames or opens take.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ntrader_pipeline.adapters.faults import kill_point
from ntrader_pipeline.adapters.locks import file_lock
from ntrader_pipeline.core.paths import confined

STAGING = ".staging"
JOURNAL = "journal.json"
LOCKS = ".locks"


@dataclass(frozen=True)
class Publish:
    """The staged new folders of one series and the journal that makes their swap recoverable."""

    catalog_root: Path
    bar_type: str
    publish_id: str
    folders: tuple[Path, ...]  # relative to the catalog root, in swap order
    instrument: Path | None = None  # the symbol's instrument folder: its files are placed, never swapped

    @classmethod
    def create(cls, catalog_root: Path, bar_type: str, folders: list[Path], instrument: Path | None = None) -> Publish:
        publish = cls(Path(catalog_root), bar_type, uuid.uuid4().hex, tuple(folders), instrument)
        publish.new.mkdir(parents=True)
        return publish

    @property
    def root(self) -> Path:
        return self.catalog_root / STAGING / self.bar_type / self.publish_id

    @property
    def new(self) -> Path:
        return self.root / "new"

    @property
    def backup(self) -> Path:
        return self.root / "backup"

    def seal(self) -> None:
        """Make the staged folders and then the journal durable: the publish is now recoverable."""
        for path in sorted(self.new.rglob("*"), reverse=True):  # files before the folders holding them
            _fsync(path)
        _fsync(self.new)
        record = {
            "publish_id": self.publish_id,
            "bar_type": self.bar_type,
            "folders": [str(f) for f in self.folders],
            "instrument": str(self.instrument) if self.instrument else None,
            "started": datetime.now(UTC).isoformat(),
        }
        partial = self.root / f"{JOURNAL}.partial"
        partial.write_text(json.dumps(record))
        _fsync(partial)
        partial.rename(self.root / JOURNAL)
        _fsync(self.root)

    def swap_in(self) -> None:
        """Place the instrument, then move the live folders to ``backup/`` and the staged ones in."""
        with _swap_lock(self.catalog_root, self.bar_type):
            self._place_instrument()
            kill_point("instrument-placed")
            for index, relative in enumerate(self.folders):
                live, staged, backup = self._paths(relative)
                if live.exists():
                    backup.parent.mkdir(parents=True, exist_ok=True)
                    live.rename(backup)
                    if index == 0:
                        kill_point("backup-made")  # F1's instant: the old bars moved aside, the new not yet in
                live.parent.mkdir(parents=True, exist_ok=True)
                staged.rename(live)
                _fsync(live.parent)

    def roll_forward(self) -> None:
        """Finish a swap: the instrument placed, every staged folder still waiting in ``new/`` live."""
        with _swap_lock(self.catalog_root, self.bar_type):
            self._place_instrument()
            for relative in self.folders:
                live, staged, backup = self._paths(relative)
                if not staged.exists():
                    continue  # already swapped in
                if live.exists():  # the old folder, not yet moved aside
                    if backup.exists():
                        shutil.rmtree(live)
                    else:
                        backup.parent.mkdir(parents=True, exist_ok=True)
                        live.rename(backup)
                live.parent.mkdir(parents=True, exist_ok=True)
                staged.rename(live)
                _fsync(live.parent)

    def roll_back(self) -> None:
        """Undo a swap, whole or partial: staged folders back into ``new/``, the old ones back live.

        A placed instrument stays: it describes the symbol, and each series' bars carry their own
        precision, so it is as good as the one it replaced.
        """
        with _swap_lock(self.catalog_root, self.bar_type):
            for relative in reversed(self.folders):
                live, staged, backup = self._paths(relative)
                if not staged.exists() and live.exists():  # the staged folder made it in
                    staged.parent.mkdir(parents=True, exist_ok=True)
                    live.rename(staged)
                if backup.exists():
                    backup.rename(live)
                    _fsync(live.parent)

    def _place_instrument(self) -> None:
        """Each staged instrument file renamed onto the live one of the same name (idempotent)."""
        if self.instrument is None:
            return
        staged = self.new / self.instrument
        files = sorted(staged.glob("*.parquet")) if staged.is_dir() else []
        if not files:
            return  # placed already
        live = self.catalog_root / self.instrument
        live.mkdir(parents=True, exist_ok=True)
        for file in files:
            os.replace(file, live / file.name)
        _fsync(live)

    def remove(self) -> None:
        """Drop the journal first (the publish is settled), then whatever staging is left."""
        (self.root / JOURNAL).unlink(missing_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)
        _remove_if_empty(self.root.parent)

    def _paths(self, relative: Path) -> tuple[Path, Path, Path]:
        return self.catalog_root / relative, self.new / relative, self.backup / relative


def staged_series(catalog_root: Path) -> list[str]:
    """Bar types with anything under staging: unsettled publishes, or garbage from a killed writer.

    Folders of the earlier layout (``.staging/<hex id>/``, no journal) are not listed: without a
    journal nobody can tell which of their copies the table matches, so they are left for a person.
    """
    staging = Path(catalog_root) / STAGING
    if not staging.is_dir():
        return []
    return sorted(p.name for p in staging.iterdir() if p.is_dir() and "-" in p.name)


def pending(catalog_root: Path, bar_type: str) -> tuple[list[Publish], list[Path]]:
    """The journaled publishes of a series, and its staging folders that never got a journal.

    Only meaningful while holding the series' lock: a live writer's folders look the same.
    """
    folder = Path(catalog_root) / STAGING / bar_type
    publishes, garbage = [], []
    for root in sorted(folder.iterdir()) if folder.is_dir() else []:
        journal = root / JOURNAL
        if not journal.is_file():
            garbage.append(root)
            continue
        record = json.loads(journal.read_text())
        instrument = record.get("instrument")  # journals of earlier versions swapped it as a folder
        publishes.append(
            Publish(
                Path(catalog_root),
                bar_type,
                record["publish_id"],
                tuple(Path(f) for f in record["folders"]),
                Path(instrument) if instrument else None,
            )
        )
    return publishes, garbage


def swap_lock_path(catalog_root: Path, bar_type: str) -> Path:
    return confined(Path(catalog_root) / LOCKS, f"{bar_type}.swap.lock")


@contextmanager
def _swap_lock(catalog_root: Path, bar_type: str) -> Iterator[None]:
    """The series' swap lock, exclusive: no reader is between listing and opening its files."""
    with file_lock(swap_lock_path(catalog_root, bar_type)):
        yield


@contextmanager
def reading(catalog_root: Path, bar_type: str, folder: Path) -> Iterator[None]:
    """The series' swap lock, shared, while a reader lists and opens the files of ``folder``.

    A series never published (neither its folder nor its lock exists) needs no lock, and none is
    created for it. A catalog the reader may not write (a read-only mount) has no writer either.
    """
    path = swap_lock_path(catalog_root, bar_type)
    with ExitStack() as stack:
        if folder.exists() or path.exists():
            try:
                stack.enter_context(file_lock(path, shared=True))
            except OSError as exc:
                if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
        yield


def remove_garbage(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
        _remove_if_empty(path.parent)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (another publish of the series) or already gone


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a rename is durable only once its folder is)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
