"""Source data as delivered: seed a reproduction's isolated store with the recorded source versions.

A source node (no upstream: market data, a vendor file) is not recomputed: the vendor may have revised
its file since. Its recorded object is read from the production store by data hash, verified, and
written into the reproduction's own store under the reproduction's key, with the recorded environment,
code and graph hashes, seeds, window and params, so that the old code reads exactly what production
read. The production store is only read. Pure store work: no Dagster, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ml_platform.errors import MLPlatformError, ReproductionFailed
from ml_platform.io.manifest import WriteFacts
from ml_platform.io.recorded_lineage import LostVersion, RecordedLineage, describe_lost
from ml_platform.io.store import PinnedStore

__all__ = ["SeedReport", "seed_sources"]


@dataclass(frozen=True)
class SeedReport:
    """What :func:`seed_sources` wrote: ``(reproduction key, partition, data hash)`` per source version."""

    seeded: tuple[tuple[str, str | None, str], ...]
    target: str

    def __len__(self) -> int:
        return len(self.seeded)


def seed_sources(production: PinnedStore, target: PinnedStore, lineage: RecordedLineage, *,
                 key_map: Callable[[str], str] = lambda key: key) -> SeedReport:
    """Write every recorded source version of ``lineage`` into ``target`` (under ``key_map(key)``).

    Raises:
        ReproductionFailed: the lineage is incomplete (a recorded version was collected or lost: named),
            a source object no longer verifies, or ``target`` is the production store itself. Nothing
            is written to ``production``; ``target`` is written only once every source verified.
    """
    if target.base == production.base:
        raise ReproductionFailed(f"the reproduction store {target.base} is the production store; reproduce into "
                                 "an isolated store (its own work directory) so no production artefact can change")
    if lineage.root is None or lineage.lost:
        lost = lineage.lost or (LostVersion("?", None, "?", "the root is missing"),)
        raise ReproductionFailed("cannot reproduce from the record: " + describe_lost(lost)
                                 + "; these versions cannot be recovered from this store")
    frames = []
    for source in lineage.sources():
        try:
            stored = production.read(source.key, source.partition, data_hash=source.data_hash)
        except MLPlatformError as exc:
            raise ReproductionFailed(f"the recorded source {source.label} ({source.data_hash}) cannot be read as "
                                     f"delivered: {exc}") from exc
        frames.append((source, stored))
    seeded = []
    for source, stored in frames:
        manifest = stored.manifest
        writer = PinnedStore(target.base, compression=target.compression, environment=manifest.environment,
                             project_root=target.project_root)
        facts = WriteFacts(code_hash=manifest.code_hash, graph_hash=manifest.graph_hash, seeds=manifest.seeds,
                           window=manifest.window, params=manifest.params,
                           run_id=f"seeded as delivered from {production.base} ({manifest.written_at})")
        key = key_map(source.key)
        written = writer.write(key, source.partition, stored.frame, facts)
        if written.data_hash != source.data_hash:  # the content hash of what was read: a bug if it differs
            raise ReproductionFailed(f"seeding {source.label} wrote data hash {written.data_hash}, not the recorded "
                                     f"{source.data_hash}")
        seeded.append((key, source.partition, written.data_hash))
    return SeedReport(tuple(seeded), target.base)
