"""Crash matrix: SIGKILL at named points of partition writes and of garbage collections.

A child process runs a workload with ``ML_PLATFORM_CRASH_POINT=<point>#<n>`` (the test seam of
:func:`ml_platform.crashpoints.crash_point`) and kills itself there. Afterwards ``verify`` must report
a consistent store and every version that was reachable before must still be readable; then a gc
finishes the job and the store is still consistent. The schedule is drawn from a fixed seed and
printed, so a failing case can be replayed alone.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from ml_platform.crashpoints import CRASH_POINT_ENV, GC_POINTS, WRITE_POINTS
from ml_platform.errors import ManifestError
from ml_platform.io.gc import collect
from ml_platform.io.manifest import UpstreamRef, WriteFacts
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import verify_store

SEED = 20240508
CASES = 24
ROOT = Path(__file__).resolve().parents[2]
ONCE_PER_RUN = {"gc:start", "gc:listed", "gc:done", "gc:delete-temporary"}  # reached once by the gc workload

CHILD = """
import sys, polars as pl
from ml_platform.io.store import PinnedStore
from ml_platform.io.manifest import UpstreamRef, WriteFacts
from ml_platform.io.gc import collect
base, op = sys.argv[1], sys.argv[2]
store = PinnedStore(base)
if op == "write":
    for i in range(4):  # a rewrite, a new partition, a reuse of existing content, an unpartitioned write
        store.write("features/a", "2012-01-03", pl.DataFrame({"v": [100.0 + i, 1.0]}))
        store.write("features/a", "2012-01-0" + str(4 + i % 2), pl.DataFrame({"v": [float(i % 2), 1.0]}))
        store.write("model_inputs", None, pl.DataFrame({"v": [float(i), 2.0]}))
else:
    collect(store, sys.argv[3:], keep_days=0, grace_seconds=0)
print("finished", flush=True)
"""


def seed_store(base: Path) -> tuple[list[tuple[str, str | None, str]], str]:
    """Several versions per partition, an upstream chain, an orphan and a temporary; returns versions and a root."""
    store = PinnedStore(base)
    for i in range(3):
        up = store.write("market/prices", "2012-01-03", pl.DataFrame({"v": [float(i), 0.5]}))
        store.write("features/a", "2012-01-03", pl.DataFrame({"v": [10.0 + i, 1.0]}),
                    WriteFacts(upstream=(UpstreamRef("market/prices", "2012-01-03", up.data_hash),)))
        store.write("features/a", "2012-01-04", pl.DataFrame({"v": [float(i % 2), 1.0]}))
    orphan = store.write("scratch", None, pl.DataFrame({"v": [9.0]}))
    for rel in list(store.filesystem.list_files("refs/scratch")):
        store.filesystem.delete(rel)
    store.filesystem.write_bytes(f"objects/{orphan.data_hash.partition(':')[2][:2]}/.x.tmp-1-deadbeef", b"half")
    versions = [(m.asset_key, m.partition, m.data_hash) for key, partition in store.locations()
                for m in store.history(key, partition)]
    root = store.history("features/a", "2012-01-03")[0].data_hash  # the oldest version, "registered"
    # an earlier writer died between moving the head and recording it: its head has no history entry
    head = store.manifest("features/a", "2012-01-04")
    store.filesystem.delete(store.history_entries("features/a", "2012-01-04")[-1][0])
    assert store.history("features/a", "2012-01-04")[-1].data_hash != head.data_hash or len(
        store.history("features/a", "2012-01-04")) == 2
    return versions, root


def reachable(store: PinnedStore, versions: list[tuple[str, str | None, str]], root: str,
              after_gc: bool) -> list[tuple[str, str | None, str]]:
    """The versions a gc with keep_days=0 and ``root`` must keep: heads, the root and its upstream."""
    if not after_gc:
        return versions
    keep = {m.data_hash for m in store.manifests()} | {root}
    first = next(m for m in store.history("features/a", "2012-01-03") if m.data_hash == root)
    keep |= {ref.data_hash for ref in first.upstream}
    return [v for v in versions if v[2] in keep]


def assert_consistent(store: PinnedStore, versions: list[tuple[str, str | None, str]], label: str) -> None:
    failed = [(r.key, r.partition, r.status.value, r.detail[:200]) for r in verify_store(store) if not r.ok]
    assert not failed, f"{label}: verify failed: {failed}"
    for key, partition, data_hash in versions:
        try:
            store.read(key, partition, data_hash=data_hash)
        except ManifestError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{label}: reachable version {key} {partition} {data_hash} was lost: {exc}")


def schedule(points: list[str]) -> list[tuple[str, int]]:
    rng = random.Random(SEED + len(points))
    cases = [(point, 1) for point in points]  # every point at least once ...
    while len(cases) < CASES:  # ... then at random
        point = rng.choice(points)
        cases.append((point, 1 if point in ONCE_PER_RUN else rng.randint(1, 4)))
    return cases


def run_case(template: Path, work: Path, op: str, index: int, point: str, nth: int, root: str
             ) -> tuple[Path, int, str]:
    base = work / f"{op}-{index:02d}-{point.replace(':', '_')}-{nth}"
    shutil.copytree(template, base)
    scratch = base.with_name(base.name + ".tmp")  # a killed writer's scratch files stay beside the case, not in /tmp
    scratch.mkdir()
    env = {**os.environ, CRASH_POINT_ENV: f"{point}#{nth}", "TMPDIR": str(scratch)}
    args = [sys.executable, "-c", CHILD, str(base), op] + ([root] if op == "gc" else [])
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    return base, done.returncode, done.stderr[-2000:]


@pytest.mark.parametrize("op", ["write", "gc"])
def test_sigkill_at_random_points_leaves_a_consistent_store(op: str, tmp_path: Path) -> None:
    template = tmp_path / "template"
    versions, root = seed_store(template)
    points = WRITE_POINTS if op == "write" else GC_POINTS
    cases = schedule(points)
    print(f"\ncrash schedule ({op}, seed {SEED}): " + ", ".join(f"{p}#{n}" for p, n in cases))
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda ic: run_case(template, tmp_path, op, ic[0], *ic[1], root), enumerate(cases)))
    killed = 0
    for (point, nth), (base, returncode, stderr) in zip(cases, results, strict=True):
        label = f"{op} killed at {point}#{nth}"
        assert returncode in (0, -signal.SIGKILL), f"{label}: exit {returncode}: {stderr}"
        killed += returncode == -signal.SIGKILL
        store = PinnedStore(base)
        expected = reachable(store, versions, root, after_gc=op == "gc")
        assert_consistent(store, expected, label)  # right after the crash
        collect(store, [root], keep_days=0, grace_seconds=0)  # a later gc finishes the job ...
        assert_consistent(store, reachable(store, versions, root, after_gc=True), f"{label}, then gc")
        objects = {rel for rel in store.filesystem.list_files("objects")}
        assert not [rel for rel in objects if "/." in rel], f"{label}: a temporary survived gc"
    assert killed >= 20, f"only {killed} of {len(cases)} cases reached their crash point"
