"""Migrating a pinned store's ``ml_platform.manifest/v2`` manifests to v3, each version's data checked first.

How it works, and why: docs/architecture.md, "ml_platform/io/migrate.py".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ml_platform.errors import IntegrityError, ManifestError, MLPlatformError
from ml_platform.io.layout import head_rel, history_name
from ml_platform.io.manifest import MANIFEST_SCHEMA, UNHASHED_MANIFEST_SCHEMA, Manifest, manifest_digest
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import index_store
from ml_platform.lineage.schemes import MANIFEST_HASH_SCHEME

__all__ = ["MigrationReport", "migrate_store", "upgraded"]


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate_store` did (or, on a dry run, would do).

    Attributes:
        migrated: the manifests rewritten as v3 (paths or URIs).
        refused: ``path: why`` of every v2 manifest left as it was, because its data does not verify
            as it records, or it is no manifest of this store.
        current: how many manifests were v3 already.
        lost: ``path: why`` of the migrated manifests whose object is missing (verify reports them).
    """

    migrated: tuple[str, ...]
    refused: tuple[str, ...]
    current: int
    lost: tuple[str, ...]


def upgraded(record: dict[str, Any], previous: str | None) -> dict[str, Any]:
    """The v3 form of a decoded v2 manifest: chained to ``previous``, every field under its own hash."""
    v3 = {name: value for name, value in record.items() if name != "manifest_hash"}
    v3.update(schema_version=MANIFEST_SCHEMA, previous=previous, manifest_scheme=MANIFEST_HASH_SCHEME)
    v3["manifest_hash"] = manifest_digest(v3)
    return v3


class _Migration:
    def __init__(self, store: PinnedStore, dry_run: bool) -> None:
        self.store, self.dry_run = store, dry_run
        self.migrated: list[str] = []
        self.refused: list[str] = []
        self.lost: list[str] = []
        self.current = 0

    def read(self, rel: str) -> Any:
        """The decoded JSON at ``rel``, or the exception that kept it from being read."""
        try:
            return json.loads(self.store.filesystem.read_buffer(rel).to_pybytes())
        except (FileNotFoundError, ValueError, UnicodeDecodeError) as exc:
            return exc

    def one(self, rel: str, key: str, partition: str | None, previous: str | None) -> Manifest | None:
        """Migrate the manifest at ``rel`` (chained to ``previous``); its v3 manifest, or None if refused."""
        uri = self.store.filesystem.uri(rel)
        record = self.read(rel)
        version = record.get("schema_version") if isinstance(record, dict) else None
        if version == MANIFEST_SCHEMA:
            self.current += 1
            try:
                return self.store.history_entry(key, partition, rel)
            except (ManifestError, FileNotFoundError) as exc:
                self.refused.append(f"{uri}: {exc}")
                return None
        if version != UNHASHED_MANIFEST_SCHEMA:
            self.refused.append(f"{uri}: not a manifest of {UNHASHED_MANIFEST_SCHEMA} or {MANIFEST_SCHEMA} "
                                f"(schema {version!r}); left as it is - `ml-platform verify` reports it")
            return None
        try:
            manifest = Manifest.from_dict(upgraded(record, previous), source=uri)
        except ManifestError as exc:
            self.refused.append(f"{uri}: {exc}")
            return None
        try:
            self.store.load_verified(key, partition, manifest, data_hash=manifest.data_hash)
        except ManifestError as exc:  # its object is missing: the version is lost, its record still true
            self.lost.append(f"{uri}: {exc}")
        except (IntegrityError, MLPlatformError) as exc:
            self.refused.append(f"{uri}: its data does not verify as it records, so it is not certified: {exc}")
            return None
        if not self.dry_run:
            self.store.filesystem.write_bytes(rel, manifest.to_json().encode())
        self.migrated.append(uri)
        return manifest


def migrate_store(store: PinnedStore, *, dry_run: bool = False) -> MigrationReport:
    """Rewrite every v2 head and history entry of ``store`` as v3, oldest first per partition.

    Each version's object is read in full (bytes, footer, content hash) before its manifest is
    certified under a manifest hash; a version whose data does not verify stays v2 and is named in
    ``refused``. History entries are chained in order; a head gets the hash of its own entry.
    Run it with no writer active (a write during it may chain to a v2 head).
    """
    migration = _Migration(store, dry_run)
    index = index_store(store, objects=False)
    for key, partition in index.locations:
        previous: str | None = None
        by_name: dict[str, Manifest] = {}
        for rel, _, _ in index.history.get((key, partition), []):
            manifest = migration.one(rel, key, partition, previous)
            if manifest is not None:
                previous = manifest.manifest_hash
                by_name[rel.rpartition("/")[2]] = manifest
        if (key, partition) not in index.heads:
            continue
        rel = head_rel(key, partition)
        record = migration.read(rel)
        own = None
        if isinstance(record, dict) and record.get("schema_version") == UNHASHED_MANIFEST_SCHEMA:
            try:
                own = by_name.get(history_name(record["written_at"], record["data_hash"]))
            except (KeyError, TypeError, ValueError, MLPlatformError):
                own = None
        if own is not None and upgraded(record, own.previous)["manifest_hash"] == own.manifest_hash:
            if not dry_run:
                store.filesystem.write_bytes(rel, own.to_json().encode())
            migration.migrated.append(store.filesystem.uri(rel))
        else:
            migration.one(rel, key, partition, previous)
    return MigrationReport(tuple(migration.migrated), tuple(migration.refused), migration.current,
                           tuple(migration.lost))
