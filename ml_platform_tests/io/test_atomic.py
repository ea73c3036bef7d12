"""Atomic writes: a writer killed at any moment leaves the previous version readable and verified."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from ml_platform.io.atomic import HashingWriter, LocalFileSystem, file_digest, is_temporary
from ml_platform.io.gc import collect
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus, verify_store

KEY = "features/big"
DAY = "2012-01-03"
ROWS = 100_000  # ~3 MB of Parquet: written in several chunks, so a pause can fall between them
MID_WRITE_BYTES = 1 << 20

# A writer that stops at a named point of the commit protocol and waits on stdin until it is killed.
# Only the standard library is wrapped (os.fdopen, os.replace): the store's own code runs unchanged.
WRITER = """
import os, sys
import numpy as np, pyarrow as pa
from ml_platform.io.store import PinnedStore

base, rows, pause_at, mid_bytes = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def pause(detail):
    print(pause_at, detail, flush=True)
    sys.stdin.readline()  # blocks: the test kills this process here
    raise SystemExit("the test let a paused writer go on")

real_fdopen, real_replace = os.fdopen, os.replace

class CountingFile:
    def __init__(self, raw):
        self._raw, self._written = raw, 0
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return self._raw.__exit__(*exc)
    def write(self, data):
        written = self._raw.write(data)
        self._written += written
        if pause_at == "mid-data" and self._written >= mid_bytes:
            self._raw.flush()
            pause("-")
        return written
    def __getattr__(self, name):
        return getattr(self._raw, name)

def fdopen(descriptor, *args, **kwargs):
    return CountingFile(real_fdopen(descriptor, *args, **kwargs))

renames = 0
def replace(source, target):
    global renames
    renames += 1
    if pause_at == f"before-rename-{renames}":
        pause(source)
    real_replace(source, target)
    if pause_at == f"after-rename-{renames}":
        pause(target)

os.fdopen, os.replace = fdopen, replace
rng = np.random.default_rng(1)
table = pa.table({f"c{i}": rng.standard_normal(rows) for i in range(4)})
PinnedStore(base).write("features/big", "2012-01-03", table)
print("done", flush=True)
"""


def big_table() -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table({f"c{i}": rng.standard_normal(ROWS) for i in range(4)})


def pause_writer(base: Path, point: str) -> tuple[subprocess.Popen[str], str]:
    """Start a writer and wait until it is blocked at ``point``; returns it and the path it named."""
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(base), str(ROWS), point, str(MID_WRITE_BYTES)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if line[:1] != [point]:
        kill(process)
        pytest.fail(f"the writer did not pause at {point}; it printed {line!r}")
    return process, line[1]


def kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def temporaries(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if is_temporary(name)] if directory.is_dir() else []


def data_files(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".parquet"))


@pytest.fixture
def old_version(tmp_path: Path) -> tuple[PinnedStore, str]:
    store = PinnedStore(tmp_path / "storage")
    manifest = store.write(KEY, DAY, pa.table({"c0": [1.0, 2.0, 3.0]}))
    return store, manifest.data_hash


def assert_intact(store: PinnedStore, expected_hash: str) -> None:
    stored = store.read(KEY, DAY)  # full verification: bytes, embedded manifest, content hash
    assert stored.manifest.data_hash == expected_hash
    assert [result.status for result in verify_store(store)] == [VerifyStatus.OK]


def test_kill_in_the_middle_of_the_data_bytes_leaves_the_old_version(
    old_version: tuple[PinnedStore, str],
) -> None:
    store, old_hash = old_version
    base = Path(store.base)
    process, _ = pause_writer(base, "mid-data")
    try:
        [temporary] = [p for p in base.rglob("*") if is_temporary(p.name)]  # the writer is blocked
        partial = temporary.read_bytes()
        assert len(partial) >= MID_WRITE_BYTES and not partial.endswith(b"PAR1")  # no footer yet
    finally:
        kill(process)
    assert temporary.exists()  # the half-written file is left behind ...
    assert_intact(store, old_hash)  # ... and never read
    assert collect(store, grace_seconds=3600).temporaries == []  # too young: a writer may still own it
    assert collect(store, grace_seconds=0).temporaries == [str(temporary)]
    assert not temporary.exists()
    assert_intact(store, old_hash)


def test_an_orphan_object_is_ignored_and_collected_after_the_grace_period(
    old_version: tuple[PinnedStore, str],
) -> None:
    """The state a crash between publishing the object and moving the head leaves behind."""
    store, old_hash = old_version
    orphan = store.write("scratch", None, pa.table({"c0": [9.0]}))
    for rel in list(store.filesystem.list_files("refs/scratch")):
        store.filesystem.delete(rel)  # as if the writer died before its head
    assert_intact(store, old_hash)
    assert collect(store, grace_seconds=3600).objects == []  # too young: a concurrent writer may own it
    assert collect(store, grace_seconds=0).objects == [store.data_path(orphan)]
    assert_intact(store, old_hash)


def test_gc_keeps_every_version_of_a_partition_whose_head_is_unreadable(
    old_version: tuple[PinnedStore, str], caplog: pytest.LogCaptureFixture
) -> None:
    store, _ = old_version
    first = store.manifest(KEY, DAY)
    store.write(KEY, DAY, pa.table({"c0": [4.0]}))
    Path(store.manifest_path(KEY, DAY)).write_bytes(b"{ truncated")
    with caplog.at_level(logging.WARNING, logger="ml_platform.io.gc"):
        report = collect(store, grace_seconds=0, keep_days=0)
    assert report.objects == [] and report.history == []
    assert "cannot be read; every version" in caplog.text
    assert store.read(KEY, DAY, data_hash=first.data_hash).manifest == first


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
