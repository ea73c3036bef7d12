"""``verify_store`` row by row: every status, each row whole, the selection by key and partition, the
cross-check against what an orchestrator recorded, and the listing a verify and gc share.

The CLI tests (``test_commands.py``, ``test_gc.py``) read verify's table; these read its rows.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from ml_platform.environment import EnvironmentPolicy, capture_environment
from ml_platform.environment.diff import EnvironmentDiff
from ml_platform.errors import ConfigurationError, ManifestError
from ml_platform.io.layout import head_rel, object_rel
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import StoreIndex, VerifyResult, VerifyStatus, index_store, verify_store

KEY = "features/momentum"
DAY = "2012-01-03"


def frame(value: float) -> pl.DataFrame:
    return pl.DataFrame({"value": [value, value + 1.0, value + 2.0]})


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    return PinnedStore(tmp_path / "storage")


def statuses(results: list[VerifyResult]) -> list[tuple[str, str | None, VerifyStatus]]:
    return [(r.key, r.partition, r.status) for r in results]


def test_which_statuses_fail() -> None:
    passing = {VerifyStatus.OK, VerifyStatus.ENVIRONMENT_DIFFERS}
    for status in VerifyStatus:
        row = VerifyResult("k", None, status, "d", "p")
        assert row.ok is (status in passing), status
        assert row.rows is None and row.data_hash is None and row.environment_diff.is_empty
    assert [s.value for s in VerifyStatus] == ["ok", "env-differs", "env-mismatch", "corrupt", "bad-manifest",
                                              "missing", "missing-head", "missing-object", "unrecorded",
                                              "changed-during-read", "tampered"]


def test_an_intact_store_verifies_row_by_row_in_key_and_partition_order(store: PinnedStore) -> None:
    for day in ("2012-01-04", DAY):
        store.write(KEY, day, frame(1.0))
    universe = store.write("universe", None, frame(0.0))
    store.write("a_first", "z", frame(2.0))
    results = verify_store(store)
    assert statuses(results) == [("a_first", "z", VerifyStatus.OK), (KEY, DAY, VerifyStatus.OK),
                                 (KEY, "2012-01-04", VerifyStatus.OK), ("universe", None, VerifyStatus.OK)]
    last = results[-1]
    assert last == VerifyResult("universe", None, VerifyStatus.OK, "verified",
                                store.filesystem.uri(head_rel("universe", None)), rows=3,
                                data_hash=universe.data_hash, environment_diff=EnvironmentDiff(()))


def test_a_key_or_one_partition_is_verified_alone(store: PinnedStore) -> None:
    store.write(KEY, DAY, frame(1.0))
    store.write(KEY, "2012-01-04", frame(1.0))
    store.write("universe", None, frame(0.0))
    assert statuses(verify_store(store, KEY)) == [(KEY, DAY, VerifyStatus.OK), (KEY, "2012-01-04", VerifyStatus.OK)]
    assert statuses(verify_store(store, KEY, "2012-01-04")) == [(KEY, "2012-01-04", VerifyStatus.OK)]
    assert statuses(verify_store(store, KEY, "2012-01-09")) == [(KEY, "2012-01-09", VerifyStatus.MISSING)]
    missing = verify_store(store, KEY, "2012-01-09")[0]
    assert missing.detail == f"nothing is stored for {KEY} partition 2012-01-09" and not missing.ok
    with pytest.raises(ConfigurationError, match=r"verify: a partition needs an asset key too, e\.g\. `verify "
                                                 r"momentum --partition 2012-01-03`"):
        verify_store(store, partition=DAY)
    with pytest.raises(ConfigurationError, match=r"unknown asset key 'nope': nothing is stored under .* for it "
                                                 r"\(known keys: features/momentum, universe\)"):
        verify_store(store, "nope")
    with pytest.raises(ConfigurationError, match=r"\(known keys: none\)"):
        verify_store(PinnedStore(Path(store.base).parent / "empty"), "nope")
    with pytest.raises(ConfigurationError):
        verify_store(store, "bad key!")


def test_what_the_orchestrator_recorded_but_the_store_lacks_is_unrecorded(store: PinnedStore) -> None:
    store.write(KEY, DAY, frame(1.0))
    expected = [(KEY, DAY), (KEY, "2012-01-05"), ("labels", None), ("labels", "2012-01-06")]
    results = verify_store(store, expected=iter(expected))
    assert statuses(results) == [(KEY, DAY, VerifyStatus.OK), (KEY, "2012-01-05", VerifyStatus.UNRECORDED),
                                 ("labels", None, VerifyStatus.UNRECORDED),
                                 ("labels", "2012-01-06", VerifyStatus.UNRECORDED)]
    unrecorded = results[1]
    assert unrecorded.detail == (f"Dagster recorded {KEY} partition 2012-01-05 as materialized, but the store has no "
                                 "head or history for it")
    assert unrecorded.manifest_path == store.filesystem.uri(head_rel(KEY, "2012-01-05"))
    assert results[2].detail.startswith("Dagster recorded labels as materialized")
    assert statuses(verify_store(store, "labels", expected=expected)) == [
        ("labels", None, VerifyStatus.UNRECORDED), ("labels", "2012-01-06", VerifyStatus.UNRECORDED)]
    assert statuses(verify_store(store, KEY, "2012-01-05", expected=expected)) == [
        (KEY, "2012-01-05", VerifyStatus.UNRECORDED)]


def test_a_deleted_head_with_history_is_missing_head_naming_its_newest_version(store: PinnedStore) -> None:
    store.write(KEY, DAY, frame(1.0))
    newest = store.write(KEY, DAY, frame(2.0))
    Path(store.base, head_rel(KEY, DAY)).unlink()
    row, = verify_store(store)
    path = store.filesystem.uri(head_rel(KEY, DAY))
    assert row == VerifyResult(KEY, DAY, VerifyStatus.MISSING_HEAD,
                               f"the head {path} is missing although history records 2 version(s) (newest "
                               f"{newest.data_hash}): the head was deleted - re-materialize {KEY} partition {DAY}",
                               path)


def test_lost_objects_are_reported_once_each_the_heads_by_its_row(store: PinnedStore) -> None:
    old = store.write("universe", None, frame(1.0))
    head = store.write("universe", None, frame(2.0))
    Path(store.base, object_rel(old.data_hash)).unlink()
    rows = verify_store(store)
    path = store.filesystem.uri(head_rel("universe", None))
    assert [r.status for r in rows] == [VerifyStatus.OK, VerifyStatus.MISSING_OBJECT]
    assert rows[1].data_hash == old.data_hash and rows[1].manifest_path == path
    assert rows[1].detail.startswith("history entry ") and rows[1].detail.endswith(
        f"names data hash {old.data_hash}, whose object {store.object_path(old.data_hash)} is missing; that version "
        "is lost")
    Path(store.base, object_rel(head.data_hash)).unlink()
    rows = verify_store(store)
    assert [r.status for r in rows] == [VerifyStatus.MISSING_OBJECT, VerifyStatus.MISSING_OBJECT]
    assert rows[0].detail == (f"the object {store.data_path(head)} the head names (data hash {head.data_hash}) is "
                              "missing - re-materialize universe")
    assert rows[1].data_hash == old.data_hash  # the head's own history entry is not reported a second time
    Path(store.base, head_rel("universe", None)).unlink()
    rows = verify_store(store)
    assert [r.status for r in rows] == [VerifyStatus.MISSING_HEAD, VerifyStatus.MISSING_OBJECT,
                                        VerifyStatus.MISSING_OBJECT]


def test_an_unreadable_head_and_corrupt_bytes_are_named(store: PinnedStore) -> None:
    store.write(KEY, DAY, frame(1.0))
    damaged = store.write(KEY, "2012-01-04", frame(5.0))
    Path(store.base, head_rel(KEY, DAY)).write_text("{torn")
    data = Path(store.data_path(damaged))
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0xFF
    data.write_bytes(bytes(content))
    manifest_row, corrupt_row = verify_store(store)
    assert manifest_row.status is VerifyStatus.MANIFEST and "HEAD.json" in manifest_row.detail
    assert corrupt_row.status is VerifyStatus.CORRUPT and str(data) in corrupt_row.detail
    assert corrupt_row.rows is None and corrupt_row.data_hash is None


def test_an_environment_difference_warns_or_fails_by_policy_and_is_not_compared_when_off(store: PinnedStore) -> None:
    lock = capture_environment()
    old = dataclasses.replace(lock, packages=tuple((n, "0.0.1" if n == "polars" else v) for n, v in lock.packages))
    PinnedStore(store.base, environment=old).write("old_env", None, frame(1.0))
    warned, = verify_store(PinnedStore(store.base, environment=lock))
    running = lock.package_versions["polars"]
    assert warned.status is VerifyStatus.ENVIRONMENT_DIFFERS and warned.ok
    assert warned.detail == f"1 environment difference(s): package polars: 0.0.1 -> {running}"
    assert warned.environment_diff.differences == (f"package polars: 0.0.1 -> {running}",)
    assert warned.rows == 3
    strict, = verify_store(PinnedStore(store.base, policy="strict", environment=lock))
    assert strict.status is VerifyStatus.ENVIRONMENT_MISMATCH and not strict.ok and strict.detail == warned.detail
    off, = verify_store(PinnedStore(store.base, policy=EnvironmentPolicy.OFF, environment=lock))
    assert (off.status, off.detail, off.environment_diff.is_empty) == (VerifyStatus.OK, "verified", True)


def test_a_store_of_the_old_layout_is_refused(store: PinnedStore) -> None:
    store.write(KEY, DAY, frame(1.0))
    old = Path(store.base, "features", "momentum", "2012-01-02.manifest.json")
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    Path(store.base, "features", "momentum", ".2012-01-01.manifest.json.tmp-1").write_text("{}")
    with pytest.raises(ManifestError, match=r"holds 1 manifest\(s\) of the ml_platform.manifest/v1 layout \(e\.g\. "
                                            r".*2012-01-02\.manifest\.json\); this ml_platform reads only "
                                            r"ml_platform\.manifest/v3 - re-materialize into a new storage directory"):
        verify_store(store)


def test_the_listing_separates_heads_history_objects_and_temporaries(store: PinnedStore) -> None:
    first = store.write(KEY, DAY, frame(1.0))
    second = store.write(KEY, DAY, frame(2.0))
    store.write("universe", None, frame(0.0))
    Path(store.base, head_rel("universe", None)).unlink()
    root = Path(store.base)
    (root / "objects" / ".abc.tmp-1").write_text("partial")
    (root / "objects" / "notes.txt").write_text("neither")
    (root / "refs" / ".HEAD.json.tmp-9").write_text("partial")
    (root / "refs" / "stray.txt").write_text("neither")
    index = index_store(store)
    assert index.heads == {(KEY, DAY)}
    assert [h for _, _, h in index.history[(KEY, DAY)]] == [first.data_hash, second.data_hash]
    assert [ns for _, ns, _ in index.history[(KEY, DAY)]] == sorted(ns for _, ns, _ in index.history[(KEY, DAY)])
    assert set(index.objects) == {first.data_hash, second.data_hash, *(h for _, _, h in index.history[
        ("universe", None)])}
    assert index.objects[first.data_hash] == object_rel(first.data_hash)
    assert sorted(index.temporaries) == ["objects/.abc.tmp-1", "refs/.HEAD.json.tmp-9"]
    assert index.locations == [(KEY, DAY), ("universe", None)]
    refs_only = index_store(store, objects=False)
    assert refs_only.objects == {} and refs_only.temporaries == ["refs/.HEAD.json.tmp-9"]
    under = index_store(store, under=f"refs/{KEY}")
    assert under.heads == {(KEY, DAY)} and set(under.history) == {(KEY, DAY)}
    assert StoreIndex(heads={("b", None), ("a", "2")}, history={("a", None): []}).locations == [
        ("a", None), ("a", "2"), ("b", None)]
