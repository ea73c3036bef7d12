"""PinnedStore: round trip with manifest, integrity refusals, environment policy, partitions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
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
from ml_platform.io.manifest import MANIFEST_METADATA_KEY, Manifest, UpstreamRef, WriteFacts
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus
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
    # the sidecar and the Parquet footer carry the same manifest
    sidecar = Path(store.manifest_path(KEY, DAY))
    assert Manifest.from_json(sidecar.read_text(), source=str(sidecar)) == manifest
    footer = pq.read_schema(data_file(store)).metadata[MANIFEST_METADATA_KEY]
    assert Manifest.from_json(footer, source="footer") == manifest.embedded_form()
    # byte-equal to what a read derives from the sidecar, so reads compare bytes without parsing
    assert footer == manifest.embedded_json()
    # the recorded hash is the hash of what is on disk, computed independently
    assert hash_table(pq.read_table(data_file(store)).replace_schema_metadata(None)) == manifest.data_hash


def test_unpartitioned_round_trip_and_arrow_input(store: PinnedStore) -> None:
    table = pa.table({"x": pa.array([1, 2, None], pa.int64()), "s": ["a", None, "c"]})
    store.write("model_inputs", None, table)
    stored = store.read("model_inputs", None)
    assert stored.frame.to_arrow().cast(table.schema).equals(table)
    assert stored.manifest.partition is None and stored.manifest.window is None
    assert Path(store.manifest_path("model_inputs", None)).name == "__unpartitioned__.manifest.json"


def test_rewrite_replaces_the_version_and_removes_the_old_file(store: PinnedStore) -> None:
    first = store.write(KEY, DAY, day_frame(DAY))
    second = store.write(KEY, DAY, day_frame(DAY, shift=1.0))
    assert first.data_file != second.data_file
    names = sorted(os.listdir(Path(store.base) / KEY))
    assert names == sorted([second.data_file, f"{DAY}.manifest.json"])
    assert_frame_equal(store.read(KEY, DAY).frame, day_frame(DAY, shift=1.0))


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


def test_embedded_manifest_disagreeing_with_the_sidecar_is_refused(store: PinnedStore) -> None:
    """A data file of one version under the manifest of another (bytes otherwise intact) is refused."""
    first = store.write(KEY, DAY, day_frame(DAY))
    old_bytes = data_file(store).read_bytes()
    second = store.write(KEY, DAY, day_frame(DAY, shift=2.0))
    data_file(store).write_bytes(old_bytes)  # old data under the new name ...
    sidecar = Path(store.manifest_path(KEY, DAY))
    record = json.loads(sidecar.read_text())
    record["file"] = {"hash": first.file_hash, "size": first.file_size}  # ... with matching byte facts
    sidecar.write_text(json.dumps(record))
    with pytest.raises(
        ManifestError, match=r"embedded in the file disagrees .*data_file.*data_hash"
    ) as caught:
        store.read(KEY, DAY)
    assert second.data_file in str(caught.value)


def test_an_embedded_manifest_equal_in_content_but_rendered_differently_is_accepted(
    store: PinnedStore,
) -> None:
    """Only the content of the embedded manifest matters, not its JSON layout."""
    manifest = store.write(KEY, DAY, day_frame(DAY))
    path = data_file(store)
    table = pq.read_table(path)
    metadata = dict(table.schema.metadata)
    metadata[MANIFEST_METADATA_KEY] = manifest.embedded_form().to_json(indent=4).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)
    sidecar = Path(store.manifest_path(KEY, DAY))
    record = json.loads(sidecar.read_text())
    content = path.read_bytes()
    record["file"] = {"hash": file_digest(content), "size": len(content)}
    sidecar.write_text(json.dumps(record))
    assert_frame_equal(store.read(KEY, DAY).frame, day_frame(DAY))


def test_a_manifest_whose_data_file_is_missing_is_refused(store: PinnedStore) -> None:
    manifest = store.write(KEY, DAY, day_frame(DAY))
    data_file(store).unlink()
    with pytest.raises(ManifestError, match=f"names {manifest.data_file}, which is missing"):
        store.read(KEY, DAY)


def test_nothing_stored_says_materialize_first(store: PinnedStore) -> None:
    with pytest.raises(
        ManifestError, match=f"nothing is stored for {KEY} partition {DAY}.*materialize it first"
    ):
        store.read(KEY, DAY)
    assert not store.exists(KEY, DAY)


def test_a_misplaced_manifest_is_refused(store: PinnedStore) -> None:
    store.write(KEY, DAY, day_frame(DAY))
    target = Path(store.manifest_path(KEY, "2012-01-04"))
    target.write_text(Path(store.manifest_path(KEY, DAY)).read_text())
    with pytest.raises(ManifestError, match="copied or moved by hand"):
        store.read(KEY, "2012-01-04")


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
    with pytest.raises(DataError, match="non-empty sequence"):
        store.read_many(KEY, [])
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
    results = {(r.key, r.partition): r for r in store.verify()}
    assert results[(KEY, DAY)].status is VerifyStatus.OK and results[(KEY, DAY)].rows == 50
    assert results[(KEY, "2012-01-04")].status is VerifyStatus.CORRUPT and not results[(KEY, "2012-01-04")].ok
    assert results[("other", None)].ok
    assert (
        results[("old_env", None)].status is VerifyStatus.ENVIRONMENT_DIFFERS
        and results[("old_env", None)].ok
    )
    strict = {(r.key, r.partition): r for r in PinnedStore(base, policy="strict").verify("old_env")}
    assert strict[("old_env", None)].status is VerifyStatus.ENVIRONMENT_MISMATCH
    assert [r.status for r in store.verify("never_written")] == [VerifyStatus.MISSING]
    assert [r.status for r in store.verify(KEY, DAY)] == [VerifyStatus.OK]
    assert [m.partition for m in store.manifests(KEY)] == [DAY, "2012-01-04"]
    with pytest.raises(ConfigurationError, match="needs an asset key"):
        store.verify(None, DAY)


def test_object_store_round_trip_via_upath() -> None:
    from upath import UPath

    store = PinnedStore(UPath(f"memory://pinned-store-test-{uuid.uuid4().hex}/storage"))
    frame = day_frame(DAY)
    store.write(KEY, DAY, frame)
    store.write(KEY, DAY, day_frame(DAY, shift=3.0))
    assert_frame_equal(store.read(KEY, DAY).frame, day_frame(DAY, shift=3.0))
    assert [r.status for r in store.verify()] == [VerifyStatus.OK]
    assert sum(name.endswith(".parquet") for name in store.filesystem.list_files(KEY)) == 1
    assert store.base.startswith("memory://")
