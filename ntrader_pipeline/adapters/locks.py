"""A file lock between processes on one machine (across machines: ``Warehouse.lock``).

It dies with its holder (the OS drops it), so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, wait: bool = True, shared: bool = False) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs.

    The lock dies with its process, so a crash never leaves a stale lock behind. With
    ``wait=False`` the block gets False instead of waiting when another process holds it.
    ``shared``: a lock many holders share, excluding only the exclusive one (readers vs a writer).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
