"""Checking a whole store against what should exist: heads, history, objects and (optionally) Dagster's records.

``ml-platform verify`` is a table of :class:`VerifyResult` rows produced by :func:`verify_store`.
A deleted head is ``missing-head``; a lost object ``missing-object``; bytes unlike the record
``corrupt``; a manifest whose fields no longer hash to its own hash, or that disagrees with its
history copy or with Dagster's anchor, ``tampered``; a materialization the store has no trace of
``unrecorded``. How it works, and why: docs/architecture.md, "ml_platform/io/verify.py".
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_platform.environment import (
    AcceptanceFile,
    EnvironmentDiff,
    EnvironmentPolicy,
    decide_environment,
    diff_environments,
)
from ml_platform.errors import (
    AcceptanceTampered,
    ConcurrencyError,
    ConfigurationError,
    EnvironmentMismatch,
    IntegrityError,
    ManifestError,
    ManifestTampered,
    MLPlatformError,
)
from ml_platform.io.atomic import is_temporary
from ml_platform.io.layout import (
    HEAD_NAME,
    OBJECTS_DIR,
    REFS_DIR,
    head_rel,
    history_name,
    history_rel,
    is_v1_manifest,
    object_rel,
    parse_history_name,
    parse_object_rel,
    partition_location,
)
from ml_platform.io.manifest import MANIFEST_SCHEMA, Manifest
from ml_platform.io.store import PinnedStore

__all__ = ["StoreIndex", "VerifyResult", "VerifyStatus", "index_store", "verify_acceptances", "verify_store",
           "verify_training_set"]


class VerifyStatus(str, enum.Enum):
    """Outcome of verifying one stored artefact."""

    OK = "ok"
    ENVIRONMENT_DIFFERS = "env-differs"
    ENVIRONMENT_MISMATCH = "env-mismatch"
    CORRUPT = "corrupt"
    MANIFEST = "bad-manifest"
    MISSING = "missing"
    MISSING_HEAD = "missing-head"
    MISSING_OBJECT = "missing-object"
    UNRECORDED = "unrecorded"
    CONCURRENT = "changed-during-read"
    TAMPERED = "tampered"


@dataclass(frozen=True)
class VerifyResult:
    """One row of ``ml-platform verify``.

    Attributes:
        key: the asset key path.
        partition: the partition, or None for an unpartitioned artefact.
        status: what was found.
        detail: the error message, or a summary of the environment differences.
        manifest_path: the head manifest's path or URI.
        rows: number of rows, when the data verified.
        data_hash: the verified content hash, when the data verified.
        environment_diff: stored -> running environment differences (empty under ``off``).
    """

    key: str
    partition: str | None
    status: VerifyStatus
    detail: str
    manifest_path: str
    rows: int | None = None
    data_hash: str | None = None
    environment_diff: EnvironmentDiff = field(default_factory=lambda: EnvironmentDiff(()))

    @property
    def ok(self) -> bool:
        """True unless the artefact failed: an environment difference under ``warn`` is not a failure."""
        return self.status in (VerifyStatus.OK, VerifyStatus.ENVIRONMENT_DIFFERS)


@dataclass
class StoreIndex:
    """One listing of a store: its partitions (with head or not, and history) and its objects."""

    heads: set[tuple[str, str | None]] = field(default_factory=set)
    history: dict[tuple[str, str | None], list[tuple[str, int, str]]] = field(default_factory=dict)
    objects: dict[str, str] = field(default_factory=dict)  # data hash -> relative path
    temporaries: list[str] = field(default_factory=list)
    v1_manifests: list[str] = field(default_factory=list)
    #: the store's environment acceptances, read once on the first strict environment difference
    acceptances: list[AcceptanceFile] | None = None

    @property
    def locations(self) -> list[tuple[str, str | None]]:
        found = self.heads | set(self.history)
        return sorted(found, key=lambda loc: (loc[0], "" if loc[1] is None else loc[1]))


def index_store(store: PinnedStore, *, objects: bool = True, under: str | None = None) -> StoreIndex:
    """List the store once (refs, and objects unless ``objects`` is False) into a :class:`StoreIndex`."""
    fs = store.filesystem
    index = StoreIndex()
    if objects:
        for rel in fs.list_files(OBJECTS_DIR):
            name = rel.rpartition("/")[2]
            data_hash = parse_object_rel(rel)
            if data_hash is not None:
                index.objects[data_hash] = rel
            elif is_temporary(name):
                index.temporaries.append(rel)
    for rel in fs.list_files(under or REFS_DIR):
        name = rel.rpartition("/")[2]
        location = partition_location(rel)
        if location is None:
            if is_temporary(name):
                index.temporaries.append(rel)
            continue
        if name == HEAD_NAME:
            index.heads.add(location)
        else:
            parsed = parse_history_name(name)
            assert parsed is not None  # partition_location accepted it
            index.history.setdefault(location, []).append((rel, parsed.nanoseconds, parsed.data_hash))
    for entries in index.history.values():
        entries.sort(key=lambda entry: (entry[1], entry[0]))
    return index


def _v1_manifests(store: PinnedStore) -> list[str]:
    fs = store.filesystem
    return [rel for rel in fs.list_files() if is_v1_manifest(rel)]


def _differing_fields(stored: object, other: object, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two decoded manifests differ (``manifest_hash`` left out)."""
    if isinstance(stored, dict) and isinstance(other, dict):
        names = sorted(set(stored) | set(other))
        return [diff for name in names if name != "manifest_hash" or prefix
                for diff in _differing_fields(stored.get(name), other.get(name), f"{prefix}{name}.")]
    if isinstance(stored, list) and isinstance(other, list) and len(stored) == len(other):
        return [diff for index, (a, b) in enumerate(zip(stored, other, strict=True))
                for diff in _differing_fields(a, b, f"{prefix}{index}.")]
    return [] if stored == other else [prefix.rstrip(".")]


