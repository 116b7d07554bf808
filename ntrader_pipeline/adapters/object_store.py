"""Objects under one root: a local folder or an S3-API prefix (``s3://bucket/prefix``), over fsspec.

The catalog and the reports reach their destination through this small interface, so the rest of
the code says what it stores, not where. Keys are ``/``-separated and relative to the root; one
built from input is refused if it would leave the root. A ``put`` is atomic either way: locally a
temporary sibling renamed into place, on S3 a single PUT (an object is visible whole or not at all).

s3fs (and the botocore it brings) is imported only when an ``s3://`` root is opened.
"""

from __future__ import annotations

import builtins
import os
import posixpath
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

REMOTE_SCHEMES = ("s3://",)


def is_remote(location: str | Path) -> bool:
    """True for an object-storage URL, False for a local path (or a ``file://`` URL)."""
    return str(location).startswith(REMOTE_SCHEMES)


def local_path(location: str | Path) -> Path:
    """A local location as an absolute ``Path`` (``file://`` stripped)."""
    text = str(location).removeprefix("file://")
    return Path(text).expanduser().resolve()


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3-API server; every field optional (unset: the client's own defaults)."""

    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def fsspec(self) -> dict[str, Any]:
        """``storage_options`` for s3fs (and NautilusTrader's ``fs_storage_options``)."""
        options: dict[str, Any] = {"skip_instance_cache": True}
        if self.access_key_id:
            options["key"] = self.access_key_id
        if self.secret_access_key:
            options["secret"] = self.secret_access_key
        client = {k: v for k, v in (("endpoint_url", self.endpoint_url), ("region_name", self.region)) if v}
        if client:
            options["client_kwargs"] = client
        return options

    def rust(self) -> dict[str, str]:
        """NautilusTrader's ``fs_rust_storage_options``: its Rust reader needs them besides fsspec's."""
        pairs = {
            "endpoint_url": self.endpoint_url,
            "region": self.region,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
        }
        options = {k: v for k, v in pairs.items() if v}
        if self.endpoint_url and self.endpoint_url.startswith("http://"):
            options["allow_http"] = "true"
        return options


class KeyEscapeError(ValueError):
    """A key built from input that would lie outside the store's root."""


def clean_key(key: str) -> str:
    """``key`` normalised, refused if absolute or climbing out of the root."""
    normal = posixpath.normpath(str(key).replace("\\", "/"))
    if normal.startswith(("/", "../")) or normal in ("..", "."):
        raise KeyEscapeError(f"{key!r} would lie outside the store; refused")
    return normal


class ObjectStore:
    """Objects under ``root`` (a folder or ``s3://bucket/prefix``)."""

    def __init__(self, root: str | Path, s3: S3Options | None = None):
        self.remote = is_remote(root)
        if self.remote:
            import s3fs  # botocore costs about a second: only when objects are remote

            self.fs = s3fs.S3FileSystem(**(s3 or S3Options()).fsspec())
            self.root = str(root).removeprefix("s3://").rstrip("/")
        else:
            from fsspec.implementations.local import LocalFileSystem

            self.fs = LocalFileSystem()
            self.root = str(local_path(root))
        self.s3 = s3 or S3Options()

    @property
    def location(self) -> str:
        """The root as a user gives it: ``s3://bucket/prefix`` or an absolute folder."""
        return f"s3://{self.root}" if self.remote else self.root

    def path(self, key: str) -> str:
        """The filesystem path (bucket-qualified on S3) of ``key``."""
        return f"{self.root}/{clean_key(key)}"

    def url(self, key: str) -> str:
        """What a person or a UI is shown for ``key``: an ``s3://`` URL, or a local path."""
        return f"s3://{self.path(key)}" if self.remote else self.path(key)

    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` at ``key`` whole (readers see the old object or the new, never part)."""
        target = self.path(key)
        if self.remote:
            self.fs.pipe_file(target, data)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            temporary = f"{os.path.dirname(target)}/.{os.path.basename(target)}.{uuid.uuid4().hex}.tmp"
            try:
                with open(temporary, "wb") as handle:
                    handle.write(data)
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        return self.url(key)

    def get(self, key: str) -> bytes:
        """The object's bytes; ``FileNotFoundError`` if there is none."""
        return self.fs.cat_file(self.path(key))

    def get_or_none(self, key: str) -> bytes | None:
        try:
            return self.get(key)
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def list(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (recursive), sorted; empty when there is none."""
        base = self.path(prefix) if prefix else self.root
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        return sorted(p[start:] for p in found)

    def children(self, prefix: str) -> builtins.list[str]:
        """The names one level below ``prefix`` (objects and "folders"), sorted."""
        try:
            entries = self.fs.ls(self.path(prefix), detail=False)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(str(p).rstrip("/")) for p in entries)

    def delete(self, keys: builtins.list[str]) -> None:
        """Delete these objects (missing ones are fine)."""
        paths = [self.path(k) for k in keys]
        if not paths:
            return
        if self.remote:
            self.fs.rm(paths)
        else:
            for path in paths:
                Path(path).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix``, then (locally) the emptied folders."""
        self.delete(self.list(prefix))
        if not self.remote:
            import shutil

            shutil.rmtree(self.path(prefix), ignore_errors=True)

    def upload_folder(self, folder: Path, prefix: str) -> dict[str, str]:
        """Put every file under the local ``folder`` at ``prefix/<relative path>``; returns URLs by relative path."""
        written = {}
        for file in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            relative = file.relative_to(folder).as_posix()
            written[relative] = self.put(f"{prefix}/{relative}" if prefix else relative, file.read_bytes())
        return written


@lru_cache(maxsize=16)
def open_store(root: str, s3: S3Options | None = None) -> ObjectStore:
    """One ``ObjectStore`` per root and options in a process (an S3 client keeps its connections)."""
    return ObjectStore(root, s3)


@contextmanager
def written_folder(store: ObjectStore, prefix: str) -> Iterator[Path]:
    """A local folder for code that writes files, whose contents end up under ``prefix``.

    Locally it is the destination itself (the writers rename their files into place); on object
    storage a temporary folder, uploaded once the block finished without error.
    """
    if not store.remote:
        folder = Path(store.path(prefix))
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="ntrader-out-") as temporary:
        yield Path(temporary)
        store.upload_folder(Path(temporary), prefix)
