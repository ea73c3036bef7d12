"""The trace's steps that need no Dagster run: what lies beneath a signal, in order, and the notes.

Versions are written to a store directly; ledger entries are built as values.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from ml_platform import PinnedStore
from ml_platform.champions.entry import GENESIS_HASH, LedgerEntry
from ml_platform.io.manifest import Manifest, UpstreamRef, WriteFacts
from ml_platform.trace import resolve
from ml_platform.trace.locate import LocatedSignal
from ml_platform.trace.service import stored_beneath, trace_notes

D1, D2 = "2024-01-02", "2024-01-03"
GRAPH = "sha256:" + "a" * 64


def frame(value: float) -> pl.DataFrame:
    return pl.DataFrame({"value": [float(value), value + 1.0]})


def ref(manifest: Manifest) -> UpstreamRef:
    return UpstreamRef(manifest.asset_key, manifest.partition, manifest.data_hash)


def upon(*manifests: Manifest, graph_hash: str | None = None) -> WriteFacts:
    return WriteFacts(upstream=tuple(ref(m) for m in manifests), graph_hash=graph_hash)


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    return PinnedStore(tmp_path / "store")


def test_beneath_a_signal_the_model_input_comes_first_then_features_by_node_then_sources(store: PinnedStore) -> None:
    bars = {d: store.write("bars", d, frame(i)) for i, d in enumerate((D1, D2))}
    ret = {d: store.write("ret", d, frame(10 + i), upon(bars[d])) for i, d in enumerate((D1, D2))}
    mom = store.write("mom", D2, frame(20), upon(ret[D1], ret[D2]))
    inputs = store.write("inputs", D2, frame(30), upon(mom, bars[D2]))
    signal = store.write("live_signals", D2, frame(40), upon(inputs))
    lineage, manifests = resolve.traced_lineage(store, signal)

    beneath = stored_beneath(store, signal, lineage, manifests)
    assert [(v.key, v.partition, v.role) for v in beneath.features] == [
        ("inputs", D2, "model_input"), ("mom", D2, "feature"), ("ret", D1, "feature"), ("ret", D2, "feature")]
    assert [(v.key, v.partition, v.role) for v in beneath.sources] == [("bars", D1, "source"), ("bars", D2, "source")]
    assert beneath.sources[1].data_hash == bars[D2].data_hash  # read by two nodes, listed once


def test_the_same_bytes_over_two_lineages_are_listed_once(store: PinnedStore) -> None:
    delivered = store.write("bars", D1, frame(1))
    first = store.write("ret", D1, frame(5), upon(delivered))
    mom = store.write("mom", D1, frame(6), upon(first))  # read ret before the vendor revised bars
    revised = store.write("bars", D1, frame(2))
    again = store.write("ret", D1, frame(5), upon(revised))  # the same bytes, from the revision
    inputs = store.write("inputs", D1, frame(7), upon(mom, again))
    signal = store.write("live_signals", D1, frame(8), upon(inputs))
    lineage, manifests = resolve.traced_lineage(store, signal)
    assert len([p for p in lineage.partitions if p.key == "ret"]) == 2

    beneath = stored_beneath(store, signal, lineage, manifests)
    assert [(v.key, v.role) for v in beneath.features] == [("inputs", "model_input"), ("mom", "feature"),
                                                            ("ret", "feature")]
    assert {v.data_hash for v in beneath.sources} == {delivered.data_hash, revised.data_hash}


def _located(signal: Manifest, others: tuple[tuple[str, str], ...] = ()) -> LocatedSignal:
    return LocatedSignal(signal, others, frame(0), "m", "1")


def _in_force(note: str | None) -> resolve.InForce:
    entry = LedgerEntry(model="m", seq=1, kind="promotion", from_version=None, to_version="1", actor="a",
                        approver=None, reason="r", report_ref=None, report_sha256=None, rationale_ref=None,
                        rationale_sha256=None, override=False, recorded_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                        prev_hash=GENESIS_HASH, entry_hash="sha256:" + "1" * 64)
    return resolve.InForce(entry, None, note)


def test_a_plain_trace_has_no_notes_and_each_surprise_has_its_own(store: PinnedStore) -> None:
    inputs = store.write("inputs", D1, frame(1), upon(graph_hash=GRAPH))
    signal = store.write("live_signals", D1, frame(2), upon(inputs))
    assert trace_notes(_located(signal), _in_force(None), inputs, GRAPH, None) == ()

    other = "sha256:" + "b" * 64
    notes = trace_notes(_located(signal, (("2024-01-04T00:00:00", "xxh3_128:" + "c" * 32),)),
                        _in_force("the champion moved"), inputs, other, "the training set is gone")
    assert notes[0] == "the champion moved"
    assert f"computed by feature graph {GRAPH}, not the {other}" in notes[1]
    assert "1 other recorded version(s)" in notes[2] and f"written at {signal.written_at}" in notes[2]
    assert notes[3] == "the training set is gone"
    assert len(notes) == 4
