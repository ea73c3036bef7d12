"""The recorded lineage's steps one by one on a small real store: resolve a reference, walk, provenance, partitions."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ml_platform.io.layout import object_rel
from ml_platform.io.manifest import Manifest, UpstreamRef, WriteFacts
from ml_platform.io.recorded_lineage import (
    ManifestResolver,
    provenance_of,
    recorded_partitions,
    walk_upstream,
)
from ml_platform.io.store import PinnedStore

DAY = "2024-01-02"
UNKNOWN = "xxh3_128:" + "0" * 32


def frame(value: float) -> pl.DataFrame:
    return pl.DataFrame({"value": [value, value + 1.0]})


def ref(manifest: Manifest) -> UpstreamRef:
    return UpstreamRef(manifest.asset_key, manifest.partition, manifest.data_hash)


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    return PinnedStore(tmp_path / "store")


def test_the_resolver_picks_the_version_its_reader_saw_else_the_newest(store: PinnedStore) -> None:
    delivered = store.write("bars", DAY, frame(1.0))
    first = store.write("f", DAY, frame(5.0), WriteFacts(upstream=(ref(delivered),)))
    revised = store.write("bars", DAY, frame(2.0))
    second = store.write("f", DAY, frame(5.0), WriteFacts(upstream=(ref(revised),)))  # the same bytes again
    assert first.data_hash == second.data_hash and first.written_at < second.written_at
    resolver = ManifestResolver(store, verify_objects=True)
    between = store.write("reader", DAY, frame(9.0)).written_at  # a reader written after both
    assert resolver.resolve("f", DAY, first.data_hash, None).written_at == second.written_at
    assert resolver.resolve("f", DAY, first.data_hash, between).written_at == second.written_at
    assert resolver.resolve("f", DAY, first.data_hash, revised.written_at).written_at == first.written_at
    assert resolver.resolve("f", DAY, first.data_hash, first.written_at).written_at == first.written_at  # at: saw it
    too_early = delivered.written_at  # a reader older than every version of it: the newest
    assert resolver.resolve("f", DAY, first.data_hash, too_early).written_at == second.written_at
    assert resolver.lost == ()


def test_the_resolver_remembers_a_lost_version_with_why_and_does_not_retry(store: PinnedStore) -> None:
    bars = store.write("bars", DAY, frame(1.0))
    resolver = ManifestResolver(store, verify_objects=False)
    assert resolver.resolve("bars", DAY, UNKNOWN, None) is None
    store.filesystem.delete(object_rel(bars.data_hash))
    assert resolver.resolve("bars", DAY, bars.data_hash, None) is None
    assert resolver.resolve("bars", DAY, bars.data_hash, None) is None  # once in lost
    assert [(v.data_hash, "missing" in v.reason) for v in resolver.lost] == [(UNKNOWN, False),
                                                                              (bars.data_hash, True)]


def test_the_walk_resolves_each_reference_and_keeps_a_lost_one_as_a_hole(store: PinnedStore) -> None:
    bars = store.write("bars", DAY, frame(1.0))
    gone = store.write("bars", "2024-01-03", frame(3.0))
    feature = store.write("f", DAY, frame(5.0), WriteFacts(upstream=(ref(bars), ref(gone))))
    store.filesystem.delete(object_rel(gone.data_hash))
    walk = walk_upstream(ManifestResolver(store, verify_objects=False),
                         [("f", DAY, feature.data_hash), ("x", None, UNKNOWN)])
    f_node = ("f", DAY, feature.data_hash, feature.written_at)
    bars_node = ("bars", DAY, bars.data_hash, bars.written_at)
    assert walk.starts == (f_node,)  # the unknown start is lost, not started from
    assert list(walk.read) == [f_node, bars_node]
    assert walk.below == {f_node: (bars_node, None), bars_node: ()}
    assert [v.data_hash for v in walk.lost] == [UNKNOWN, gone.data_hash]  # the starts are resolved first


def test_the_same_bytes_over_two_lineages_are_two_partitions_and_a_lost_input_changes_provenance(
        store: PinnedStore) -> None:
    delivered = store.write("bars", DAY, frame(1.0))
    first = store.write("f", DAY, frame(5.0), WriteFacts(upstream=(ref(delivered),)))
    early = store.write("sig", DAY, frame(7.0), WriteFacts(upstream=(ref(first),)))  # before the revision
    revised = store.write("bars", DAY, frame(2.0))
    second = store.write("f", DAY, frame(5.0), WriteFacts(upstream=(ref(revised),)))
    late = store.write("sig", "2024-01-03", frame(8.0), WriteFacts(upstream=(ref(second),)))
    walk = walk_upstream(ManifestResolver(store, verify_objects=False),
                         [(m.asset_key, m.partition, m.data_hash) for m in (early, late)])
    provenance = provenance_of(walk)
    assert {provenance[n] for n in walk.read if n[0] == "bars"} == {""}  # sources
    by_node = recorded_partitions(walk, provenance)
    twins = {p.version: p for n, p in by_node.items() if n[0] == "f"}
    assert len(twins) == 2  # the same data hash, two lineages
    assert {p.upstream_provenance for p in twins.values()} == {("",)}
    assert len({provenance[n] for n in walk.read if n[0] == "sig"}) == 2

    store.filesystem.delete(object_rel(delivered.data_hash))
    broken = walk_upstream(ManifestResolver(store, verify_objects=False), [("sig", DAY, early.data_hash)])
    holed = recorded_partitions(broken, provenance_of(broken))
    f_node = ("f", DAY, first.data_hash, first.written_at)
    assert holed[f_node].upstream_provenance == ("lost",)
    assert holed[f_node].provenance != by_node[f_node].provenance
