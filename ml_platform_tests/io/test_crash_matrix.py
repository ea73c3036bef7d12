"""Crash matrix: SIGKILL at named points of partition writes and of garbage collections.

One driver process (:mod:`ml_platform_tests.crash.driver`) forks a child per case, which arms
``<point>#<n>`` (the test seam of :func:`ml_platform.crashpoints.crash_point`) and runs a workload
(:mod:`ml_platform_tests.io.crash_workload`) on a copy of a seeded store, dying there. Afterwards
``verify`` must report a consistent store and every version that was reachable before must still be
readable; then a gc finishes the job and the store is still consistent.

``make test`` kills each workload once at every named point (:data:`SCHEDULE`); ``make stress`` adds
random points at random passes, drawn from a seed that is printed (``ML_PLATFORM_CRASH_SEED`` replays
or varies it).
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from ml_platform.crashpoints import GC_POINTS, WRITE_POINTS
from ml_platform.errors import ManifestError
from ml_platform.io.gc import collect
from ml_platform.io.manifest import UpstreamRef, WriteFacts
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import verify_store
from ml_platform_tests.crash.driver import CrashDriver, crash_seed

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash driver forks")

DEFAULT_SEED = 20240508
#: ``make test``'s schedule: every named point of each workload, at its first pass.
SCHEDULE = {
    "write": ("write:object:before-link", "write:object:after-link", "write:object-reused",
              "write:old-history:before-rename", "write:old-history:after-rename", "write:head:before-rename",
              "write:head:after-rename", "write:history:before-rename", "write:history:after-rename",
              "write:repair:before-rename", "write:repair:after-rename"),
    "gc": ("gc:start", "gc:listed", "gc:delete-history", "gc:delete-object", "gc:delete-temporary", "gc:done"),
}
CATALOGUE = {"write": WRITE_POINTS, "gc": GC_POINTS}
#: ``make stress`` kills each workload this often in all: the scheduled points, then random ones ...
CASES = 24
#: ... of which this many may miss their point (a random pass the workload never reaches): it then finishes.
MAY_MISS = 4
ONCE_PER_RUN = {"gc:start", "gc:listed", "gc:done", "gc:delete-temporary",  # reached once by a run
                "write:repair:before-rename", "write:repair:after-rename"}

Version = tuple[str, str | None, str]


def seed_store(base: Path) -> tuple[list[Version], str]:
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


def reachable(store: PinnedStore, versions: list[Version], root: str, after_gc: bool) -> list[Version]:
    """The versions a gc with keep_days=0 and ``root`` must keep: heads, the root and its upstream."""
    if not after_gc:
        return versions
    keep = {m.data_hash for m in store.manifests()} | {root}
    first = next(m for m in store.history("features/a", "2012-01-03") if m.data_hash == root)
    keep |= {ref.data_hash for ref in first.upstream}
    return [v for v in versions if v[2] in keep]


def assert_consistent(store: PinnedStore, versions: list[Version], label: str) -> None:
    failed = [(r.key, r.partition, r.status.value, r.detail[:200]) for r in verify_store(store) if not r.ok]
    assert not failed, f"{label}: verify failed: {failed}"
    for key, partition, data_hash in versions:
        try:
            store.read(key, partition, data_hash=data_hash)
        except ManifestError as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{label}: reachable version {key} {partition} {data_hash} was lost: {exc}")


def random_cases(op: str, seed: int) -> list[tuple[str, int]]:
    """``make stress``'s extra cases of ``op``: random points at random passes (a gc passes some only once)."""
    points = CATALOGUE[op]
    rng = random.Random(seed + len(points))
    cases = []
    for _ in range(CASES - len(SCHEDULE[op])):
        point = rng.choice(points)
        cases.append((point, 1 if point in ONCE_PER_RUN else rng.randint(1, 4)))
    return cases


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashDriver]:
    work = tmp_path_factory.mktemp("io_crash_driver")
    with CrashDriver("ml_platform_tests.io.crash_workload", tmpdir=work / "tmp", log=work / "children.log") as opened:
        yield opened


def kill_cases(driver: CrashDriver, tmp_path: Path, op: str, cases: list[tuple[str, int]]) -> list[bool]:
    """Run each case on a copy of a seeded store and check the store after the kill and after a gc."""
    template = tmp_path / "template"
    versions, root = seed_store(template)
    killed = []
    for index, (point, nth) in enumerate(cases):
        label = f"{op} killed at {point}#{nth}"
        base = tmp_path / f"{op}-{index:02d}-{point.replace(':', '_')}-{nth}"
        shutil.copytree(template, base)
        scratch = base.with_name(base.name + ".tmp")  # a killed writer's scratch files stay beside the case
        scratch.mkdir()
        outcome = driver.trial(f"{point}#{nth}", tmpdir=scratch, base=str(base), op=op, roots=[root])
        killed.append(outcome.killed)  # else it finished: the driver fails a child that did neither
        store = PinnedStore(base)
        expected = reachable(store, versions, root, after_gc=op == "gc")
        assert_consistent(store, expected, label)  # right after the crash
        collect(store, [root], keep_days=0, grace_seconds=0)  # a later gc finishes the job ...
        assert_consistent(store, reachable(store, versions, root, after_gc=True), f"{label}, then gc")
        objects = set(store.filesystem.list_files("objects"))
        assert not [rel for rel in objects if "/." in rel], f"{label}: a temporary survived gc"
    return killed


@pytest.mark.parametrize("op", ["write", "gc"])
def test_sigkill_at_every_named_point_leaves_a_consistent_store(op: str, tmp_path: Path, driver: CrashDriver) -> None:
    cases = [(point, 1) for point in SCHEDULE[op]]
    killed = kill_cases(driver, tmp_path, op, cases)
    missed = [f"{point}#{nth}" for (point, nth), hit in zip(cases, killed, strict=True) if not hit]
    assert not missed, f"{op}: the workload finished without passing {missed}"


@pytest.mark.parametrize("op", ["write", "gc"])
def test_the_schedule_kills_at_every_catalogued_point(op: str) -> None:
    assert sorted(SCHEDULE[op]) == sorted(CATALOGUE[op])


@pytest.mark.stress
@pytest.mark.parametrize("op", ["write", "gc"])
def test_sigkill_at_random_points_leaves_a_consistent_store(op: str, tmp_path: Path, driver: CrashDriver) -> None:
    seed = crash_seed(DEFAULT_SEED)
    cases = random_cases(op, seed)
    print(f"\ncrash schedule ({op}, seed {seed}, ML_PLATFORM_CRASH_SEED to change): "
          + ", ".join(f"{p}#{n}" for p, n in cases))
    killed = kill_cases(driver, tmp_path, op, cases)
    print(f"{sum(killed)} of {len(cases)} cases reached their point")
    assert sum(killed) >= len(cases) - MAY_MISS, f"only {sum(killed)} of {len(cases)} cases reached their point"
