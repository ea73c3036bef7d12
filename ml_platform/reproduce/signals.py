"""The live signals a registered version wrote, as production recorded them, and their comparison.

How it works, and why: docs/architecture.md, "ml_platform/reproduce/signals.py".
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ml_platform.errors import MLPlatformError
from ml_platform.io.manifest import Manifest
from ml_platform.io.recorded_lineage import RecordedLineage, RecordedPartition
from ml_platform.io.store import PinnedStore
from ml_platform.keys import FrameKeys
from ml_platform.lineage.data_hash import hash_table
from ml_platform.reproduce.compare import Comparison, ComparisonKind, first_difference

__all__ = ["VERSION_COLUMN", "compare_signals", "conflicting_versions", "served_signals"]

#: The signal column that names the registry version; it differs in a reproduction's own registry.
VERSION_COLUMN = "model_version"


def _served_by(manifest: Manifest, model: str, version: str) -> bool:
    params = manifest.params or {}
    return params.get("model_name") == model and str(params.get("model_version")) == version


def served_signals(store: PinnedStore, model: str, version: str) -> tuple[RecordedPartition, ...]:
    """Every live-signal day ``model`` ``version`` wrote (the last write of each day by that version), by day.

    A key is a live-signal key when the head of one of its partitions records a ``model_name`` of
    ``model``; then every partition's history is read for the versions ``version`` wrote.
    """
    signal_keys: set[str] = set()
    for manifest in store.manifests():
        if manifest.partition is not None and (manifest.params or {}).get("model_name") == model:
            signal_keys.add(manifest.asset_key)
    found: list[RecordedPartition] = []
    for key in sorted(signal_keys):
        for _, partition in store.locations(key):
            if partition is None:
                continue
            try:
                written = [m for m in store.history(key, partition) if _served_by(m, model, version)]
            except MLPlatformError:
                continue  # an unreadable history is not a served day; the store's verify reports it
            if written:
                last = written[-1]
                found.append(RecordedPartition(key, partition, last.data_hash, tuple(last.upstream), last.graph_hash))
    return tuple(sorted(found, key=lambda r: (r.key, str(r.partition))))


def conflicting_versions(lineage: RecordedLineage) -> dict[tuple[str, str | None], tuple[str, ...]]:
    """Partitions the lineage holds at more than one data hash (e.g. a source revised between training
    and a live day): one reproduction store can hold only one of them."""
    hashes: dict[tuple[str, str | None], list[str]] = {}
    for part in lineage.partitions:
        hashes.setdefault((part.key, part.partition), []).append(part.data_hash)
    return {where: tuple(found) for where, found in hashes.items() if len(set(found)) > 1}


def _without_version(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop(VERSION_COLUMN) if VERSION_COLUMN in frame.columns else frame


def compare_signals(production: PinnedStore, reproduced: PinnedStore, recorded: Sequence[RecordedPartition], *,
                    keys: FrameKeys | None = None) -> tuple[Comparison, ...]:
    """Each recorded signal day against the reproduction's, by the content hash of every column but the version."""
    out = []
    for part in recorded:
        subject = f"signals {part.label}"
        try:
            before = _without_version(production.read(part.key, part.partition, data_hash=part.data_hash).frame)
        except MLPlatformError as exc:
            out.append(Comparison(ComparisonKind.SIGNALS, subject, part.data_hash, None,
                                  f"the recorded signals cannot be read: {exc}"))
            continue
        expected = hash_table(before)
        try:
            after = _without_version(reproduced.read(part.key, part.partition).frame)
        except MLPlatformError as exc:
            out.append(Comparison(ComparisonKind.SIGNALS, subject, expected, None, f"not reproduced: {exc}"))
            continue
        actual = hash_table(after)
        where = None if actual == expected else (first_difference(before, after, keys)
                                                 or "same values, different content hash")
        out.append(Comparison(ComparisonKind.SIGNALS, subject, expected, actual, where))
    return tuple(out)
