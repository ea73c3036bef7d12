"""Atomic writes: a writer killed at any moment leaves the previous version readable and verified."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ml_platform.io.atomic import HashingWriter, LocalFileSystem, file_digest, is_temporary
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus
from ml_platform.lineage.data_hash import hash_table

KEY = "features/big"
DAY = "2012-01-03"
BIG_ROWS = 1_000_000

WRITER = """
import sys
import numpy as np, pyarrow as pa
from ml_platform.io.store import PinnedStore
rng = np.random.default_rng(1)
table = pa.table({f"c{i}": rng.standard_normal(int(sys.argv[2])) for i in range(4)})
store = PinnedStore(sys.argv[1])
store.environment  # capture before signalling, so the write itself starts right away
print("ready", flush=True)
store.write("features/big", "2012-01-03", table)
print("done", flush=True)
"""


def big_table() -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table({f"c{i}": rng.standard_normal(BIG_ROWS) for i in range(4)})


def start_writer(base: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(base), str(BIG_ROWS)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    if process.stdout is not None:
        process.stdout.close()


def temporaries(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if is_temporary(name)] if directory.is_dir() else []


@pytest.fixture
def old_version(tmp_path: Path) -> tuple[PinnedStore, str]:
    store = PinnedStore(tmp_path / "storage")
    manifest = store.write(KEY, DAY, pa.table({"c0": [1.0, 2.0, 3.0]}))
    return store, manifest.data_hash


def assert_intact(store: PinnedStore, allowed_hashes: set[str]) -> str:
    stored = store.read(KEY, DAY)  # full verification: bytes, embedded manifest, content hash
    assert stored.manifest.data_hash in allowed_hashes
    assert [result.status for result in store.verify()] == [VerifyStatus.OK]
    return stored.manifest.data_hash


def test_kill_during_the_data_write_leaves_the_old_version(old_version: tuple[PinnedStore, str]) -> None:
    store, old_hash = old_version
    directory = Path(store.base) / KEY
    process = start_writer(Path(store.base))
    try:
        deadline = time.monotonic() + 60
        while not temporaries(directory) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        assert temporaries(directory), "the writer finished before its temporary file was seen"
    finally:
        kill(process)
    assert temporaries(directory)  # the half-written file is left behind under a temporary name ...
    assert assert_intact(store, {old_hash}) == old_hash  # ... and never read
    assert store.sweep(older_than_seconds=0.0)  # leftovers are swept
    assert not temporaries(directory)
    assert assert_intact(store, {old_hash}) == old_hash


def test_kill_at_random_moments_never_leaves_a_broken_version(old_version: tuple[PinnedStore, str]) -> None:
    store, old_hash = old_version
    new_hash = hash_table(big_table())
    for delay in (0.05, 0.3):
        process = start_writer(Path(store.base))
        try:
            time.sleep(delay)
        finally:
            kill(process)
        assert_intact(store, {old_hash, new_hash})
    process = start_writer(Path(store.base))  # and one writer that is left to finish
    assert process.wait(timeout=120) == 0
    kill(process)
    assert assert_intact(store, {new_hash}) == new_hash


def test_an_unreferenced_data_file_is_ignored_and_swept(old_version: tuple[PinnedStore, str]) -> None:
    """The state a crash between renaming the data and committing the manifest leaves behind."""
    store, old_hash = old_version
    stray = f"{KEY}/{DAY}.0123456789abcdef.parquet"
    store.filesystem.write_bytes(stray, b"PAR1 not really parquet")
    assert assert_intact(store, {old_hash}) == old_hash
    assert store.sweep(older_than_seconds=3600.0) == []  # too young: a concurrent writer may own it
    assert store.sweep(older_than_seconds=0.0) == [store.filesystem.uri(stray)]
    assert not store.filesystem.exists(stray)
    assert assert_intact(store, {old_hash}) == old_hash


def test_a_failing_write_leaves_nothing(tmp_path: Path) -> None:
    files = LocalFileSystem(tmp_path)
    files.write_bytes("a/target.bin", b"old")
    with pytest.raises(RuntimeError, match="boom"), files.atomic_writer("a/target.bin") as stream:
        stream.write(b"new, but incomplete")
        raise RuntimeError("boom")
    assert (tmp_path / "a" / "target.bin").read_bytes() == b"old"
    assert os.listdir(tmp_path / "a") == ["target.bin"]


def test_hashing_writer_matches_the_file_digest(tmp_path: Path) -> None:
    files = LocalFileSystem(tmp_path)
    with files.atomic_writer("x.bin") as stream:
        writer = HashingWriter(stream)
        writer.write(b"abc")
        writer.write(memoryview(b"defgh"))
    assert writer.size == 8
    assert writer.digest == file_digest(b"abcdefgh") == file_digest(files.read_buffer("x.bin"))
    assert files.read_buffer("x.bin").to_pybytes() == b"abcdefgh"
