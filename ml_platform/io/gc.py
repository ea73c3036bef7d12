"""Garbage collection of a pinned store: delete only what no root and no retention rule reaches.

The rule
--------
*Roots* are data hashes:

* the data hash of every partition's head (and, when a head is missing or unreadable, every
  history entry of that partition: nothing is collected on the strength of a broken record);
* the data hash of every history entry younger than ``keep_days`` (the retention window);
* ``extra_roots``: data hashes the caller must keep, whatever their age - the data registered model
  versions were trained on, the ledger, certificates (``ml-platform gc`` gathers them from the model
  registry).

Everything *upstream* of a root is reached too: for every manifest (head or history entry, of any
partition) whose data hash is reached, the data hashes of its ``upstream`` references are reached,
transitively. So the features behind a registered training set stay with it.

GC then deletes, in this order (so a crash at any point leaves only more garbage, never a record
naming a deleted object): history entries older than the retention window whose data hash is not
reached; objects whose data hash is not reached; temporaries of interrupted writes. Orphans from
interrupted or concurrent writes - an object whose writer died before any manifest named it - are
simply objects no root reaches, collected by the same rule.

Why GC cannot race a writer
---------------------------
There is no lock (a lock file does not work on object stores, and a crashed holder blocks every
writer). Instead, nothing younger than a grace period (``grace_seconds``, default one hour) is
ever deleted, and the protocol orders its steps so that the grace period covers every window:

* a writer creates its object - or, when the same content is already stored, *touches* it (sets its
  modification time to now) - before any manifest names it;
* GC lists the objects *before* it lists the heads and history, and re-reads an object's age just
  before deleting it;
* so an object GC deletes was older than the grace period at deletion time, and no head or history
  entry listed after the object listing reached it: a writer would have had to create or touch it
  more than ``grace_seconds`` before committing its head, which a write never takes;
* after committing, a writer checks that its object still exists and re-publishes it otherwise,
  which covers a clock jump or a filesystem that cannot report modification times (on such a
  filesystem, e.g. some object stores, GC never deletes an object whose age it cannot tell).

A reader that read a head just before a concurrent write and GC removed the old version follows the
new head (see :meth:`~ml_platform.io.store.PinnedStore.load_verified`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ml_platform.crashpoints import crash_point
from ml_platform.errors import ConfigurationError
from ml_platform.io.layout import head_rel, validate_data_hash
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import index_store

__all__ = ["DEFAULT_GRACE_SECONDS", "DEFAULT_KEEP_DAYS", "GcReport", "collect"]

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


def _upstream_hashes(raw: bytes) -> tuple[str | None, list[str]]:
    """``(data hash, upstream data hashes)`` of a manifest's JSON, without full validation."""
    record = json.loads(raw)
    upstream = [ref["data_hash"] for ref in record.get("upstream") or () if isinstance(ref.get("data_hash"), str)]
    data_hash = record.get("data_hash")
    return (data_hash if isinstance(data_hash, str) else None), upstream


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
    roots = {validate_data_hash(root, "gc extra root") for root in extra_roots}
    fs = store.filesystem
    report = GcReport(dry_run=dry_run)
    crash_point("gc:start")
    index = index_store(store)  # objects first, then refs: see "Why GC cannot race a writer"
    started = time.time()
    horizon_ns = int((started - keep_days * 86_400) * 1e9)
    grace_ns = int((started - grace_seconds) * 1e9)
    by_hash: dict[str, list[str]] = {}  # data hash -> manifest files (heads and history) with that hash
    for location, entries in index.history.items():
        for rel, written_ns, data_hash in entries:
            by_hash.setdefault(data_hash, []).append(rel)
            if written_ns >= horizon_ns:
                roots.add(data_hash)
        if location not in index.heads and entries:
            roots.add(entries[-1][2])  # a deleted head: its newest version stays the partition's root
    for location in index.heads:
        rel = head_rel(*location)
        try:
            data_hash, _ = _upstream_hashes(fs.read_buffer(rel).to_pybytes())
        except (FileNotFoundError, ValueError, TypeError, AttributeError) as exc:
            data_hash = None
            report.warnings.append(f"{fs.uri(rel)}: {exc}")
        if data_hash is None:  # unreadable head: keep the whole partition
            report.warnings.append(f"{fs.uri(rel)} cannot be read; every version of {location} is kept")
            roots.update(entry[2] for entry in index.history.get(location, []))
            continue
        roots.add(data_hash)
        by_hash.setdefault(data_hash, []).append(rel)
    # transitive closure over upstream references
    reached: set[str] = set()
    pending = list(roots)
    while pending:
        data_hash = pending.pop()
        if data_hash in reached:
            continue
        reached.add(data_hash)
        for rel in by_hash.get(data_hash, ()):
            try:
                _, upstream = _upstream_hashes(fs.read_buffer(rel).to_pybytes())
            except FileNotFoundError:
                continue  # a head replaced meanwhile: its new version is listed by the next gc
            except (ValueError, TypeError, AttributeError) as exc:
                report.warnings.append(f"{fs.uri(rel)}: unreadable, its upstream is not followed ({exc})")
                continue
            pending += [up for up in upstream if up not in reached]
    report.reached = len(reached)
    if report.warnings:
        for warning in report.warnings:
            logger.warning("gc: %s", warning)
    crash_point("gc:listed")
    # 1. expired, unreached history entries
    for entries in index.history.values():
        for rel, written_ns, data_hash in entries:
            if data_hash in reached or written_ns >= horizon_ns or written_ns >= grace_ns:
                continue
            report.history.append(fs.uri(rel))
            if not dry_run:
                crash_point("gc:delete-history")
                fs.delete(rel)
    # 2. unreached objects older than the grace period (age re-read just before deleting)
    for data_hash, rel in sorted(index.objects.items()):
        if data_hash in reached:
            report.kept_objects += 1
            continue
        age = fs.age_seconds(rel)
        if age is None or age < grace_seconds:
            report.kept_objects += 1
            report.young += 1
            continue
        report.objects.append(fs.uri(rel))
        if not dry_run:
            crash_point("gc:delete-object")
            fs.delete(rel)
    # 3. temporaries of interrupted writes
    for rel in index.temporaries:
        age = fs.age_seconds(rel)
        if age is None or age < grace_seconds:
            continue
        report.temporaries.append(fs.uri(rel))
        if not dry_run:
            crash_point("gc:delete-temporary")
            fs.delete(rel)
    crash_point("gc:done")
    return report