def _record(store: PinnedStore, rel: str) -> dict[str, Any] | None:
    """The decoded JSON object at ``rel``, or None if it is missing or no JSON object."""
    try:
        record = json.loads(store.filesystem.read_buffer(rel).to_pybytes())
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _edited_fields(store: PinnedStore, edited: str, copy: str, what: str) -> str:
    """Which fields of the manifest at ``edited`` differ from the copy of the same version at ``copy``."""
    record, other = _record(store, edited), _record(store, copy)
    fields = [] if record is None or other is None else _differing_fields(record, other)
    if not fields:
        return ""
    return f"; it differs from {what} {store.filesystem.uri(copy)} in: {', '.join(fields)}"


def _own_entry(store: PinnedStore, head: str, entries: list[tuple[str, int, str]]) -> str | None:
    """The history entry written with the head (same name), else the newest; None without history."""
    record = _record(store, head)
    name = "" if record is None else _history_name(record)
    own = [rel for rel, _, _ in entries if rel.rpartition("/")[2] == name]
    return own[0] if own else (entries[-1][0] if entries else None)


def _history_name(record: dict[str, Any]) -> str:
    try:
        return history_name(record["written_at"], record["data_hash"])
    except (KeyError, TypeError, ValueError, ConfigurationError):
        return ""


@dataclass
class _Partition:
    """What verifying one partition's history found: its manifests by hash and the rows to report."""

    manifests: dict[str, Manifest] = field(default_factory=dict)
    rows: list[VerifyResult] = field(default_factory=list)
    verified_bytes: set[tuple[str, str | None, int | None]] = field(default_factory=set)


