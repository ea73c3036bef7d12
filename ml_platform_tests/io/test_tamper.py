"""The tamper suite: every manifest field edited in a head and in a history entry, objects reached only
through history damaged, forged heads with recomputed hashes; each named by ``verify``, refused on load,
``ml-platform verify`` exits 1."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner

from ml_platform.cli import main
from ml_platform.cli.store import dagster_materialized
from ml_platform.environment import EnvironmentLock, capture_environment
from ml_platform.errors import IntegrityError, ManifestTampered
from ml_platform.io.manager import PinnedIOManager
from ml_platform.io.manifest import UpstreamRef, WriteFacts, manifest_digest
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyResult, VerifyStatus, verify_store, verify_training_set
from ml_platform.window import DataWindow

KEY = "features/momentum"
DAY = "2012-01-03"


def frame(shift: float, rows: int = 5) -> pl.DataFrame:
    return pl.DataFrame({"day": [DAY] * rows, "value": [float(i) + shift for i in range(rows)]})


FACTS = WriteFacts(
    code_hash="sha256:" + "b" * 64, graph_hash="sha256:" + "c" * 64,
    upstream=(UpstreamRef("market/prices", "2012-01-02", "xxh3_128:" + "d" * 32),),
    seeds={"default": 42}, window=DataWindow.parse(DAY), run_id="run-1", params={"lookback": 20},
)


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    """Two versions of one partition: the older one is reached only through history."""
    store = PinnedStore(tmp_path / "storage")
    store.write(KEY, DAY, frame(0.0), FACTS)
    store.write(KEY, DAY, frame(1.0), FACTS)
    return store


def _other_environment() -> dict[str, Any]:
    lock = capture_environment().to_dict()
    lock["packages"]["polars"] = "0.0.1"
    return lock


#: one well-formed edit of every field a manifest records: (dotted field, new value)
EDITS: list[tuple[str, Any]] = [
    ("code_hash", "sha256:" + "f" * 64),
    ("graph_hash", None),
    ("seeds.default", 43),
    ("rows", 4),
    ("git.commit", "1" * 40),
    ("git.dirty", "toggle"),
    ("upstream.0.data_hash", "xxh3_128:" + "9" * 32),
    ("window.start", "2012-01-02"),
    ("run_id", "run-2"),
    ("written_at", "2020-01-01T00:00:00.000000+00:00"),
    ("writer.polars", "0.0.1"),
    ("params.lookback", 21),
    ("file.size", 1),
    ("file.hash", "xxh3_128:" + "0" * 32),
    ("previous", "sha256:" + "1" * 64),
    ("environment", _other_environment()),
]
IDS = [path for path, _ in EDITS]


def edit(path: Path, field: str, value: Any, *, rehash: bool = False) -> None:
    """Edit one field of the manifest at ``path`` (the environment together with its hash, as a forger would)."""
    record = json.loads(path.read_text())
    *parents, last = field.split(".")
    target = record
    for name in parents:
        target = target[int(name)] if isinstance(target, list) else target[name]
    slot = int(last) if isinstance(target, list) else last
    target[slot] = (not target[slot]) if value == "toggle" else value
    if field == "environment":
        record["environment_hash"] = EnvironmentLock.from_dict(value).hash
    if rehash:
        record["manifest_hash"] = manifest_digest(record)
    path.write_text(json.dumps(record, indent=2, sort_keys=True))


def failures(store: PinnedStore, **kwargs: Any) -> list[VerifyResult]:
    return [row for row in verify_store(store, **kwargs) if not row.ok]


def head(store: PinnedStore) -> Path:
    return Path(store.manifest_path(KEY, DAY))


def older_entry(store: PinnedStore) -> Path:
    return Path(store.base, store.history_entries(KEY, DAY)[0][0])


@pytest.mark.parametrize(("field", "value"), EDITS, ids=IDS)
def test_an_edited_head_field_is_named_by_verify_and_refused_on_load(store: PinnedStore, field: str,
                                                                     value: Any) -> None:
    edit(head(store), field, value)
    [row] = failures(store)
    assert (row.key, row.partition, row.status) == (KEY, DAY, VerifyStatus.TAMPERED)
    assert "its fields hash to" in row.detail and "but it records manifest_hash" in row.detail
    named = row.detail.rpartition("differs from its history entry ")[2]
    assert field.split(".")[0] in named  # the edited field, found by comparing with the head's own history copy
    with pytest.raises(ManifestTampered, match=f"HEAD.json of {KEY} partition {DAY}: its fields hash to"):
        store.read(KEY, DAY)


@pytest.mark.parametrize(("field", "value"), EDITS, ids=IDS)
def test_an_edited_history_field_is_named_by_verify_and_refused_on_load(store: PinnedStore, field: str,
                                                                        value: Any) -> None:
    old = store.history(KEY, DAY)[0]
    entry = older_entry(store)
    edit(entry, field, value)
    [row] = failures(store)
    assert (row.key, row.partition, row.status) == (KEY, DAY, VerifyStatus.TAMPERED)
    assert row.detail.startswith(f"history entry: [MANIFEST_TAMPERED] manifest {entry} of {KEY} partition {DAY}")
    assert failures(store, heads_only=True) == []  # the quick pass reads heads only
    with pytest.raises(ManifestTampered, match="its fields hash to"):
        store.read(KEY, DAY, data_hash=old.data_hash)


@pytest.mark.parametrize(("field", "value"), EDITS, ids=IDS)
def test_an_edited_field_of_the_heads_own_history_entry_is_named_against_the_head(store: PinnedStore, field: str,
                                                                                 value: Any) -> None:
    entry = Path(store.base, store.history_entries(KEY, DAY)[-1][0])
    edit(entry, field, value)
    [row] = failures(store)
    assert (row.status, row.data_hash) == (VerifyStatus.TAMPERED, store.manifest(KEY, DAY).data_hash)
    assert row.detail.startswith(f"history entry: [MANIFEST_TAMPERED] manifest {entry} of {KEY} partition {DAY}")
    named = row.detail.rpartition(f"; it differs from the head {head(store)} in: ")[2]
    assert named.split(", ")[0].startswith(field.split(".")[0])
    assert store.read(KEY, DAY).manifest.rows == 5  # the head itself is intact


@pytest.mark.parametrize(("field", "value"), EDITS[:6], ids=IDS[:6])
def test_a_forged_head_with_a_recomputed_hash_is_named_by_its_own_history_copy(store: PinnedStore, field: str,
                                                                              value: Any) -> None:
    """A forger who knows the (public) scheme recomputes the hash: the head's history copy still disagrees."""
    edit(head(store), field, value, rehash=True)
    [row] = failures(store)
    assert row.status is VerifyStatus.TAMPERED
    assert "record the same version differently, in: " + field in row.detail


