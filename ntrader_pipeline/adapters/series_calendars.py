"""The exchange calendar each stored series follows, read from its bar files' schema alone.

The calendar is written into every bar file's Parquet schema metadata (``ntrader_calendar``) beside
NautilusTrader's own keys, so it travels with the files on disk and on object storage. Reading it
takes a file's footer only, with pyarrow: no bars, and no NautilusTrader import (``data list``).
Files from before calendars were kept per series carry no key: they are XNYS.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ntrader_pipeline.adapters import catalog_publish
from ntrader_pipeline.adapters.catalog_manifest import read_manifest, version_prefix
from ntrader_pipeline.adapters.object_store import S3Options, is_remote, open_store
from ntrader_pipeline.core.calendar import DEFAULT_CALENDAR
from ntrader_pipeline.core.paths import confined

CALENDAR_KEY = b"ntrader_calendar"  # our own key in a bar file's schema metadata


def schema_calendar(schema: pa.Schema) -> str:
    """The calendar a bar file's schema names (XNYS when it names none)."""
    return (schema.metadata or {}).get(CALENDAR_KEY, DEFAULT_CALENDAR.encode()).decode()


def with_calendar(table: pa.Table, calendar: str) -> pa.Table:
    """``table`` with ``calendar`` in its schema metadata, NautilusTrader's keys kept."""
    return table.replace_schema_metadata({**(table.schema.metadata or {}), CALENDAR_KEY: calendar.encode()})


def stored_calendars(location: str, bar_types: list[str], s3: S3Options | None = None) -> dict[str, str]:
    """``bar type -> calendar`` for each of ``bar_types`` the catalog at ``location`` holds."""
    found = {}
    if is_remote(location):
        store = open_store(location, s3)
        for bar_type in bar_types:
            manifest = read_manifest(store, bar_type)
            files = [f for f in (manifest or {}).get("files", []) if f.startswith("data/bar/")]
            if files:
                key = f"{version_prefix(bar_type, manifest['version'])}/{files[0]}"
                with store.fs.open(store.path(key), "rb") as handle:  # the footer, by range reads
                    found[bar_type] = schema_calendar(pq.read_schema(handle))
        return found
    root = Path(location)
    for bar_type in bar_types:
        folder = confined(root / "data" / "bar", bar_type)
        with catalog_publish.reading(root, bar_type, folder):
            files = sorted(folder.glob("*.parquet")) if folder.exists() else []
            if files:
                found[bar_type] = schema_calendar(pq.read_schema(files[0]))
    return found