def _verify_history(store: PinnedStore, index: StoreIndex, key: str, partition: str | None,
                    heads_only: bool) -> _Partition:
    """Every history entry: its object exists; unless ``heads_only``, it parses and its object's bytes re-hash."""
    path = store.filesystem.uri(head_rel(key, partition))
    found = _Partition()
    entries = index.history.get((key, partition), [])
    own = _own_entry(store, head_rel(key, partition), entries) if (key, partition) in index.heads else None
    for rel, _, data_hash in entries:
        uri = store.filesystem.uri(rel)
        present = data_hash in index.objects
        if not present:
            found.rows.append(VerifyResult(key, partition, VerifyStatus.MISSING_OBJECT,
                                           f"history entry {uri} names data hash {data_hash}, whose object "
                                           f"{store.object_path(data_hash)} is missing; that version is lost",
                                           path, data_hash=data_hash))
        if heads_only:
            continue
        try:
            manifest = store.history_entry(key, partition, rel)
        except ManifestTampered as exc:
            named = _edited_fields(store, rel, head_rel(key, partition), "the head") if rel == own else ""
            found.rows.append(VerifyResult(key, partition, VerifyStatus.TAMPERED, f"history entry: {exc}{named}",
                                           path, data_hash=data_hash))
            continue
        except (ManifestError, FileNotFoundError) as exc:
            found.rows.append(VerifyResult(key, partition, VerifyStatus.MANIFEST, f"history entry {uri}: {exc}",
                                           path, data_hash=data_hash))
            continue
        found.manifests[manifest.manifest_hash] = manifest
        facts = (manifest.data_hash, manifest.file_hash, manifest.file_size)
        if present and facts not in found.verified_bytes:
            found.verified_bytes.add(facts)
            try:
                store.verify_bytes(manifest)
            except ManifestError:
                found.verified_bytes.discard(facts)  # vanished since listed: a concurrent collection
            except IntegrityError as exc:
                found.rows.append(VerifyResult(key, partition, VerifyStatus.CORRUPT, f"history entry {uri}: {exc}",
                                               path, data_hash=data_hash))
    return found


def _head_problems(store: PinnedStore, key: str, partition: str | None, head: Manifest, found: _Partition,
                   anchor: str | None) -> list[str]:
    """How a head that verified disagrees with its own history entry or with the hash Dagster recorded."""
    problems = []
    own = history_rel(key, partition, head.written_at, head.data_hash)
    copy = next((m for m in found.manifests.values()
                 if history_rel(key, partition, m.written_at, m.data_hash) == own), None)
    if copy is not None and copy.manifest_hash != head.manifest_hash:
        fields = _differing_fields(head.to_dict(), copy.to_dict())
        problems.append(
            f"the head ({head.manifest_hash}) and its own history entry {store.filesystem.uri(own)} "
            f"({copy.manifest_hash}) record the same version differently, in: {', '.join(fields)}; one was "
            "rewritten with a recomputed hash - trust neither, re-materialize"
        )
    if anchor is not None and anchor != head.manifest_hash:
        chain, link = set(), head.previous
        while link is not None and link in found.manifests:  # a hash chain cannot loop
            chain.add(link)
            link = found.manifests[link].previous
        if anchor not in chain:
            problems.append(
                f"Dagster's latest materialization records manifest hash {anchor}, but the head records "
                f"{head.manifest_hash} and its chain of previous versions does not lead there: the head or its "
                "history was rewritten outside Dagster - trust neither, re-materialize"
            )
    return problems


def _run_problems(store: PinnedStore, key: str, partition: str | None, found: _Partition,
                  run_anchors: Mapping[tuple[str, str | None, str], str]) -> list[VerifyResult]:
    """A row for each run whose recorded manifest hash no history entry of that run has any longer."""
    path = store.filesystem.uri(head_rel(key, partition))
    by_run: dict[str, list[Manifest]] = {}
    for manifest in found.manifests.values():
        if manifest.run_id is not None:
            by_run.setdefault(manifest.run_id, []).append(manifest)
    rows = []
    for run_id, manifests in sorted(by_run.items()):
        anchor = run_anchors.get((key, partition, run_id))
        if anchor is not None and all(manifest.manifest_hash != anchor for manifest in manifests):
            stored = ", ".join(manifest.manifest_hash for manifest in manifests)
            rows.append(VerifyResult(
                key, partition, VerifyStatus.TAMPERED,
                f"Dagster's materialization of run {run_id} records manifest hash {anchor}, but the history "
                f"entries of that run record {stored}: a version was rewritten with a recomputed hash - trust "
                "none of them, re-materialize", path,
                data_hash=manifests[0].data_hash if len(manifests) == 1 else None))
    return rows


