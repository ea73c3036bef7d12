"""What a registered model was built from, as recorded in the store: every partition beneath its training set.

The training set's manifest (found by the data hash its deploy contract records) lists the model-input
and label partitions it read, each with its data hash; each of those manifests lists its own upstream
partitions, down to the source nodes (no upstream: market data as delivered). Walking these references
by data hash gives the exact versions that went into the model, whatever was rematerialized since.
Pure store reads: no Dagster, no MLflow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from ml_platform.errors import MLPlatformError
from ml_platform.io.layout import object_rel
from ml_platform.io.manifest import Manifest, UpstreamRef
from ml_platform.io.store import PinnedStore

__all__ = ["LostVersion", "RecordedLineage", "RecordedPartition", "describe_lost", "recorded_lineage"]


@dataclass(frozen=True)
class RecordedPartition:
    """One stored version the model depends on.

    Attributes:
        key: store key (the asset key path joined by ``/``).
        partition: partition key (``None``: an unpartitioned node such as the training set).
        data_hash: the recorded content hash of that version.
        upstream: what it was computed from (empty: a source node, data as delivered).
        graph_hash: the graph hash of the code that wrote it.
    """

    key: str
    partition: str | None
    data_hash: str
    upstream: tuple[UpstreamRef, ...]
    graph_hash: str | None

    @property
    def is_source(self) -> bool:
        return not self.upstream

    @property
    def label(self) -> str:
        return self.key if self.partition is None else f"{self.key} partition {self.partition}"


@dataclass(frozen=True)
class LostVersion:
    """A recorded version whose manifest or object the store no longer holds (collected, deleted or damaged)."""

    key: str
    partition: str | None
    data_hash: str
    reason: str

    @property
    def label(self) -> str:
        return self.key if self.partition is None else f"{self.key} partition {self.partition}"


@dataclass(frozen=True)
class RecordedLineage:
    """Every version beneath a root (the root first, then breadth first), and the ones that are lost.

    Attributes:
        root: the version the walk started from (the training set).
        partitions: every reachable version, deduplicated, in walk order.
        lost: versions referenced but no longer readable, each with why.
    """

    root: RecordedPartition | None
    partitions: tuple[RecordedPartition, ...]
    lost: tuple[LostVersion, ...]

    @property
    def complete(self) -> bool:
        return self.root is not None and not self.lost

    def sources(self) -> tuple[RecordedPartition, ...]:
        """The source versions (no upstream): what reproduction reads as delivered, by data hash."""
        return tuple(p for p in self.partitions if p.is_source)

    def computed(self) -> tuple[RecordedPartition, ...]:
        """The partitioned versions recomputed by the old code (not the sources, not the root)."""
        return tuple(p for p in self.partitions if not p.is_source and p is not self.root)

    def keys(self) -> tuple[str, ...]:
        """Store keys, in first-seen order."""
        return tuple(dict.fromkeys(p.key for p in self.partitions))

    def partitions_of(self, key: str) -> tuple[str, ...]:
        """The recorded partition keys of one node, sorted."""
        return tuple(sorted(p.partition for p in self.partitions if p.key == key and p.partition is not None))


def _recorded(manifest: Manifest) -> RecordedPartition:
    return RecordedPartition(manifest.asset_key, manifest.partition, manifest.data_hash, tuple(manifest.upstream),
                             manifest.graph_hash)


def recorded_lineage(store: PinnedStore, key: str, partition: str | None, data_hash: str, *,
                     verify_objects: bool = False,
                     also: Iterable[tuple[str, str | None, str]] = (),
                     manifests: dict[tuple[str, str | None, str], Manifest] | None = None) -> RecordedLineage:
    """Walk the recorded versions beneath ``key``/``partition`` at ``data_hash`` (and beneath ``also``).

    Args:
        store: the production store that holds them.
        key / partition / data_hash: the root, e.g. the training set and the hash its contract records.
        verify_objects: also re-read every object and check its size and file hash against the recorded
            ones (:meth:`PinnedStore.verify_bytes`); without it an object is only checked to exist.
        also: more ``(key, partition, data_hash)`` versions walked in the same pass (e.g. the live signal
            days a model version wrote); each shared ancestor is read once.
        manifests: if given, filled with the manifest of every version walked (so a caller reads none twice).

    Returns:
        The lineage; a missing root, manifest or object is listed in ``lost`` with its reason, never raised.
    """
    seen: dict[tuple[str, str | None, str], RecordedPartition] = {}
    lost: dict[tuple[str, str | None, str], LostVersion] = {}
    queue: deque[tuple[str, str | None, str]] = deque([(key, partition, data_hash), *also])
    root: RecordedPartition | None = None
    while queue:
        ident = queue.popleft()
        if ident in seen or ident in lost:
            continue
        k, p, h = ident
        try:
            manifest = store.manifest(k, p, data_hash=h)
            if verify_objects:
                store.verify_bytes(manifest)
            elif not store.filesystem.exists(object_rel(manifest.data_hash)):
                raise MLPlatformError(f"the object of data hash {h} is missing from {store.base} (collected by "
                                      "gc, or deleted)")
        except MLPlatformError as exc:
            lost[ident] = LostVersion(k, p, h, str(exc))
            continue
        recorded = _recorded(manifest)
        seen[ident] = recorded
        if manifests is not None:
            manifests[ident] = manifest
        if root is None and ident == (key, partition, data_hash):
            root = recorded
        queue.extend((ref.key, ref.partition, ref.data_hash) for ref in manifest.upstream)
    return RecordedLineage(root, tuple(seen.values()), tuple(lost.values()))


def describe_lost(lost: Iterable[LostVersion], limit: int = 5) -> str:
    """One readable sentence naming the first lost versions."""
    items = list(lost)
    named = "; ".join(f"{v.label} ({v.data_hash}): {v.reason}" for v in items[:limit])
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"{len(items)} recorded version(s) are no longer stored: {named}{more}"
