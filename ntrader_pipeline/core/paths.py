"""Paths and files that come from outside: kept inside their root, and read only when regular.

``confined`` is used wherever a path is built from input (a symbol, a run id, a file name), so a
value that slipped past its own check still cannot reach outside its folder. ``read_regular_file``
refuses what is not a regular file before opening it (a FIFO would block, ``/dev/zero`` would never
end) and anything larger than the caller's limit, so memory stays bounded on any input.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ntrader_pipeline.core.quoting import excerpt, shown_path

DEFAULT_MAX_CSV_BYTES = 2 << 30  # NTRADER_MAX_CSV_BYTES: the CSV reader holds the file and its columns in memory
MAX_SPEC_BYTES = 1 << 20  # a strategy file is a few hundred bytes; YAML parsing is slow and recursive

KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


class PathEscapeError(ValueError):
    """A path built from input that would lie outside its root."""


class InputFileError(ValueError):
    """A named input that cannot be read as a file; the message names it and says why."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{shown_path(path)}: {reason}")


def confined(root: str | Path, *parts: str | Path) -> Path:
    """``root / parts`` resolved, refused unless it is inside the resolved ``root``."""
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if not target.is_relative_to(base):
        shown = "/".join(str(p) for p in parts)
        raise PathEscapeError(f"'{excerpt(shown, 64)}' would lie outside {shown_path(base)}; refused")
    return target


def read_regular_file(path: str | Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of ``path`` if it is a readable regular file of at most ``max_bytes``."""
    return read_snapshot(path, max_bytes, what).data


@dataclass(frozen=True)
class FileSnapshot:
    """What a file held when it was opened (its size then, no byte more), and which file it was."""

    path: str
    data: bytes
    device: int
    inode: int
    size: int  # at open

    def changed_size(self) -> bool:
        """The same file is now longer or shorter than at open: something was writing it meanwhile.

        A file replaced under its name (an atomic rename) or gone is not ours any more: False.
        """
        try:
            now = os.stat(self.path)
        except OSError:
            return False
        return (now.st_dev, now.st_ino) == (self.device, self.inode) and now.st_size != self.size


def read_snapshot(path: str | Path, max_bytes: int, what: str = "file") -> FileSnapshot:
    """The bytes of ``path`` if it is a readable regular file of at most ``max_bytes``: exactly the
    size it had when opened.

    A writer appending meanwhile cannot add half a line to what is read; ``changed_size`` tells
    afterwards whether one was at work. A file whose size is unknown (0, as ``/proc`` reports) is
    read to its end.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror})") from None
    _check(path, info, max_bytes, what)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening must not wait.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        reason = "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else exc.strerror
        raise InputFileError(path, f"cannot be read ({reason})") from None
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(fd)
        _check(path, opened, max_bytes, what)  # what was opened is what is read
        wanted = opened.st_size if opened.st_size else max_bytes + 1
        try:
            chunks, left = [], wanted
            while left and (chunk := handle.read(left)):
                chunks.append(chunk)
                left -= len(chunk)
        except OSError as exc:
            raise InputFileError(path, f"cannot be read ({exc.strerror})") from None
    data = b"".join(chunks)
    if len(data) > max_bytes:  # a file of unknown size that holds more
        raise InputFileError(path, _too_large(len(data), max_bytes, what))
    return FileSnapshot(str(path), data, opened.st_dev, opened.st_ino, opened.st_size)


def _check(path, info: os.stat_result, max_bytes: int, what: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = KINDS.get(stat.S_IFMT(info.st_mode), "an unknown kind of file")
        raise InputFileError(path, f"is {kind}, not a regular file")
    if info.st_size > max_bytes:
        raise InputFileError(path, _too_large(info.st_size, max_bytes, what))


def _too_large(size: int, max_bytes: int, what: str) -> str:
    return f"{size:,} bytes is more than the {max_bytes:,} allowed for a {what}"