def _others(rows: list[VerifyResult], head: Manifest) -> list[VerifyResult]:
    """``rows`` without those about the head's object (missing or corrupt), which the head's row reports."""
    object_rows = (VerifyStatus.MISSING_OBJECT, VerifyStatus.CORRUPT)
    return [row for row in rows if row.status not in object_rows or row.data_hash != head.data_hash]


def _verify_one(store: PinnedStore, index: StoreIndex, key: str, partition: str | None, *,
                heads_only: bool = False, anchor: str | None = None,
                run_anchors: Mapping[tuple[str, str | None, str], str] | None = None) -> list[VerifyResult]:
    path = store.filesystem.uri(head_rel(key, partition))
    entries = index.history.get((key, partition), [])
    found = _verify_history(store, index, key, partition, heads_only)
    rows = found.rows + _run_problems(store, key, partition, found, run_anchors or {})
    where = key if partition is None else f"{key} partition {partition}"
    if (key, partition) not in index.heads:
        if entries:
            detail = (f"the head {path} is missing although history records {len(entries)} version(s) "
                      f"(newest {entries[-1][2]}): the head was deleted - re-materialize {where}")
            return [VerifyResult(key, partition, VerifyStatus.MISSING_HEAD, detail, path), *rows]
        return [VerifyResult(key, partition, VerifyStatus.MISSING, f"nothing is stored for {where}", path), *rows]
    try:
        manifest = store.manifest(key, partition)
    except ManifestTampered as exc:
        own = _own_entry(store, head_rel(key, partition), entries)
        named = "" if own is None else _edited_fields(store, head_rel(key, partition), own, "its history entry")
        detail = str(exc) + named
        return [VerifyResult(key, partition, VerifyStatus.TAMPERED, detail, path), *rows]
    except ManifestError as exc:
        return [VerifyResult(key, partition, VerifyStatus.MANIFEST, str(exc), path), *rows]
    # the head's object is reported once, by the head's row
    rows = _others(rows, manifest)
    if manifest.data_hash not in index.objects and not store.filesystem.exists(object_rel(manifest.data_hash)):
        detail = (f"the object {store.data_path(manifest)} the head names (data hash {manifest.data_hash}) is "
                  f"missing - re-materialize {where}")
        return [VerifyResult(key, partition, VerifyStatus.MISSING_OBJECT, detail, path), *rows]
    try:
        table, manifest = store.load_verified(key, partition, manifest)
    except ConcurrencyError as exc:
        return [VerifyResult(key, partition, VerifyStatus.CONCURRENT, str(exc), path), *rows]
    except ManifestError as exc:
        return [VerifyResult(key, partition, VerifyStatus.MANIFEST, str(exc), path), *rows]
    except (IntegrityError, MLPlatformError) as exc:
        return [VerifyResult(key, partition, VerifyStatus.CORRUPT, str(exc), path), *rows]
    if heads_only and anchor not in (None, manifest.manifest_hash):  # the chain is needed to judge the anchor
        found = _verify_history(store, index, key, partition, heads_only=False)
        rows = _others(found.rows, manifest)
    problems = _head_problems(store, key, partition, manifest, found, anchor)
    if problems:
        return [VerifyResult(key, partition, VerifyStatus.TAMPERED, "; ".join(problems), path,
                             data_hash=manifest.data_hash), *rows]
    status, detail, diff = VerifyStatus.OK, "verified", EnvironmentDiff(())
    if store.policy is not EnvironmentPolicy.OFF:
        diff = diff_environments(manifest.environment, store.environment)
        if not diff.is_empty:
            status, detail = _environment_status(store, index, manifest, diff)
    row = VerifyResult(key, partition, status, detail, path, rows=table.num_rows, data_hash=manifest.data_hash,
                       environment_diff=diff)
    return [row, *rows]


