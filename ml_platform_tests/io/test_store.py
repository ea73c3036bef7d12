"""PinnedStore: round trip with manifest, integrity refusals, environment policy, partitions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from ml_platform.environment import EnvironmentLock, capture_environment
from ml_platform.errors import (
    ConfigurationError,
    DataError,
    EnvironmentMismatch,
    IntegrityError,
    ManifestError,
    PartitionError,
)
from ml_platform.io.atomic import file_digest
from ml_platform.io.gc import collect
from ml_platform.io.manifest import OBJECT_METADATA_KEY, Manifest, UpstreamRef, WriteFacts, manifest_digest
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus, verify_store
from ml_platform.lineage.data_hash import hash_table
from ml_platform.window import DataWindow

KEY = "features/momentum"
DAY = "2012-01-03"


def day_frame(day: str, rows: int = 50, shift: float = 0.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [dt.date.fromisoformat(day)] * rows,
            "symbol": [f"S{i:03d}" for i in range(rows)],
            "value": [i * 0.5 + shift for i in range(rows)],
            "flag": [None if i % 7 == 0 else i % 2 == 0 for i in range(rows)],
        }
    )


def faked_lock(polars_version: str = "0.0.1") -> EnvironmentLock:
    lock = capture_environment()
    packages = tuple((name, polars_version if name == "polars" else v) for name, v in lock.packages)
    return dataclasses.replace(lock, packages=packages)


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    return PinnedStore(tmp_path / "storage")


def data_file(store: PinnedStore, key: str = KEY, partition: str | None = DAY) -> Path:
    return Path(store.data_path(store.manifest(key, partition)))


def test_round_trip_with_manifest(store: PinnedStore) -> None:
    frame = day_frame(DAY)
    facts = WriteFacts(
        code_hash="sha256:" + "1" * 64,
        graph_hash="sha256:" + "2" * 64,
        upstream=(UpstreamRef("market/prices", DAY, "xxh3_128:" + "3" * 32),),
        seeds={"default": 11},
        window=DataWindow.parse(DAY),
        run_id="run-42",
        params={"lookback": 20},
    )
    written = store.write(KEY, DAY, frame, facts)
    stored = store.read(KEY, DAY)
    assert_frame_equal(stored.frame, frame)
    assert stored.manifest == written
    assert stored.environment_diff.is_empty
    manifest = stored.manifest
    assert manifest.data_hash == hash_table(frame)
    assert (manifest.code_hash, manifest.graph_hash, manifest.run_id) == (
        facts.code_hash,
        facts.graph_hash,
        "run-42",
    )
    assert manifest.upstream == facts.upstream and dict(manifest.seeds) == {"default": 11}
    assert manifest.window == DataWindow.parse(DAY) and dict(manifest.params) == {"lookback": 20}
    assert manifest.environment == capture_environment() and manifest.rows == 50
    assert manifest.writer.polars == pl.__version__ and manifest.writer.pyarrow == pa.__version__
    assert dt.datetime.fromisoformat(manifest.written_at).tzinfo is not None
    # the head and the history entry carry the manifest; the object's footer only its data hash
    sidecar = Path(store.manifest_path(KEY, DAY))
    assert sidecar.name == "HEAD.json"
    assert Manifest.from_json(sidecar.read_text(), source=str(sidecar)) == manifest
    assert store.history(KEY, DAY) == [manifest]
    footer = pq.read_schema(data_file(store)).metadata[OBJECT_METADATA_KEY]
    assert json.loads(footer) == {"data_hash": manifest.data_hash}
    assert data_file(store).name == manifest.data_hash.replace(":", "-") + ".parquet"
    # the recorded hash is the hash of what is on disk, computed independently
    assert hash_table(pq.read_table(data_file(store)).replace_schema_metadata(None)) == manifest.data_hash


def test_unpartitioned_round_trip_and_arrow_input(store: PinnedStore) -> None:
    table = pa.table({"x": pa.array([1, 2, None], pa.int64()), "s": ["a", None, "c"]})
    store.write("model_inputs", None, table)
    stored = store.read("model_inputs", None)
    assert stored.frame.to_arrow().cast(table.schema).equals(table)
    assert stored.manifest.partition is None and stored.manifest.window is None
    head = Path(store.manifest_path("model_inputs", None))
    assert (head.name, head.parent.name) == ("HEAD.json", "@__unpartitioned__")


def test_rewrite_moves_the_head_and_keeps_the_old_version_readable_by_hash(store: PinnedStore) -> None:
    first = store.write(KEY, DAY, day_frame(DAY))
    second = store.write(KEY, DAY, day_frame(DAY, shift=1.0))
    assert first.data_file != second.data_file
    assert Path(store.data_path(first)).is_file() and Path(store.data_path(second)).is_file()
    assert_frame_equal(store.read(KEY, DAY).frame, day_frame(DAY, shift=1.0))
    old = store.read(KEY, DAY, data_hash=first.data_hash)  # as of the first version, fully verified
    assert_frame_equal(old.frame, day_frame(DAY))
    assert old.manifest == first
    assert [m.data_hash for m in store.history(KEY, DAY)] == [first.data_hash, second.data_hash]
    with pytest.raises(ManifestError, match="no stored version with data hash xxh3_128:0+.*newest first: "
                       + second.data_hash):
        store.read(KEY, DAY, data_hash="xxh3_128:" + "0" * 32)


def test_the_history_chains_every_version_to_the_one_it_replaced_by_manifest_hash(store: PinnedStore) -> None:
    versions = [store.write(KEY, DAY, day_frame(DAY, shift=float(shift))) for shift in range(3)]
    history = store.history(KEY, DAY)
    assert [m.manifest_hash for m in history] == [m.manifest_hash for m in versions]
    assert [m.previous for m in history] == [None, versions[0].manifest_hash, versions[1].manifest_hash]
    assert store.manifest(KEY, DAY).manifest_hash == versions[2].manifest_hash
    assert store.write(KEY, "2012-01-04", day_frame(DAY)).previous is None  # each partition has its own chain


def test_a_load_refuses_a_head_or_history_entry_whose_fields_were_edited(store: PinnedStore) -> None:
    """rows 5 -> 4 in the head (the finding), seeds in a history entry: both loads refuse, naming what to do."""
    first = store.write(KEY, DAY, day_frame(DAY, rows=5), WriteFacts(seeds={"default": 1}))
    store.write(KEY, DAY, day_frame(DAY, rows=5, shift=1.0), WriteFacts(seeds={"default": 1}))
    head = Path(store.manifest_path(KEY, DAY))
    head.write_text(head.read_text().replace('"rows": 5', '"rows": 4'))
    message = (rf"HEAD\.json of {KEY} partition {DAY}: its fields hash to sha256:\w+, but it records manifest_hash "
               r".*provenance, seeds, rows.*`ml-platform verify`")
    with pytest.raises(ManifestError, match=message):
        store.read(KEY, DAY)
    entry = Path(store.base, store.history_entries(KEY, DAY)[0][0])
    entry.write_text(entry.read_text().replace('"default": 1', '"default": 2'))
    with pytest.raises(ManifestError, match=rf"history/\d+-xxh3_128-\w+\.json of {KEY} partition {DAY}: its fields "
                                            "hash to"):
        store.read(KEY, DAY, data_hash=first.data_hash)


def test_the_same_content_is_stored_once(store: PinnedStore) -> None:
    a = store.write(KEY, DAY, day_frame(DAY))
    b = store.write(KEY, "2012-01-04", day_frame(DAY))
    assert a.data_file == b.data_file and (a.file_hash, a.file_size) == (b.file_hash, b.file_size)
    assert len(list((Path(store.base) / "objects").rglob("*.parquet"))) == 1
    assert_frame_equal(store.read(KEY, "2012-01-04").frame, day_frame(DAY))


def test_a_damaged_object_is_repaired_by_the_next_write_of_its_content(store: PinnedStore) -> None:
    manifest = store.write(KEY, DAY, day_frame(DAY))
    path = data_file(store)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError):
        store.read(KEY, DAY)
    store.write(KEY, "2012-01-04", day_frame(DAY))  # same content: the object is verified, found bad, rewritten
    assert_frame_equal(store.read(KEY, "2012-01-04").frame, day_frame(DAY))
    assert manifest.data_hash == store.manifest(KEY, "2012-01-04").data_hash


@pytest.mark.parametrize("where", [0.02, 0.5, 0.97])
def test_a_flipped_byte_is_refused_naming_file_and_hashes(store: PinnedStore, where: float) -> None:
    manifest = store.write(KEY, DAY, day_frame(DAY, rows=2000))
    path = data_file(store)
    content = bytearray(path.read_bytes())
    position = int(len(content) * where)
    content[position] ^= 0x01
    path.write_bytes(bytes(content))
    with pytest.raises(IntegrityError) as caught:
        store.read(KEY, DAY)
    message = str(caught.value)
    assert str(path) in message
    assert f"expected file hash {manifest.file_hash}" in message
    assert "actual xxh3_128:" in message


def test_a_truncated_file_is_refused(store: PinnedStore) -> None:
    manifest = store.write(KEY, DAY, day_frame(DAY, rows=2000))
    path = data_file(store)
    with open(path, "r+b") as handle:
        handle.truncate(manifest.file_size // 2)  # type: ignore[operator]
    half = manifest.file_size // 2  # type: ignore[operator]
    with pytest.raises(
        IntegrityError, match=f"is {half} bytes but its manifest records {manifest.file_size}"
    ):
        store.read(KEY, DAY)
    path.write_bytes(b"")
    with pytest.raises(IntegrityError, match="is 0 bytes"):
        store.read(KEY, DAY)


def test_content_hash_is_checked_independently_of_the_file_hash(store: PinnedStore) -> None:
    """A wrong recorded data hash (e.g. a caller-supplied hash that lies) is refused on load."""
    frame = day_frame(DAY)
    store.write(KEY, DAY, frame, WriteFacts(data_hash="xxh3_128:" + "0" * 32))
    with pytest.raises(IntegrityError) as caught:
        store.read(KEY, DAY)
    assert f"expected xxh3_128:{'0' * 32}, actual {hash_table(frame)}" in str(caught.value)


def test_an_object_swapped_for_another_is_refused(store: PinnedStore) -> None:
    """Another version's object under this version's name (byte facts adjusted) is refused by its footer."""
    first = store.write(KEY, DAY, day_frame(DAY))
    second = store.write(KEY, "2012-01-04", day_frame(DAY, shift=2.0))
    content = Path(store.data_path(first)).read_bytes()
    Path(store.data_path(second)).write_bytes(content)
    head = Path(store.manifest_path(KEY, "2012-01-04"))
    record = json.loads(head.read_text())
    record["file"] = {"hash": file_digest(content), "size": len(content)}
    record["manifest_hash"] = manifest_digest(record)  # a forger who knows the scheme
    head.write_text(json.dumps(record))
    with pytest.raises(IntegrityError, match=f"footer names data hash .*{first.data_hash}.*not {second.data_hash}"):
        store.read(KEY, "2012-01-04")


def test_a_head_naming_another_partitions_version_is_refused(store: PinnedStore) -> None:
    """The head must describe this key and partition, and name the object of its own data hash."""
    store.write(KEY, DAY, day_frame(DAY))
    store.write(KEY, "2012-01-04", day_frame("2012-01-04"))
    Path(store.manifest_path(KEY, "2012-01-04")).write_text(Path(store.manifest_path(KEY, DAY)).read_text())
    with pytest.raises(ManifestError, match="describes features/momentum partition 2012-01-03, not the artefact"):
        store.read(KEY, "2012-01-04")
    head = Path(store.manifest_path(KEY, DAY))
    record = json.loads(head.read_text())
    record["data_file"] = "xxh3_128-" + "f" * 32 + ".parquet"
    head.write_text(json.dumps(record))
    with pytest.raises(ManifestError, match="may only name its own data's object"):
        store.read(KEY, DAY)


def test_a_manifest_whose_data_file_is_missing_is_refused(store: PinnedStore) -> None:
    manifest = store.write(KEY, DAY, day_frame(DAY))
    data_file(store).unlink()
    with pytest.raises(ManifestError, match=f"object .*{manifest.data_file} of {KEY} partition {DAY} .* is missing"):
        store.read(KEY, DAY)


def test_nothing_stored_says_materialize_first(store: PinnedStore) -> None:
    with pytest.raises(
        ManifestError, match=f"nothing is stored for {KEY} partition {DAY}.*materialize it first"
    ):
        store.read(KEY, DAY)
    assert not store.exists(KEY, DAY)


def test_environment_policy_on_read(tmp_path: Path) -> None:
    base = tmp_path / "storage"
    PinnedStore(base, environment=faked_lock()).write(KEY, DAY, day_frame(DAY))
    running_polars = capture_environment().package_versions["polars"]
    with pytest.raises(EnvironmentMismatch, match=f"package polars: 0.0.1 -> {running_polars}"):
        PinnedStore(base, policy="strict").read(KEY, DAY)
    warned = PinnedStore(base, policy="warn").read(KEY, DAY)
    assert warned.environment_diff.differences == (f"package polars: 0.0.1 -> {running_polars}",)
    assert PinnedStore(base, policy="off").read(KEY, DAY).environment_diff.is_empty


def test_read_many_concatenates_in_the_given_order(store: PinnedStore) -> None:
    days = ["2012-01-03", "2012-01-04", "2012-01-05"]
    for i, day in enumerate(days):
        store.write(KEY, day, day_frame(day, rows=10 + i))
    frame, manifests = store.read_many(KEY, list(reversed(days)))
    assert_frame_equal(frame, pl.concat([day_frame(day, rows=10 + i) for i, day in enumerate(days)][::-1]))
    assert [m.partition for m in manifests] == list(reversed(days))


def test_read_many_missing_partition_and_bad_requests(store: PinnedStore) -> None:
    store.write(KEY, DAY, day_frame(DAY))
    with pytest.raises(
        ManifestError, match=f"nothing is stored for {KEY} partition 2012-01-04.*materialize it first"
    ):
        store.read_many(KEY, [DAY, "2012-01-04"])
    with pytest.raises(DataError, match=f"read_many of {KEY}: the request holds no partition"):
        store.read_many(KEY, [])
    with pytest.raises(DataError, match=f"the data window 2012-01-07..2012-01-08 holds no partition of {KEY}"):
        store.read_many(KEY, [], window=DataWindow.parse("2012-01-07..2012-01-08"))
    store.write(KEY, "2012-01-04", day_frame("2012-01-04").drop("flag"))
    with pytest.raises(DataError, match="different schemas"):
        store.read_many(KEY, [DAY, "2012-01-04"])


def test_read_many_checks_the_environment(tmp_path: Path) -> None:
    base = tmp_path / "storage"
    PinnedStore(base).write(KEY, DAY, day_frame(DAY))
    PinnedStore(base, environment=faked_lock()).write(KEY, "2012-01-04", day_frame("2012-01-04"))
    with pytest.raises(EnvironmentMismatch, match="package polars"):
        PinnedStore(base, policy="strict").read_many(KEY, [DAY, "2012-01-04"])


def test_bad_keys_partitions_frames_and_settings(store: PinnedStore) -> None:
    for key in ["", "a//b", "../escape", "a/.hidden", "with space"]:
        with pytest.raises(ConfigurationError, match="asset key"):
            store.write(key, DAY, day_frame(DAY))
    for partition in ["2012/01/03", "", ".hidden", "__unpartitioned__"]:
        with pytest.raises(PartitionError, match="cannot be stored"):
            store.write(KEY, partition, day_frame(DAY))
    with pytest.raises(DataError, match="polars DataFrame or a pyarrow Table"):
        store.write(KEY, DAY, {"x": [1]})  # type: ignore[arg-type]
    with pytest.raises(DataError, match="cannot be encoded as Parquet"):
        store.write(KEY, DAY, pa.table({"d": pa.array([(1, 2, 3)], pa.month_day_nano_interval())}))
    with pytest.raises(ConfigurationError, match="unknown Parquet compression"):
        PinnedStore(store.base, compression="zip")
    with pytest.raises(ConfigurationError, match="unknown environment policy"):
        PinnedStore(store.base, policy="sometimes")


def test_verify_reports_each_artefact(tmp_path: Path) -> None:
    base = tmp_path / "storage"
    store = PinnedStore(base)
    store.write(KEY, DAY, day_frame(DAY))
    store.write(KEY, "2012-01-04", day_frame("2012-01-04"))
    store.write("other", None, day_frame(DAY))
    PinnedStore(base, environment=faked_lock()).write("old_env", None, day_frame(DAY))
    path = data_file(store, KEY, "2012-01-04")
    path.write_bytes(path.read_bytes()[:-5])
    results = {(r.key, r.partition): r for r in verify_store(store)}
    assert results[(KEY, DAY)].status is VerifyStatus.OK and results[(KEY, DAY)].rows == 50
    assert results[(KEY, "2012-01-04")].status is VerifyStatus.CORRUPT and not results[(KEY, "2012-01-04")].ok
    assert results[("other", None)].ok
    assert (
        results[("old_env", None)].status is VerifyStatus.ENVIRONMENT_DIFFERS
        and results[("old_env", None)].ok
    )
    strict = {(r.key, r.partition): r for r in verify_store(PinnedStore(base, policy="strict"), "old_env")}
    assert strict[("old_env", None)].status is VerifyStatus.ENVIRONMENT_MISMATCH
    with pytest.raises(ConfigurationError, match="unknown asset key 'never_written'.*known keys: features/momentum, "
                       "old_env, other"):
        verify_store(store, "never_written")
    assert [r.status for r in verify_store(store, KEY, DAY)] == [VerifyStatus.OK]
    assert [m.partition for m in store.manifests(KEY)] == [DAY, "2012-01-04"]
    with pytest.raises(ConfigurationError, match="needs an asset key"):
        verify_store(store, None, DAY)


def test_object_store_round_trip_via_upath() -> None:
    from upath import UPath

    store = PinnedStore(UPath(f"memory://pinned-store-test-{uuid.uuid4().hex}/storage"))
    frame = day_frame(DAY)
    store.write(KEY, DAY, frame)
    store.write(KEY, DAY, day_frame(DAY, shift=3.0))
    assert_frame_equal(store.read(KEY, DAY).frame, day_frame(DAY, shift=3.0))
    assert [r.status for r in verify_store(store)] == [VerifyStatus.OK]
    assert sum(name.endswith(".parquet") for name in store.filesystem.list_files("objects")) == 2
    assert collect(store, grace_seconds=0, keep_days=0).objects  # the first version, no longer reached
    assert store.base.startswith("memory://")


@pytest.mark.parametrize("backend", ["local", "memory"])
def test_list_keys_lists_every_key_without_its_partitions(tmp_path: Path, backend: str) -> None:
    from upath import UPath

    base = tmp_path / "storage" if backend == "local" else UPath(f"memory://keys-{uuid.uuid4().hex}/storage")
    store = PinnedStore(base)
    assert store.list_keys() == []
    store.write(KEY, DAY, day_frame(DAY))
    store.write(KEY, "2012-01-04", day_frame("2012-01-04"))
    training = store.write("desk/training_set", None, day_frame(DAY, shift=1.0))
    store.write("desk/training_set/nested", DAY, day_frame(DAY, shift=1.0))  # a key below another key's folder
    assert store.list_keys() == [("desk/training_set", True), ("desk/training_set/nested", False), (KEY, False)]
    # only unpartitioned versions hold a training set: the nested partition has the same data hash
    assert store.keys_holding(training.data_hash) == ["desk/training_set"]
    assert store.keys_holding("xxh3_128:" + "0" * 32) == []
    assert {k for k, _ in store.list_keys()} == {k for k, _ in store.locations()}
    assert store.filesystem.list_dirs("refs") == ["desk", "features"]
    assert store.filesystem.list_dirs("refs/absent") == []


def test_verify_bytes_names_an_altered_or_missing_object(store: PinnedStore) -> None:
    manifest = store.write(KEY, DAY, day_frame(DAY))
    store.verify_bytes(manifest)  # as written
    path = data_file(store)
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(IntegrityError, match=rf"does not hold the bytes its manifest records.*{manifest.file_hash}"):
        store.verify_bytes(manifest)
    path.write_bytes(original + b"x")
    with pytest.raises(IntegrityError, match="bytes but its manifest records"):
        store.verify_bytes(manifest)
    path.unlink()
    with pytest.raises(ManifestError, match=f"of {KEY} partition {DAY} .* is missing"):
        store.verify_bytes(manifest)


def test_a_read_captures_the_running_environment_with_the_project_root_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "uv.lock").write_text("version = 1\n")
    monkeypatch.chdir(tmp_path)  # no uv.lock here nor above
    store = PinnedStore(tmp_path / "storage", policy="strict")
    store.write("bars", None, pl.DataFrame({"x": [1]}), WriteFacts(project_root=str(project)))
    assert store.read("bars", None, project_root=str(project)).environment_diff.differences == ()
    with pytest.raises(EnvironmentMismatch, match="uv.lock"):
        store.read("bars", None)  # the store's own root (none: the working directory) finds no uv.lock
