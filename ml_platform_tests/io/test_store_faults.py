"""Issue 8 faults of the object store: deleted heads, strict keys, fsync order, lost reader races, 100 writers."""

from __future__ import annotations

import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from ml_platform.cli import main
from ml_platform.errors import (
    ConcurrencyError,
    ConfigurationError,
    IntegrityError,
    ManifestError,
    PartitionError,
)
from ml_platform.io import atomic
from ml_platform.io.gc import collect
from ml_platform.io.layout import parse_object_rel
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus, verify_store
from ml_platform.lineage.data_hash import hash_table

KEY = "features/momentum"
DAY = "2012-01-03"


def frame(value: float, rows: int = 20) -> pl.DataFrame:
    return pl.DataFrame({"symbol": [f"S{i}" for i in range(rows)], "value": [value + i for i in range(rows)]})


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    return PinnedStore(tmp_path / "storage")


def statuses(store: PinnedStore) -> dict[tuple[str, str | None], VerifyStatus]:
    return {(r.key, r.partition): r.status for r in verify_store(store) if r.status is not VerifyStatus.OK}


def test_a_deleted_head_is_a_verify_failure_and_gc_keeps_its_object(store: PinnedStore) -> None:
    """Finding 1: the partition is not silently lost; its object is still reached from its history."""
    store.write(KEY, "2012-01-04", frame(0))
    manifest = store.write(KEY, DAY, frame(1))
    Path(store.manifest_path(KEY, DAY)).unlink()
    assert statuses(store) == {(KEY, DAY): VerifyStatus.MISSING_HEAD}
    result = CliRunner().invoke(main, ["verify", "--base-dir", store.base, "--no-dagster"])
    assert result.exit_code == 1 and "MISSING-HEAD  features/momentum  2012-01-03" in result.output
    with pytest.raises(ManifestError, match="head .* is missing although its history records 1 version"):
        store.read(KEY, DAY)
    report = collect(store, grace_seconds=0, keep_days=0)
    assert report.objects == [] and report.history == []
    assert store.read(KEY, DAY, data_hash=manifest.data_hash).manifest == manifest  # nothing was lost


def test_a_missing_or_corrupt_object_has_its_own_status(store: PinnedStore) -> None:
    gone = store.write(KEY, DAY, frame(1))
    bad = store.write(KEY, "2012-01-04", frame(2))
    old = store.write(KEY, "2012-01-05", frame(3))
    store.write(KEY, "2012-01-05", frame(4))
    Path(store.data_path(gone)).unlink()
    path = Path(store.data_path(bad))
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    Path(store.data_path(old)).unlink()  # an older version, reached only from history
    found = [(r.partition, r.status, r.data_hash) for r in verify_store(store) if not r.ok]
    assert found == [(DAY, VerifyStatus.MISSING_OBJECT, None), ("2012-01-04", VerifyStatus.CORRUPT, None),
                     ("2012-01-05", VerifyStatus.MISSING_OBJECT, old.data_hash)]


@pytest.mark.parametrize("key", [f"{KEY}\n", "features/mo\nmentum", "features/\tx", "a\x00b", "features/m\x7f"])
def test_keys_with_a_newline_or_control_character_are_refused(store: PinnedStore, key: str) -> None:
    """Finding 6: `$` accepted a trailing newline; keys are now matched in full."""
    with pytest.raises(ConfigurationError, match="asset key"):
        store.write(key, DAY, frame(0))
    with pytest.raises(ConfigurationError, match="asset key"):
        store.read(key, DAY)
    assert not Path(store.base).exists() or not any(Path(store.base).rglob("*"))


@pytest.mark.parametrize("partition", [f"{DAY}\n", "2012-01-03\r", "2012\x0001-03", "a\x85"])
def test_partitions_with_a_newline_or_control_character_are_refused(store: PinnedStore, partition: str) -> None:
    with pytest.raises(PartitionError, match=f"partition key .* of {KEY}"):
        store.write(KEY, partition, frame(0))
    store.write(KEY, DAY, frame(0))
    with pytest.raises(PartitionError):
        store.read(KEY, partition)
    with pytest.raises(PartitionError):
        verify_store(store, KEY, partition)


