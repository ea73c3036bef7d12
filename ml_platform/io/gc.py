"""Garbage collection of a pinned store: delete only what no root and no retention rule reaches.

How it works, and why: docs/architecture.md, "ml_platform/io/gc.py".
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ml_platform.crashpoints import crash_point
from ml_platform.errors import ConfigurationError
from ml_platform.io.atomic import FileSystem
from ml_platform.io.layout import head_rel, validate_data_hash
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import StoreIndex, index_store

__all__ = ["DEFAULT_GRACE_SECONDS", "DEFAULT_KEEP_DAYS", "GcReport", "Horizons", "ObjectSweep", "Reachable", "Roots",
           "collect", "gather_roots", "mark_reachable", "sweep_history", "sweep_objects", "sweep_temporaries"]

logger = logging.getLogger(__name__)

DEFAULT_KEEP_DAYS = 30.0
DEFAULT_GRACE_SECONDS = 3600.0


@dataclass
class GcReport:
    """What a garbage collection deleted (or, under ``dry_run``, would delete).

    Attributes:
        objects: paths of the objects deleted.
        history: paths of the history entries deleted.
        temporaries: paths of the temporaries of interrupted writes deleted.
        kept_objects: number of objects kept.
        reached: number of data hashes reached from the roots.
        young: number of unreached objects kept because they are younger than the grace period.
        dry_run: whether nothing was actually deleted.
        warnings: records GC could not read (their partitions were kept whole).
    """

    objects: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    temporaries: list[str] = field(default_factory=list)
    kept_objects: int = 0
    reached: int = 0
    young: int = 0
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def deleted(self) -> list[str]:
        """Everything deleted, history entries first (the order GC deletes in)."""
        return [*self.history, *self.objects, *self.temporaries]


@dataclass(frozen=True)
class Roots:
    """What gc must keep, before following upstream references.

    Attributes:
        hashes: the root data hashes (heads, young history, extra roots, every version of a broken partition).
        manifests: data hash -> the manifest files (heads and history entries) that carry it.
        warnings: records that could not be read (their partitions are kept whole).
    """

    hashes: frozenset[str]
    manifests: Mapping[str, tuple[str, ...]]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reachable:
    """The data hashes reached from the roots, and the manifests whose upstream could not be followed."""

    hashes: frozenset[str]
    unreadable: tuple[tuple[str, str], ...] = ()  # (manifest file, why)


@dataclass(frozen=True)
class ObjectSweep:
    """What the object sweep deleted (or would), and what it kept."""

    deleted: tuple[str, ...]
    kept: int
    young: int


@dataclass(frozen=True)
class Horizons:
    """The moments of one collection, in nanoseconds: history written at or after ``keep_ns`` is a root, and
    nothing written at or after ``grace_ns`` is deleted."""

    keep_ns: int
    grace_ns: int
    grace_seconds: float

    @classmethod
    def at(cls, now: float, *, keep_days: float, grace_seconds: float) -> Horizons:
        return cls(int((now - keep_days * 86_400) * 1e9), int((now - grace_seconds) * 1e9), grace_seconds)


def _upstream_hashes(raw: bytes) -> tuple[str | None, list[str]]:
    """``(data hash, upstream data hashes)`` of a manifest's JSON, without full validation."""
    record = json.loads(raw)
    upstream = [ref["data_hash"] for ref in record.get("upstream") or () if isinstance(ref.get("data_hash"), str)]
    data_hash = record.get("data_hash")
    return (data_hash if isinstance(data_hash, str) else None), upstream


def gather_roots(index: StoreIndex, fs: FileSystem, extra_roots: Iterable[str], horizons: Horizons) -> Roots:
    """The roots: every head's data hash, history younger than the retention window or the grace period, the
    extra roots, and every version of a partition whose head is missing or unreadable; with the manifests of
    each hash."""
    roots = set(extra_roots)
    warnings: list[str] = []
    by_hash: dict[str, list[str]] = {}  # data hash -> manifest files (heads and history) with that hash
    for location, entries in index.history.items():
        for rel, written_ns, data_hash in entries:
            by_hash.setdefault(data_hash, []).append(rel)
            if written_ns >= min(horizons.keep_ns, horizons.grace_ns):  # kept by retention or by the grace
                roots.add(data_hash)  # period alike: the entry stays, so must its object and its upstream
        if location not in index.heads and entries:
            roots.add(entries[-1][2])  # a deleted head: its newest version stays the partition's root
    for location in index.heads:
        rel = head_rel(*location)
        try:
            data_hash, _ = _upstream_hashes(fs.read_buffer(rel).to_pybytes())
        except (FileNotFoundError, ValueError, TypeError, AttributeError) as exc:
            data_hash = None
            warnings.append(f"{fs.uri(rel)}: {exc}")
        if data_hash is None:  # unreadable head: keep the whole partition
            warnings.append(f"{fs.uri(rel)} cannot be read; every version of {location} is kept")
            roots.update(entry[2] for entry in index.history.get(location, []))
            continue
        roots.add(data_hash)
        by_hash.setdefault(data_hash, []).append(rel)
    return Roots(frozenset(roots), {h: tuple(rels) for h, rels in by_hash.items()}, tuple(warnings))