def _environment_status(store: PinnedStore, index: StoreIndex, manifest: Manifest,
                        diff: EnvironmentDiff) -> tuple[VerifyStatus, str]:
    """A head's environment difference: it differs (warn), is accepted or tampered with (strict), or mismatches."""
    detail = f"{len(diff.differences)} environment difference(s): " + "; ".join(diff.differences)
    if store.policy is not EnvironmentPolicy.STRICT:
        return VerifyStatus.ENVIRONMENT_DIFFERS, detail
    if index.acceptances is None:
        index.acceptances = store.acceptance_files()
    try:
        verdict = decide_environment(manifest.environment, store.environment, store.policy, manifest.label,
                                     index.acceptances)
    except AcceptanceTampered as exc:
        return VerifyStatus.TAMPERED, str(exc)
    except EnvironmentMismatch:
        return VerifyStatus.ENVIRONMENT_MISMATCH, detail
    assert verdict.acceptance is not None  # a strict pass over differing locks is an accepted one
    return VerifyStatus.ENVIRONMENT_DIFFERS, f"accepted by {verdict.acceptance.sha256}: {detail}"


def verify_acceptances(store: PinnedStore) -> list[VerifyResult]:
    """One row per environment acceptance recorded in the store: ``ok``, or ``tampered`` with what is wrong."""
    rows = []
    for found in store.acceptance_files():
        name = found.source.rpartition("/")[2][:16]  # the record's hash prefix (its file is in the detail)
        if found.acceptance is None:
            rows.append(VerifyResult("environment/acceptances", name, VerifyStatus.TAMPERED,
                                     f"environment acceptance {found.source} does not verify ({found.problem}); it "
                                     "accepts nothing: record the acceptance again with `ml-platform environment "
                                     "accept`, and find out who edited it", found.source))
        else:
            a = found.acceptance
            rows.append(VerifyResult("environment/acceptances", name, VerifyStatus.OK,
                                     f"{a.from_lock} accepted under {a.to_lock} by {a.accepted_by} at {a.accepted_at}",
                                     found.source))
    return rows


def verify_training_set(store: PinnedStore, label: str, data_hash: str, manifest_hash: str | None,
                        keys: Iterable[tuple[str, bool]] | None = None) -> VerifyResult:
    """One row for the training set a registered version (``label``) was trained on, a root of the store.

    Its object must exist; a stored manifest of it must have ``manifest_hash`` (the one the
    registry tagged on the version, when it did), and the object's bytes must re-hash to what that
    manifest records. ``keys``: :meth:`PinnedStore.list_keys`, when the caller already listed them.
    """
    row = f"registry:{label}"
    path = store.object_path(data_hash)
    if not store.filesystem.exists(object_rel(data_hash)):
        return VerifyResult(row, None, VerifyStatus.MISSING_OBJECT,
                            f"the training set {data_hash} this registered version was trained on is not in the "
                            "store: it was collected or lost, and the version can no longer be reproduced",
                            path, data_hash=data_hash)
    found: list[Manifest] = []
    problems: list[str] = []
    for holder in store.keys_holding(data_hash, keys):
        for rel, _, entry_hash in store.history_entries(holder, None):
            if entry_hash == data_hash:
                try:
                    found.append(store.history_entry(holder, None, rel))
                except (ManifestError, FileNotFoundError) as exc:
                    problems.append(str(exc))
    if manifest_hash is not None:
        matching = [manifest for manifest in found if manifest.manifest_hash == manifest_hash]
        if not matching:
            stored = ", ".join(manifest.manifest_hash for manifest in found) or "none that verifies"
            return VerifyResult(row, None, VerifyStatus.TAMPERED,
                                f"the registry tagged this version's training set with manifest hash {manifest_hash}, "
                                f"but no stored manifest of {data_hash} has it (stored: {stored}): its manifest was "
                                "rewritten or lost - do not trust the training set's recorded provenance"
                                + "".join(f"; {problem}" for problem in problems), path, data_hash=data_hash)
        found = matching
    if not found:
        status = VerifyStatus.TAMPERED if problems else VerifyStatus.MANIFEST
        detail = "; ".join(problems) or (f"no manifest of the training set {data_hash} remains in the store, so "
                                         "its bytes and provenance cannot be checked - re-register from a stored one")
        return VerifyResult(row, None, status, detail, path, data_hash=data_hash)
    try:
        store.verify_bytes(found[-1])
    except ManifestError as exc:
        return VerifyResult(row, None, VerifyStatus.MISSING_OBJECT, str(exc), path, data_hash=data_hash)
    except IntegrityError as exc:
        return VerifyResult(row, None, VerifyStatus.CORRUPT, str(exc), path, data_hash=data_hash)
    return VerifyResult(row, None, VerifyStatus.OK,
                        f"its training set is stored and re-hashes to its manifest {found[-1].manifest_hash}", path,
                        rows=found[-1].rows, data_hash=data_hash)