def test_an_impossible_date_is_reported_as_such(store: PinnedStore) -> None:
    store.write(KEY, DAY, frame(0))
    with pytest.raises(PartitionError, match="'2012-02-30' of features/momentum is not a real calendar day"):
        store.read(KEY, "2012-02-30")
    result = CliRunner().invoke(main, ["verify", KEY, "--partition", "2012-02-30", "--base-dir", store.base,
                                       "--no-dagster"])
    assert result.exit_code == 2 and "not a real calendar day" in result.output
    assert "nothing is stored" not in result.output


def test_fsync_comes_before_every_rename_and_link(store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file is fsynced before its name is published, and its directory after."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | Path, dst: str | Path) -> None:
        events.append(("publish", str(src)))
        real_replace(src, dst)
        events.append(("published", str(Path(dst).parent)))

    def link(src: str | Path, dst: str | Path) -> None:
        events.append(("publish", str(src)))
        real_link(src, dst)
        events.append(("published", str(Path(dst).parent)))

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.setattr(atomic.os, "link", link)
    store.write(KEY, DAY, frame(0))
    store.write(KEY, DAY, frame(1))
    published = [i for i, (kind, _) in enumerate(events) if kind == "publish"]
    assert len(published) == 6  # object, head, history - twice
    for i in published:
        assert events[i - 1] == ("fsync", events[i][1]), events  # the temporary's bytes are durable first
        assert events[i + 2] == ("fsync", events[i + 1][1]), events  # then its directory entry


def test_a_reader_that_keeps_losing_the_race_gets_a_concurrency_error(
    store: PinnedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding 3: a lost race is retried, and reported as a concurrency error, never as corruption."""
    versions = [store.write(KEY, DAY, frame(i)) for i in range(8)]
    calls = iter(versions[1:])
    real_read = store.filesystem.read_buffer
    real_manifest = store.manifest

    def read_buffer(rel: str):  # every object vanishes as soon as the head has moved on
        if rel.startswith("objects/"):
            raise FileNotFoundError(rel)
        return real_read(rel)

    monkeypatch.setattr(store.filesystem, "read_buffer", read_buffer)
    monkeypatch.setattr(store, "manifest", lambda key, partition, data_hash=None:
                        next(calls) if data_hash is None else real_manifest(key, partition, data_hash))
    with pytest.raises(ConcurrencyError, match="replaced 5 times while being read") as caught:
        store.load_verified(KEY, DAY, versions[0])
    assert not isinstance(caught.value, IntegrityError)


def test_100_concurrent_writers_leave_nothing_unreachable_after_gc(store: PinnedStore) -> None:
    """Finding 3: no orphans that gc cannot collect; every reader gets a whole version or a ConcurrencyError."""
    frames = [frame(float(i), rows=200) for i in range(100)]
    hashes = {hash_table(f.to_arrow()) for f in frames}
    store.write(KEY, DAY, frames[0])
    stop = threading.Event()
    outcomes: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                stored = store.read(KEY, DAY)
            except ConcurrencyError:
                outcomes.append("concurrency")
                continue
            assert hash_table(stored.frame.to_arrow()) == stored.manifest.data_hash
            assert stored.manifest.data_hash in hashes
            outcomes.append("ok")

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    order = list(range(100))
    random.Random(8).shuffle(order)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: store.write(KEY, DAY if i % 2 else "2012-01-04", frames[i]), order))
    stop.set()
    for thread in readers:
        thread.join()
    assert outcomes and set(outcomes) <= {"ok", "concurrency"}
    assert [r.status for r in verify_store(store)] == [VerifyStatus.OK, VerifyStatus.OK]
    history = {m.data_hash for p in (DAY, "2012-01-04") for m in store.history(KEY, p)}
    assert history == hashes  # every write is recorded: nothing is an orphan while retained
    collect(store, grace_seconds=0, keep_days=0)
    heads = {store.manifest(KEY, p).data_hash for p in (DAY, "2012-01-04")}
    objects = {parse_object_rel(rel) for rel in store.filesystem.list_files("objects")}
    assert objects == heads  # nothing unreachable is left
    assert not [p for p in Path(store.base).rglob("*") if atomic.is_temporary(p.name)]