def mark_reachable(roots: Roots, read: Callable[[str], bytes]) -> Reachable:
    """The transitive closure of the roots over the upstream references of the manifests carrying each hash.

    ``read`` returns a manifest file's bytes; a file gone meanwhile (``FileNotFoundError``: a head replaced,
    its new version is listed by the next gc) is skipped, an unreadable one is named in ``unreadable``."""
    reached: set[str] = set()
    unreadable: list[tuple[str, str]] = []
    pending = list(roots.hashes)
    while pending:
        data_hash = pending.pop()
        if data_hash in reached:
            continue
        reached.add(data_hash)
        for rel in roots.manifests.get(data_hash, ()):
            try:
                _, upstream = _upstream_hashes(read(rel))
            except FileNotFoundError:
                continue
            except (ValueError, TypeError, AttributeError) as exc:
                unreadable.append((rel, str(exc)))
                continue
            pending += [up for up in upstream if up not in reached]
    return Reachable(frozenset(reached), tuple(unreadable))


def sweep_history(index: StoreIndex, fs: FileSystem, reached: Reachable, horizons: Horizons, *,
                  dry_run: bool) -> tuple[str, ...]:
    """Delete the history entries older than both horizons whose data hash is not reached; their URIs."""
    deleted: list[str] = []
    for entries in index.history.values():
        for rel, written_ns, data_hash in entries:
            if data_hash in reached.hashes or written_ns >= horizons.keep_ns or written_ns >= horizons.grace_ns:
                continue
            deleted.append(fs.uri(rel))
            if not dry_run:
                crash_point("gc:delete-history")
                fs.delete(rel)
    return tuple(deleted)


def sweep_objects(index: StoreIndex, fs: FileSystem, reached: Reachable, horizons: Horizons, *,
                  dry_run: bool) -> ObjectSweep:
    """Delete the unreached objects older than the grace period, their age re-read just before deleting."""
    deleted: list[str] = []
    kept = young = 0
    for data_hash, rel in sorted(index.objects.items()):
        if data_hash in reached.hashes:
            kept += 1
            continue
        age = fs.age_seconds(rel)
        if age is None or age < horizons.grace_seconds:
            kept += 1
            young += 1
            continue
        deleted.append(fs.uri(rel))
        if not dry_run:
            crash_point("gc:delete-object")
            fs.delete(rel)
    return ObjectSweep(tuple(deleted), kept, young)


def sweep_temporaries(index: StoreIndex, fs: FileSystem, horizons: Horizons, *, dry_run: bool) -> tuple[str, ...]:
    """Delete the temporaries of interrupted writes older than the grace period; their URIs."""
    deleted: list[str] = []
    for rel in index.temporaries:
        age = fs.age_seconds(rel)
        if age is None or age < horizons.grace_seconds:
            continue
        deleted.append(fs.uri(rel))
        if not dry_run:
            crash_point("gc:delete-temporary")
            fs.delete(rel)
    return tuple(deleted)


def collect(
    store: PinnedStore,
    extra_roots: Iterable[str] = (),
    *,
    keep_days: float | None = None,
    grace_seconds: float | None = None,
    dry_run: bool = False,
) -> GcReport:
    """Delete every object, expired history entry and temporary that no root reaches (see the module doc).

    Args:
        store: the pinned store to collect.
        extra_roots: data hashes that must be kept with everything upstream of them (the data
            registered model versions were trained on, the ledger, certificates).
        keep_days: history younger than this many days is a root (default :data:`DEFAULT_KEEP_DAYS`).
        grace_seconds: nothing younger than this is deleted (default :data:`DEFAULT_GRACE_SECONDS`): a
            concurrent writer may own it.
        dry_run: only report what would be deleted.

    Raises:
        ConfigurationError: an extra root is not a data hash, or ``keep_days``/``grace_seconds`` < 0.
    """
    keep_days = DEFAULT_KEEP_DAYS if keep_days is None else keep_days
    grace_seconds = DEFAULT_GRACE_SECONDS if grace_seconds is None else grace_seconds
    if keep_days < 0 or grace_seconds < 0:
        raise ConfigurationError(f"gc: keep_days ({keep_days}) and grace_seconds ({grace_seconds}) must be >= 0")
    extra = {validate_data_hash(root, "gc extra root") for root in extra_roots}
    fs = store.filesystem
    crash_point("gc:start")
    index = index_store(store)  # objects first, then refs: see "Why GC cannot race a writer"
    horizons = Horizons.at(time.time(), keep_days=keep_days, grace_seconds=grace_seconds)
    roots = gather_roots(index, fs, extra, horizons)
    reachable = mark_reachable(roots, lambda rel: fs.read_buffer(rel).to_pybytes())
    warnings = [*roots.warnings,
                *(f"{fs.uri(rel)}: unreadable, its upstream is not followed ({why})" for rel, why in reachable.unreadable)]
    for warning in warnings:
        logger.warning("gc: %s", warning)
    crash_point("gc:listed")
    history = sweep_history(index, fs, reachable, horizons, dry_run=dry_run)
    objects = sweep_objects(index, fs, reachable, horizons, dry_run=dry_run)
    temporaries = sweep_temporaries(index, fs, horizons, dry_run=dry_run)
    crash_point("gc:done")
    return GcReport(objects=list(objects.deleted), history=list(history), temporaries=list(temporaries),
                    kept_objects=objects.kept, reached=len(reachable.hashes), young=objects.young, dry_run=dry_run,
                    warnings=warnings)