def verify_store(
    store: PinnedStore,
    key: str | None = None,
    partition: str | None = None,
    *,
    expected: Iterable[tuple[str, str | None]] = (),
    anchors: Mapping[tuple[str, str | None], str] | None = None,
    run_anchors: Mapping[tuple[str, str | None, str], str] | None = None,
    heads_only: bool = False,
) -> list[VerifyResult]:
    """Check every stored artefact (or those of ``key``, or one partition) against what should exist.

    Each partition with a head is fully read and verified: byte hash, Parquet decoding, footer,
    content hash; then its environment lock is compared with the running one. A partition with
    history but no head is ``missing-head``; a head or history entry whose object is gone is
    ``missing-object``. Each ``(key, partition)`` of ``expected`` (what an orchestrator recorded as
    materialized) that the store has no trace of is ``unrecorded``. A bad artefact never raises.
    Environment differences fail only under the store's ``strict`` policy.

    Every manifest's own hash is checked (an edited field is ``tampered``) and, unless
    ``heads_only``, every history entry is parsed and its object's bytes re-hashed. A head must
    agree with its own history entry and with ``anchors``: the manifest hash the orchestrator
    recorded for the partition's latest materialization (reached from the head by its chain).
    Unless ``heads_only``, each run of ``run_anchors`` (``(key, partition, run id)`` -> manifest
    hash) with history entries in the partition must have one with the recorded hash.

    Raises:
        ConfigurationError: a partition without a key, a malformed key/partition, or an asset key
            that neither the store nor ``expected`` knows (the message lists the known ones).
        ManifestError: the store holds manifests of the old ``ml_platform.manifest/v1`` layout.
    """
    if partition is not None and key is None:
        raise ConfigurationError(
            "verify: a partition needs an asset key too, e.g. `verify momentum --partition 2012-01-03`"
        )
    if key is not None:
        store.manifest_path(key, partition)  # validates both, naming the one at fault
    index = index_store(store)
    v1 = _v1_manifests(store)
    if v1:
        raise ManifestError(
            f"{store.base} holds {len(v1)} manifest(s) of the ml_platform.manifest/v1 layout (e.g. "
            f"{store.filesystem.uri(v1[0])}); this ml_platform reads only {MANIFEST_SCHEMA} - "
            "re-materialize into a new storage directory"
        )
    expected_set = {(k, p) for k, p in expected}
    known = set(index.locations)
    if key is not None:
        keys = {loc[0] for loc in known | expected_set}
        if key not in keys:
            listed = ", ".join(sorted(keys)) or "none"
            raise ConfigurationError(f"unknown asset key {key!r}: nothing is stored under {store.base} for it "
                                     f"(known keys: {listed})")
    wanted = known | {loc for loc in expected_set if loc not in known}
    if key is not None:
        wanted = {loc for loc in wanted if loc[0] == key}
    if partition is not None:
        wanted = {(key, partition)}  # type: ignore[arg-type]
    results = []
    for location in sorted(wanted, key=lambda loc: (loc[0], "" if loc[1] is None else loc[1])):
        if location not in known:
            where = location[0] if location[1] is None else f"{location[0]} partition {location[1]}"
            status = VerifyStatus.UNRECORDED if location in expected_set else VerifyStatus.MISSING
            detail = (f"Dagster recorded {where} as materialized, but the store has no head or history for it"
                      if status is VerifyStatus.UNRECORDED else f"nothing is stored for {where}")
            results.append(VerifyResult(location[0], location[1], status, detail,
                                        store.filesystem.uri(head_rel(*location))))
            continue
        results += _verify_one(store, index, *location, heads_only=heads_only,
                                anchor=(anchors or {}).get(location), run_anchors=run_anchors)
    return results
