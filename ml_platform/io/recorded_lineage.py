"""What a registered model was built from, as recorded in the store: every partition beneath its training set.

How it works, and why: docs/architecture.md, "ml_platform/io/recorded_lineage.py".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ml_platform.errors import MLPlatformError
from ml_platform.io.layout import object_rel
from ml_platform.io.manifest import Manifest, UpstreamRef
from ml_platform.io.store import PinnedStore

__all__ = ["LostVersion", "ManifestResolver", "RecordedLineage", "RecordedPartition", "UpstreamWalk", "describe_lost",
           "provenance_of", "recorded_lineage", "recorded_partitions", "walk_upstream"]

Ident = tuple[str, str | None, str]  # key, partition, data hash
Node = tuple[str, str | None, str, str]  # and the written_at of one manifest of it


@dataclass(frozen=True)
class RecordedPartition:
    """One stored version the model depends on.

    Attributes:
        key: store key (the asset key path joined by ``/``).
        partition: partition key (``None``: an unpartitioned node such as the training set).
        data_hash: the recorded content hash of that version.
        upstream: what it was computed from (empty: a source node, data as delivered).
        graph_hash: the graph hash of the code that wrote it.
        provenance: a digest of the versions beneath it, recursively ("" for a source): the same bytes
            written again from other inputs are another recorded partition, with another provenance.
        upstream_provenance: the provenance of each ``upstream`` version as this one read it, in order
            (empty when not resolved: every reference then means the version of that data hash).
    """

    key: str
    partition: str | None
    data_hash: str
    upstream: tuple[UpstreamRef, ...]
    graph_hash: str | None
    provenance: str = ""
    upstream_provenance: tuple[str, ...] = ()

    @property
    def ident(self) -> Ident:
        return (self.key, self.partition, self.data_hash)

    @property
    def version(self) -> Node:
        """``ident`` and ``provenance``: what one recorded partition is."""
        return (self.key, self.partition, self.data_hash, self.provenance)

    def upstream_versions(self) -> tuple[Node, ...]:
        """The ``version`` of each upstream reference as this one read it."""
        resolved = self.upstream_provenance or ("",) * len(self.upstream)
        return tuple((r.key, r.partition, r.data_hash, p) for r, p in zip(self.upstream, resolved, strict=True))

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
        partitions: every reachable version, one per data hash and provenance, in walk order.
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
        return tuple(sorted({p.partition for p in self.partitions if p.key == key and p.partition is not None}))


def _object_problem(store: PinnedStore, manifest: Manifest, verify: bool) -> str | None:
    """Why the object of ``manifest`` cannot be read back as recorded (None: it can)."""
    try:
        if verify:
            store.verify_bytes(manifest)
        elif not store.filesystem.exists(object_rel(manifest.data_hash)):
            return (f"the object of data hash {manifest.data_hash} is missing from {store.base} (collected by gc, "
                    "or deleted)")
    except MLPlatformError as exc:
        return str(exc)
    return None


def _provenance(entries: list[tuple[str, str | None, str, str]]) -> str:
    """The digest of a version's upstream versions and of their own provenance, recursively (a Merkle hash)."""
    return "blake2b:" + hashlib.blake2b(json.dumps(entries).encode(), digest_size=16).hexdigest()


def _moment(written_at: str) -> dt.datetime:
    return dt.datetime.fromisoformat(written_at)


class ManifestResolver:
    """Resolves a reference to the manifest its reader read, reading each partition's history and checking
    each object once; a version it cannot read is remembered in :attr:`lost`, with why, and never retried."""

    def __init__(self, store: PinnedStore, *, verify_objects: bool) -> None:
        self.store = store
        self.verify_objects = verify_objects
        self._histories: dict[tuple[str, str | None], list[Manifest] | None] = {}
        self._checked: dict[str, str | None] = {}  # data hash -> why its object is unreadable (None: it is fine)
        self._lost: dict[Ident, LostVersion] = {}

    @property
    def lost(self) -> tuple[LostVersion, ...]:
        """The versions found unreadable so far, in the order they were met."""
        return tuple(self._lost.values())

    def _history(self, key: str, partition: str | None) -> list[Manifest] | None:
        if (key, partition) not in self._histories:
            try:
                self._histories[(key, partition)] = self.store.history(key, partition)
            except MLPlatformError:
                self._histories[(key, partition)] = None  # an unreadable entry somewhere: read this version alone
        return self._histories[(key, partition)]

    def resolve(self, key: str, partition: str | None, data_hash: str, read_by: str | None) -> Manifest | None:
        """The manifest of ``data_hash`` a reader written at ``read_by`` read: the newest of it written at or
        before ``read_by``, else the newest (``read_by`` None: the newest). None: lost."""
        if (key, partition, data_hash) in self._lost:
            return None
        try:
            matching = [m for m in self._history(key, partition) or () if m.data_hash == data_hash]
            if not matching:  # never written, collected, or an unreadable history: the store names why
                matching = [self.store.manifest(key, partition, data_hash=data_hash)]
            earlier = [m for m in matching if read_by is None or _moment(m.written_at) <= _moment(read_by)]
            manifest = (earlier or matching)[-1]
            if data_hash not in self._checked:
                self._checked[data_hash] = _object_problem(self.store, manifest, self.verify_objects)
            if self._checked[data_hash] is not None:
                raise MLPlatformError(str(self._checked[data_hash]))
        except MLPlatformError as exc:
            self._lost[(key, partition, data_hash)] = LostVersion(key, partition, data_hash, str(exc))
            return None
        return manifest


