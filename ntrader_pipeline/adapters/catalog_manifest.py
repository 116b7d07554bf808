"""A catalog publish on object storage, where nothing can be renamed: versions plus a manifest.

On S3 a rename is a copy and a delete, so the folder swap ``catalog_publish`` makes on disk is not
atomic there. What is atomic is one PUT of one object. So each publish of a series writes its
complete new contents under a fresh version prefix, and one small manifest object per series,
written last, says which version is live. A reader resolves the manifest once and reads only that
version: it sees the old bars or the new, never a mix. Keys under the catalog root::

    manifests/<bar type>.json                   {"version": <publish id>, "files": [...]}: the live version
    series/<bar type>/<publish id>/data/...     one version: a complete NautilusTrader catalog of the series
    staging/<bar type>/<publish id>.json        the publish's journal while it is unsettled

The journal is written empty before the first file (a publish that dies while uploading is then
garbage whoever opens next removes) and rewritten with the publish's record once every file is
up (from then on the publish can be finished or undone). ``swap_in``/``roll_forward`` PUT the new
manifest, ``roll_back`` PUTs back the one it replaced (kept in the journal), all idempotent.
Whether to go forward is the warehouse's call, as on disk (see ``market_data_store``). Settling
deletes every version no manifest points to, and the journal last, so a kill during the clean-up
leaves a journal for the next open to finish it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ntrader_pipeline.adapters.faults import kill_point
from ntrader_pipeline.adapters.object_store import ObjectStore

MANIFESTS = "manifests"
SERIES = "series"
STAGING = "staging"


def manifest_key(bar_type: str) -> str:
    return f"{MANIFESTS}/{bar_type}.json"


def version_prefix(bar_type: str, version: str) -> str:
    return f"{SERIES}/{bar_type}/{version}"


def journal_key(bar_type: str, publish_id: str) -> str:
    return f"{STAGING}/{bar_type}/{publish_id}.json"


def read_manifest(store: ObjectStore, bar_type: str) -> dict | None:
    """The series' live manifest, or None when the series was never published."""
    data = store.get_or_none(manifest_key(bar_type))
    return json.loads(data) if data else None


@dataclass(frozen=True)
class ManifestPublish:
    """One series' new version and the journal that makes its manifest swap recoverable."""

    store: ObjectStore
    bar_type: str
    publish_id: str
    files: tuple[str, ...] = ()  # relative to the version prefix
    previous: dict | None = None  # the manifest this publish replaces; None: a new series

    @classmethod
    def begin(cls, store: ObjectStore, bar_type: str) -> ManifestPublish:
        """Claim a version: its empty journal is written before any of its files."""
        publish = cls(store, bar_type, uuid.uuid4().hex, previous=read_manifest(store, bar_type))
        store.put(publish.journal, b"")
        return publish

    @property
    def journal(self) -> str:
        return journal_key(self.bar_type, self.publish_id)

    @property
    def prefix(self) -> str:
        return version_prefix(self.bar_type, self.publish_id)

    def upload(self, folder: Path) -> ManifestPublish:
        """Put the staged catalog folder's files under this version; returns the publish with them."""
        written = self.store.upload_folder(folder, self.prefix)
        return replace(self, files=tuple(sorted(written)))

    def seal(self) -> None:
        """Every file is up: the journal gets the record that lets anyone finish or undo the swap."""
        record = {
            "publish_id": self.publish_id,
            "bar_type": self.bar_type,
            "files": list(self.files),
            "previous": self.previous,
            "started": datetime.now(UTC).isoformat(),
        }
        self.store.put(self.journal, json.dumps(record).encode())

    def manifest(self) -> dict:
        return {
            "bar_type": self.bar_type,
            "version": self.publish_id,
            "files": list(self.files),
            "published": datetime.now(UTC).isoformat(),
        }

    def swap_in(self) -> None:
        """One PUT: readers now resolve the new version."""
        self.store.put(manifest_key(self.bar_type), json.dumps(self.manifest()).encode())

    def _live(self) -> bool:
        current = read_manifest(self.store, self.bar_type)
        return current is not None and current["version"] == self.publish_id

    def roll_forward(self) -> None:
        if not self._live():
            self.swap_in()

    def roll_back(self) -> None:
        """The manifest back on the version it pointed to before (or none, for a new series)."""
        if not self._live():
            return
        if self.previous is None:
            self.store.delete([manifest_key(self.bar_type)])
        else:
            self.store.put(manifest_key(self.bar_type), json.dumps(self.previous).encode())

    def remove(self) -> None:
        """The publish is settled: delete every version no manifest points to, then the journal."""
        collect_garbage(self.store, self.bar_type, settling=self.publish_id)
        kill_point("collected")
        self.store.delete([self.journal])


def collect_garbage(store: ObjectStore, bar_type: str, settling: str | None = None) -> list[str]:
    """Delete the series' versions that neither the manifest nor another open journal names.

    An open journal names its own version and the one it replaced (its roll-back target).
    ``settling``: the publish being settled, whose own version goes too unless it is live.
    Only while holding the series' lock. Returns the versions deleted.
    """
    current = read_manifest(store, bar_type)
    keep = {current["version"]} if current else set()
    others, unsealed = pending(store, bar_type)
    keep |= set(unsealed) - {settling}
    for publish in others:
        if publish.publish_id != settling:
            keep.add(publish.publish_id)
            if publish.previous:
                keep.add(publish.previous["version"])
    doomed = [v for v in store.children(f"{SERIES}/{bar_type}") if v not in keep]
    for version in doomed:
        store.delete_prefix(version_prefix(bar_type, version))
    return doomed


def staged_series(store: ObjectStore) -> list[str]:
    """Bar types with an open journal: unsettled publishes, or garbage from a killed upload."""
    return store.children(STAGING)


def pending(store: ObjectStore, bar_type: str) -> tuple[list[ManifestPublish], list[str]]:
    """The sealed publishes of a series, and the publish ids whose upload never finished."""
    publishes, garbage = [], []
    for name in store.children(f"{STAGING}/{bar_type}"):
        data = store.get_or_none(f"{STAGING}/{bar_type}/{name}")
        if data is None:
            continue  # settled meanwhile
        if not data:
            garbage.append(Path(name).stem)
            continue
        record = json.loads(data)
        publishes.append(
            ManifestPublish(store, bar_type, record["publish_id"], tuple(record["files"]), record["previous"])
        )
    return publishes, garbage


def remove_garbage(store: ObjectStore, bar_type: str, publish_ids: list[str]) -> None:
    """Delete the versions of uploads that never finished, then their journals."""
    for publish_id in publish_ids:
        store.delete_prefix(version_prefix(bar_type, publish_id))
        store.delete([journal_key(bar_type, publish_id)])