def test_an_object_reached_only_through_history_is_rehashed(store: PinnedStore) -> None:
    old = store.history(KEY, DAY)[0]
    path = Path(store.data_path(old))
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    [row] = failures(store)
    assert (row.status, row.data_hash) == (VerifyStatus.CORRUPT, old.data_hash)
    assert row.detail.startswith(f"history entry {older_entry(store)}: [INTEGRITY_ERROR] {path} does not hold")
    assert failures(store, heads_only=True) == []
    with pytest.raises(IntegrityError, match="does not hold the bytes its manifest records"):
        store.read(KEY, DAY, data_hash=old.data_hash)


def test_the_command_names_each_tampered_manifest_and_exits_1(store: PinnedStore) -> None:
    edit(head(store), "rows", 4)
    edit(older_entry(store), "seeds.default", 7)
    args = ["verify", "--base-dir", store.base, "--no-dagster", "--no-registry"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.output.count(f"TAMPERED  {KEY}  {DAY}") == 2
    assert "differs from its history entry" in result.output and "in: rows" in result.output
    quick = CliRunner().invoke(main, [*args, "--heads-only"])
    assert quick.exit_code == 1 and quick.output.count(f"TAMPERED  {KEY}") == 1


def test_verify_reads_every_history_entry_and_passes_an_intact_store(store: PinnedStore) -> None:
    store.write(KEY, DAY, frame(2.0), FACTS)
    rows = verify_store(store)
    assert [(row.status, row.rows) for row in rows] == [(VerifyStatus.OK, 5)]


# --- the anchor in Dagster's materialization --------------------------------------------------------

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2012-01-02", end_date="2012-01-06")


@dg.asset(partitions_def=PARTITIONS, key_prefix=["market"])
def prices(context) -> pl.DataFrame:  # type: ignore[no-untyped-def]  # dagster reads the bare name
    return pl.DataFrame({"day": [context.partition_key], "run": [context.run.run_id]})


def materialize(home: Path, storage: Path) -> None:
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        result = dg.materialize([prices], partition_key=DAY, instance=instance,
                                resources={"io_manager": PinnedIOManager(base_dir=str(storage))})
        assert result.success
    finally:
        instance.dispose()


def test_a_consistently_forged_head_is_caught_by_dagsters_anchor(tmp_path: Path) -> None:
    """Head and its history copy both rewritten, hash recomputed: only the hash Dagster recorded disagrees."""
    home, storage = tmp_path / "dagster_home", tmp_path / "storage"
    home.mkdir()
    materialize(home, storage)
    materialize(home, storage)
    store = PinnedStore(storage)
    recorded = dagster_materialized(str(home), store)
    assert recorded.materialized == {("market/prices", DAY): store.manifest("market/prices", DAY).manifest_hash}
    assert sorted(recorded.by_run.values()) == sorted(m.manifest_hash for m in store.history("market/prices", DAY))
    assert {(key, partition) for key, partition, _ in recorded.by_run} == {("market/prices", DAY)}
    args = ["verify", "--base-dir", str(storage), "--dagster-home", str(home), "--no-registry"]
    assert CliRunner().invoke(main, args).exit_code == 0
    # a write outside Dagster moves the head on: its chain still leads to the anchored version
    store.write("market/prices", DAY, pl.DataFrame({"day": [DAY], "run": ["by hand"]}))
    assert CliRunner().invoke(main, args).exit_code == 0
    current = Path(store.manifest_path("market/prices", DAY))
    record = json.loads(current.read_text())
    own = Path(store.base, "refs/market/prices", f"@{DAY}", "history",
               next(rel for rel, _, data_hash in store.history_entries("market/prices", DAY)
                    if data_hash == record["data_hash"]).rpartition("/")[2])
    for path in (current, own):
        edit(path, "previous", None, rehash=True)  # cut the chain: the anchored versions no longer lead here
    assert [row.status for row in verify_store(store)] == [VerifyStatus.OK]  # the store alone cannot tell
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert f"TAMPERED  market/prices  {DAY}" in result.output
    assert "Dagster's latest materialization records manifest hash" in result.output
    quick = CliRunner().invoke(main, [*args, "--heads-only"])
    assert quick.exit_code == 1 and "TAMPERED" in quick.output


def test_the_anchor_is_the_head_or_reached_through_its_chain(store: PinnedStore) -> None:
    """``anchors``: the manifest hash the orchestrator recorded for the partition, checked without Dagster."""
    first, second = store.history(KEY, DAY)
    for anchor in (second.manifest_hash, first.manifest_hash):
        assert [row.status for row in verify_store(store, anchors={(KEY, DAY): anchor})] == [VerifyStatus.OK]
        assert [row.status for row in verify_store(store, anchors={(KEY, DAY): anchor}, heads_only=True)] == [
            VerifyStatus.OK]
    unknown = "sha256:" + "7" * 64
    for heads_only in (False, True):
        [row] = verify_store(store, anchors={(KEY, DAY): unknown}, heads_only=heads_only)
        assert (row.status, row.data_hash) == (VerifyStatus.TAMPERED, second.data_hash)
        assert row.detail == (
            f"Dagster's latest materialization records manifest hash {unknown}, but the head records "
            f"{second.manifest_hash} and its chain of previous versions does not lead there: the head or its "
            "history was rewritten outside Dagster - trust neither, re-materialize")
    assert verify_store(store, anchors={("other", DAY): unknown})[0].status is VerifyStatus.OK


def test_a_history_entry_rewritten_with_a_recomputed_hash_is_caught_by_its_runs_anchor(store: PinnedStore) -> None:
    first, second = store.history(KEY, DAY)
    runs = {(KEY, DAY, "run-1"): first.manifest_hash, ("other", DAY, "run-1"): "sha256:" + "7" * 64}
    assert [row.status for row in verify_store(store, run_anchors=runs)] == [VerifyStatus.OK]
    edit(older_entry(store), "seeds.default", 7, rehash=True)  # a forger who knows the scheme
    assert [row.status for row in verify_store(store)] == [VerifyStatus.OK]  # the store alone cannot tell
    [head_row, row] = verify_store(store, run_anchors=runs)
    assert head_row.status is VerifyStatus.OK
    forged = store.history(KEY, DAY)[0].manifest_hash
    assert (row.status, row.data_hash) == (VerifyStatus.TAMPERED, None)  # which of the run's entries: unknown
    stored = f"{forged}, {second.manifest_hash}"  # oldest first
    assert row.detail == (f"Dagster's materialization of run run-1 records manifest hash {first.manifest_hash}, but "
                          f"the history entries of that run record {stored}: a version was rewritten with a "
                          "recomputed hash - trust none of them, re-materialize")
    assert [r.status for r in verify_store(store, run_anchors=runs, heads_only=True)] == [VerifyStatus.OK]
    other_run = {(KEY, DAY, "run-2"): first.manifest_hash}  # a run with no entry left here: collected, not judged
    assert [r.status for r in verify_store(store, run_anchors=other_run)] == [VerifyStatus.OK]
    store.write(KEY, DAY, frame(2.0), dataclasses.replace(FACTS, run_id="run-3"))
    [_, _, one] = verify_store(store, run_anchors={**runs, (KEY, DAY, "run-3"): first.manifest_hash})
    assert (one.status, one.data_hash) == (VerifyStatus.TAMPERED, store.manifest(KEY, DAY).data_hash)


def test_verify_training_set_names_each_way_a_registered_training_set_can_fail(tmp_path: Path) -> None:
    store = PinnedStore(tmp_path / "storage")
    first = store.write("train", None, frame(0.0))
    second = store.write("train", None, frame(1.0))
    ok = verify_training_set(store, "alpha v1", first.data_hash, first.manifest_hash)
    assert (ok.key, ok.partition, ok.status, ok.rows, ok.data_hash) == (
        "registry:alpha v1", None, VerifyStatus.OK, 5, first.data_hash)
    assert ok.detail == f"its training set is stored and re-hashes to its manifest {first.manifest_hash}"
    assert ok.manifest_path == store.object_path(first.data_hash)
    untagged = verify_training_set(store, "alpha v1", first.data_hash, None)
    assert untagged.status is VerifyStatus.OK
    other = verify_training_set(store, "alpha v1", first.data_hash, second.manifest_hash)
    assert other.status is VerifyStatus.TAMPERED
    assert other.detail.startswith(f"the registry tagged this version's training set with manifest hash "
                                   f"{second.manifest_hash}, but no stored manifest of {first.data_hash} has it "
                                   f"(stored: {first.manifest_hash})")
    path = Path(store.data_path(first))
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    corrupt = verify_training_set(store, "alpha v1", first.data_hash, first.manifest_hash)
    assert corrupt.status is VerifyStatus.CORRUPT and "does not hold the bytes its manifest records" in corrupt.detail
    path.unlink()
    lost = verify_training_set(store, "alpha v1", first.data_hash, first.manifest_hash)
    assert (lost.status, lost.data_hash) == (VerifyStatus.MISSING_OBJECT, first.data_hash)
    assert lost.detail == (f"the training set {first.data_hash} this registered version was trained on is not in "
                           "the store: it was collected or lost, and the version can no longer be reproduced")


def test_verify_training_set_without_a_manifest_that_verifies(tmp_path: Path) -> None:
    store = PinnedStore(tmp_path / "storage")
    training = store.write("train", None, frame(0.0))
    entry = Path(store.base, store.history_entries("train", None)[0][0])
    entry.unlink()
    Path(store.manifest_path("train", None)).unlink()
    bare = verify_training_set(store, "m v1", training.data_hash, None)
    assert bare.status is VerifyStatus.MANIFEST
    assert bare.detail.startswith(f"no manifest of the training set {training.data_hash} remains in the store")
    store.write("train", None, frame(0.0))  # recorded again: the same content, a new manifest
    edit(Path(store.base, store.history_entries("train", None)[0][0]), "rows", 4)
    edited = verify_training_set(store, "m v1", training.data_hash, None)
    assert edited.status is VerifyStatus.TAMPERED and "its fields hash to" in edited.detail
    tagged = verify_training_set(store, "m v1", training.data_hash, training.manifest_hash)
    assert tagged.status is VerifyStatus.TAMPERED and "(stored: none that verifies)" in tagged.detail
    assert "; [MANIFEST_TAMPERED] manifest" in tagged.detail


def test_an_older_dagster_version_rewritten_with_a_recomputed_hash_is_caught_by_its_run(tmp_path: Path) -> None:
    home, storage = tmp_path / "dagster_home", tmp_path / "storage"
    home.mkdir()
    materialize(home, storage)
    materialize(home, storage)
    store = PinnedStore(storage)
    older = store.history("market/prices", DAY)[0]
    edit(Path(store.base, store.history_entries("market/prices", DAY)[0][0]), "rows", 2, rehash=True)
    args = ["verify", "--base-dir", str(storage), "--dagster-home", str(home), "--no-registry"]
    assert CliRunner().invoke(main, [*args, "--no-dagster"]).exit_code == 0  # the store alone cannot tell
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert f"TAMPERED  market/prices  {DAY}" in result.output
    assert f"Dagster's materialization of run {older.run_id} records manifest hash {older.manifest_hash}" in (
        result.output)
