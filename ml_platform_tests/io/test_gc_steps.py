"""GC's steps one by one, on an index built by hand: roots, marking, and the three sweeps (no store writes)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ml_platform.io.atomic import LocalFileSystem
from ml_platform.io.gc import (
    Horizons,
    Reachable,
    Roots,
    gather_roots,
    mark_reachable,
    sweep_history,
    sweep_objects,
    sweep_temporaries,
)
from ml_platform.io.layout import head_rel
from ml_platform.io.verify import StoreIndex

NOW = 1_700_000_000.0
DAY_NS = 86_400 * 10**9
PRICES, FEATURE, TRAINING, OTHER, ORPHAN, YOUNG, EXTRA = (f"xxh3_128:{digit * 32}" for digit in "abcdef0")


def manifest(data_hash: str, *upstream: str) -> bytes:
    return json.dumps({"data_hash": data_hash, "upstream": [{"data_hash": h} for h in upstream]}).encode()


def reader(files: dict[str, bytes]) -> Callable[[str], bytes]:
    def read(rel: str) -> bytes:
        if rel not in files:
            raise FileNotFoundError(rel)
        return files[rel]
    return read


# -- marking ----------------------------------------------------------------------------------------------

def test_marking_follows_upstream_references_transitively_and_never_downstream() -> None:
    roots = Roots(frozenset({FEATURE}), {TRAINING: ("t",), FEATURE: ("f",), PRICES: ("p",)})
    files = {"t": manifest(TRAINING, FEATURE), "f": manifest(FEATURE, PRICES), "p": manifest(PRICES)}
    reached = mark_reachable(roots, reader(files))
    assert reached == Reachable(frozenset({FEATURE, PRICES}), ())


def test_marking_follows_every_manifest_of_a_hash_written_from_other_inputs() -> None:
    roots = Roots(frozenset({TRAINING}), {TRAINING: ("t1", "t2")})
    files = {"t1": manifest(TRAINING, FEATURE), "t2": manifest(TRAINING, OTHER)}
    assert mark_reachable(roots, reader(files)).hashes == {TRAINING, FEATURE, OTHER}


def test_marking_reaches_a_root_without_manifests_and_survives_a_reference_cycle() -> None:
    roots = Roots(frozenset({ORPHAN, TRAINING}), {TRAINING: ("t",), FEATURE: ("f",)})
    files = {"t": manifest(TRAINING, FEATURE), "f": manifest(FEATURE, TRAINING)}
    assert mark_reachable(roots, reader(files)).hashes == {ORPHAN, TRAINING, FEATURE}


def test_marking_skips_a_vanished_manifest_and_names_an_unreadable_one_without_following_it() -> None:
    roots = Roots(frozenset({TRAINING, FEATURE}), {TRAINING: ("gone",), FEATURE: ("broken",)})
    reached = mark_reachable(roots, reader({"broken": b"{not json"}))
    assert reached.hashes == {TRAINING, FEATURE}
    assert [rel for rel, _ in reached.unreadable] == ["broken"]
    assert reached.unreadable[0][1]  # why it cannot be read


# -- roots ------------------------------------------------------------------------------------------------

def test_horizons_are_the_retention_and_grace_moments_in_nanoseconds() -> None:
    horizons = Horizons.at(NOW, keep_days=2, grace_seconds=60)
    assert horizons.keep_ns == int((NOW - 2 * 86_400) * 1e9)
    assert horizons.grace_ns == int((NOW - 60) * 1e9)
    assert horizons.grace_seconds == 60


@pytest.fixture
def fs(tmp_path: Path) -> LocalFileSystem:
    return LocalFileSystem(tmp_path)


def put(fs: LocalFileSystem, rel: str, data: bytes = b"x", age_seconds: float = 0.0) -> str:
    path = fs.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age_seconds:
        moment = time.time() - age_seconds
        os.utime(path, (moment, moment))
    return rel


def test_roots_are_heads_young_history_extra_roots_and_the_newest_version_of_a_lost_head(fs: LocalFileSystem) -> None:
    horizons = Horizons.at(NOW, keep_days=1, grace_seconds=0)
    old, young = horizons.keep_ns - DAY_NS, horizons.keep_ns
    index = StoreIndex()
    index.heads |= {("prices", "d1"), ("feature", "d1")}
    put(fs, head_rel("prices", "d1"), manifest(PRICES))
    put(fs, head_rel("feature", "d1"), manifest(FEATURE, PRICES))
    index.history[("prices", "d1")] = [("h/p-old", old, OTHER), ("h/p-now", old, PRICES)]
    index.history[("feature", "d1")] = [("h/f-young", young, YOUNG), ("h/f-now", old, FEATURE)]
    index.history[("headless", None)] = [("h/x-old", old, ORPHAN), ("h/x-new", old, TRAINING)]
    roots = gather_roots(index, fs, {EXTRA}, horizons)
    assert roots.hashes == {PRICES, FEATURE, YOUNG, TRAINING, EXTRA}  # not OTHER, ORPHAN: old, not heads
    assert roots.manifests[PRICES] == ("h/p-now", head_rel("prices", "d1"))
    assert roots.manifests[OTHER] == ("h/p-old",)
    assert roots.warnings == ()


def test_an_unreadable_head_keeps_every_version_of_its_partition_and_says_so(fs: LocalFileSystem) -> None:
    horizons = Horizons.at(NOW, keep_days=0, grace_seconds=0)
    index = StoreIndex()
    index.heads.add(("prices", "d1"))
    put(fs, head_rel("prices", "d1"), b"{broken")
    index.history[("prices", "d1")] = [("h/1", 0, OTHER), ("h/2", 0, PRICES)]
    roots = gather_roots(index, fs, (), horizons)
    assert roots.hashes == {OTHER, PRICES}
    assert len(roots.warnings) == 2 and "every version of ('prices', 'd1') is kept" in roots.warnings[1]


# -- sweeps (dry runs: what would go, nothing deleted) ---------------------------------------------------

def test_the_history_sweep_takes_only_unreached_entries_older_than_both_horizons(fs: LocalFileSystem) -> None:
    horizons = Horizons(keep_ns=100, grace_ns=50, grace_seconds=0)
    index = StoreIndex()
    index.history[("k", None)] = [("old-unreached", 10, OTHER), ("old-reached", 10, PRICES),
                                  ("within-grace", 60, ORPHAN), ("within-keep", 120, ORPHAN)]
    swept = sweep_history(index, fs, Reachable(frozenset({PRICES})), horizons, dry_run=True)
    assert swept == (fs.uri("old-unreached"),)


def test_the_object_sweep_keeps_reached_and_young_objects_and_counts_them(fs: LocalFileSystem) -> None:
    index = StoreIndex(objects={PRICES: put(fs, "o/a", age_seconds=7200), OTHER: put(fs, "o/b", age_seconds=7200),
                                FEATURE: put(fs, "o/c"), ORPHAN: "o/missing"})
    horizons = Horizons(keep_ns=0, grace_ns=0, grace_seconds=3600)
    swept = sweep_objects(index, fs, Reachable(frozenset({PRICES})), horizons, dry_run=True)
    assert swept.deleted == (fs.uri("o/b"),)
    assert (swept.kept, swept.young) == (3, 2)  # reached a; young c; missing d (its age unknown)
    assert (fs.root / "o/b").exists()  # a dry run


def test_the_temporary_sweep_deletes_only_temporaries_older_than_the_grace_period(fs: LocalFileSystem) -> None:
    index = StoreIndex(temporaries=[put(fs, "o/.old.tmp", age_seconds=7200), put(fs, "o/.new.tmp")])
    horizons = Horizons(keep_ns=0, grace_ns=0, grace_seconds=3600)
    assert sweep_temporaries(index, fs, horizons, dry_run=False) == (fs.uri("o/.old.tmp"),)
    assert not (fs.root / "o/.old.tmp").exists() and (fs.root / "o/.new.tmp").exists()
