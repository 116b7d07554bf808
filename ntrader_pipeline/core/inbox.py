"""The drop folder: which CSV files in it are ready to import, and where they go afterwards.

A file is identified by name, size and modification time, so a changed file counts as new. It
is ready once it has not been modified for ``SETTLE_SECONDS`` (a copy still in progress would
otherwise be imported half-written). After its import a file moves to ``<inbox>/archive``; a
rejected file moves to ``<inbox>/quarantine`` with ``<name>.errors.txt`` beside it. A name that is
already taken there gets a ``-1``, ``-2``... suffix, so nothing is overwritten.

A name whose symbol breaks the symbol grammar (possible with a custom pattern) is refused as
soon as it has settled: it goes to quarantine without a run and without becoming a partition.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ntrader_pipeline.core.paths import confined
from ntrader_pipeline.core.quoting import shown_path
from ntrader_pipeline.core.symbols import SymbolError, parse_symbol

DEFAULT_SYMBOL_PATTERN = r"^(?P<symbol>[A-Za-z][A-Za-z0-9.\-]*?)(?:_.*)?\.csv$"
SETTLE_SECONDS = 5.0
ARCHIVE = "archive"
QUARANTINE = "quarantine"


def symbol_from_name(name: str, pattern: str = DEFAULT_SYMBOL_PATTERN) -> str | None:
    """``AAPL.csv`` and ``AAPL_2024-01-02_1min.csv`` → ``AAPL``; None when the name doesn't fit.

    Raises ``SymbolError`` when the name fits but what it gives is not a symbol.
    """
    match = re.match(pattern, name, flags=re.IGNORECASE)
    if match is None:
        return None
    symbol = match.group("symbol")
    return parse_symbol(symbol) if symbol else None


@dataclass(frozen=True)
class InboxFile:
    path: Path
    symbol: str
    size: int
    mtime_ns: int

    @property
    def key(self) -> str:
        """Name, size and mtime: the same key means the same file content was already seen."""
        return _key(self.path.name, self.size, self.mtime_ns)


@dataclass(frozen=True)
class InboxScan:
    ready: list[InboxFile]  # oldest first
    settling: list[str]  # names modified too recently to be complete
    unmatched: list[str]  # CSV names the symbol pattern does not recognise
    refused: list[tuple[Path, str]] = field(default_factory=list)  # settled files whose symbol is not one, why


def scan_inbox(inbox: Path, now: float, pattern: str = DEFAULT_SYMBOL_PATTERN) -> InboxScan:
    """The CSV files directly inside ``inbox`` (archive and quarantine are not looked into)."""
    ready: list[InboxFile] = []
    settling: list[str] = []
    unmatched: list[str] = []
    refused: list[tuple[Path, str]] = []
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() == ".csv"):
        stat = path.stat()
        symbol: str | SymbolError | None
        try:
            symbol = symbol_from_name(path.name, pattern)
        except SymbolError as error:
            symbol = error
        if symbol is None:
            unmatched.append(path.name)
        elif now - stat.st_mtime < SETTLE_SECONDS:
            settling.append(path.name)
        elif isinstance(symbol, SymbolError):
            refused.append((path, f"{shown_path(path.name)}: refused by its name: {symbol}"))
        else:
            ready.append(InboxFile(path, symbol, stat.st_size, stat.st_mtime_ns))
    ready.sort(key=lambda f: (f.mtime_ns, f.path.name))
    return InboxScan(ready, settling, unmatched, refused)


def file_key(path: Path) -> str | None:
    """The key of the file now at ``path`` (None when it is gone)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return _key(path.name, stat.st_size, stat.st_mtime_ns)


def _key(name: str, size: int, mtime_ns: int) -> str:
    return f"{name}:{size}:{mtime_ns}"


def _free_name(folder: Path, name: str) -> Path:
    target = confined(folder, name)
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 0
    while target.exists() or target.with_name(target.name + ".errors.txt").exists():
        n += 1
        target = confined(folder, f"{stem}-{n}{suffix}")
    return target


def archive(path: Path) -> Path:
    """Move an imported file to ``<inbox>/archive``; returns where it went."""
    folder = path.parent / ARCHIVE
    folder.mkdir(exist_ok=True)
    target = _free_name(folder, path.name)
    path.rename(target)
    return target


def quarantine(path: Path, errors: Iterable[str]) -> Path:
    """Move a rejected file to ``<inbox>/quarantine``, its errors in ``<name>.errors.txt`` beside it."""
    folder = path.parent / QUARANTINE
    folder.mkdir(exist_ok=True)
    target = _free_name(folder, path.name)
    notes = target.with_name(target.name + ".errors.txt")
    notes.write_text("".join(f"{line}\n" for line in errors), encoding="utf-8")
    path.rename(target)
    return target