@dataclass(frozen=True)
class UpstreamWalk:
    """The manifests beneath the start versions, walked breadth first (a version is a manifest: a data hash
    at one ``written_at``).

    Attributes:
        read: every manifest walked, by node, in walk order.
        below: each node's upstream references, as the nodes its reader read (None: lost).
        starts: the node of each start version that could be read, in the order given.
        lost: the versions referenced (or started from) that could not be read, each with why.
    """

    read: Mapping[Node, Manifest]
    below: Mapping[Node, tuple[Node | None, ...]]
    starts: tuple[Node, ...]
    lost: tuple[LostVersion, ...]


def walk_upstream(resolver: ManifestResolver, starts: Iterable[Ident]) -> UpstreamWalk:
    """Walk the recorded upstream references from ``starts`` down to the sources, each resolved to the
    manifest its reader read; each manifest is read once."""
    read: dict[Node, Manifest] = {}
    below: dict[Node, tuple[Node | None, ...]] = {}
    started: list[Node] = []
    queue: deque[Manifest] = deque()
    for key, partition, data_hash in starts:
        found = resolver.resolve(key, partition, data_hash, None)
        if found is not None:
            queue.append(found)
            started.append((key, partition, data_hash, found.written_at))
    while queue:
        manifest = queue.popleft()
        node = (manifest.asset_key, manifest.partition, manifest.data_hash, manifest.written_at)
        if node in read:
            continue
        read[node] = manifest
        children: list[Node | None] = []
        for ref in manifest.upstream:
            up = resolver.resolve(ref.key, ref.partition, ref.data_hash, manifest.written_at)
            children.append(None if up is None else (ref.key, ref.partition, ref.data_hash, up.written_at))
            if up is not None and children[-1] not in read:
                queue.append(up)
        below[node] = tuple(children)
    return UpstreamWalk(read, below, tuple(started), resolver.lost)


def provenance_of(walk: UpstreamWalk) -> dict[Node, str]:
    """Each walked node's provenance, bottom-up (iteratively: lineages are deep); "" for a source, and a lost
    upstream version counts as ``"lost"``."""
    provenance: dict[Node, str] = {}
    for start in walk.read:
        stack = [start]
        while stack:
            node = stack[-1]
            if node in provenance:
                stack.pop()
                continue
            pending = [c for c in walk.below[node] if c is not None and c not in provenance]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            refs = walk.read[node].upstream
            provenance[node] = "" if not refs else _provenance(
                [(r.key, r.partition, r.data_hash, "lost" if c is None else provenance[c])
                 for r, c in zip(refs, walk.below[node], strict=True)])
    return provenance


def recorded_partitions(walk: UpstreamWalk, provenance: Mapping[Node, str]) -> dict[Node, RecordedPartition]:
    """The :class:`RecordedPartition` of each walked node: one per version and lineage beneath it (the same
    bytes read over the same lineage at two moments are one), shared by the nodes that are it."""
    parts: dict[Node, RecordedPartition] = {}  # by version: key, partition, data hash and provenance
    by_node: dict[Node, RecordedPartition] = {}
    for node, manifest in walk.read.items():
        version = (node[0], node[1], node[2], provenance[node])
        if version not in parts:
            parts[version] = RecordedPartition(
                manifest.asset_key, manifest.partition, manifest.data_hash, tuple(manifest.upstream),
                manifest.graph_hash, provenance=provenance[node],
                upstream_provenance=tuple("lost" if c is None else provenance[c] for c in walk.below[node]))
        by_node[node] = parts[version]
    return by_node


def recorded_lineage(store: PinnedStore, key: str, partition: str | None, data_hash: str, *,
                     verify_objects: bool = False,
                     also: Iterable[tuple[str, str | None, str]] = (),
                     manifests: dict[tuple[str, str | None, str], Manifest] | None = None) -> RecordedLineage:
    """Walk the recorded versions beneath ``key``/``partition`` at ``data_hash`` (and beneath ``also``).

    An upstream reference names a version by data hash; the same bytes can have been written more than
    once from different inputs (a feature day whose value did not change when a vendor revised a day of
    its lookback). Each reference is resolved to the manifest its reader read: the newest of that data
    hash written at or before the reader's own manifest (the head the reader saw), else the newest of
    it. Versions with the same bytes and the same lineage beneath collapse into one; the same bytes
    over another lineage are another :class:`RecordedPartition` (another ``provenance``).

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
    walk = walk_upstream(ManifestResolver(store, verify_objects=verify_objects),
                         [(key, partition, data_hash), *also])
    by_node = recorded_partitions(walk, provenance_of(walk))
    if manifests is not None:
        for node, manifest in walk.read.items():  # the first walked of each data hash
            manifests.setdefault(node[:3], manifest)
    starts = walk.starts
    root = by_node[starts[0]] if starts and starts[0][:3] == (key, partition, data_hash) else None
    return RecordedLineage(root, tuple({p.version: p for p in by_node.values()}.values()), walk.lost)


def describe_lost(lost: Iterable[LostVersion], limit: int = 5) -> str:
    """One readable sentence naming the first lost versions."""
    items = list(lost)
    named = "; ".join(f"{v.label} ({v.data_hash}): {v.reason}" for v in items[:limit])
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"{len(items)} recorded version(s) are no longer stored: {named}{more}"
