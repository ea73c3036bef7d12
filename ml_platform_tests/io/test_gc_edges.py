"""Garbage collection at its edges: the retention and grace boundaries to the nanosecond, broken records,
the upstream closure over shared versions, the report's counts, and the crash points in their order.

The clock gc reads is pinned (``ml_platform.io.gc.time``) and history entries are renamed to chosen write
times, so "exactly at the horizon" is exact; objects report the ages the tests give them.
"""

from __future__ import annotations

import logging
import types
from pathlib import Path

import polars as pl
import pytest

from ml_platform.crashpoints import GC_POINTS
from ml_platform.errors import ConfigurationError, ManifestError
from ml_platform.io import gc
from ml_platform.io.gc import DEFAULT_GRACE_SECONDS, DEFAULT_KEEP_DAYS, GcReport, collect
from ml_platform.io.layout import head_rel, object_rel
from ml_platform.io.manifest import UpstreamRef, WriteFacts
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import index_store

DAY = "2012-01-03"
NOW = 1_700_086_400.0  # gc's pinned clock: exactly 1 day after 1_700_000_000 s
HORIZON_1_DAY = 1_700_000_000 * 10**9  # NOW minus one day, in nanoseconds


def frame(value: float) -> pl.DataFrame:
    return pl.DataFrame({"value": [float(value), value + 1.0]})


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PinnedStore:
    monkeypatch.setattr(gc, "time", types.SimpleNamespace(time=lambda: NOW))
    return PinnedStore(tmp_path / "storage")


def ages(store: PinnedStore, monkeypatch: pytest.MonkeyPatch, age: float | None, **by_rel: float | None) -> None:
    """Every file of ``store`` reports ``age`` seconds (``by_rel``: per relative path) to gc."""
    monkeypatch.setattr(store.filesystem, "age_seconds", lambda rel: by_rel.get(rel, age))


def history(store: PinnedStore, key: str, partition: str | None) -> list[tuple[str, int, str]]:
    return index_store(store).history.get((key, partition), [])


def backdate(store: PinnedStore, key: str, partition: str | None, *nanoseconds: int) -> list[str]:
    """Rename the partition's history entries, oldest first, to the write times given; return their paths."""
    root = Path(store.base)
    renamed = []
    for (rel, _, _), ns in zip(history(store, key, partition), nanoseconds, strict=True):
        target = rel.rpartition("/")[0] + "/" + f"{ns:020d}" + rel.rpartition("/")[2][20:]
        (root / rel).rename(root / target)
        renamed.append(target)
    return renamed


def readable(store: PinnedStore, key: str, partition: str | None, data_hash: str) -> bool:
    try:
        store.read(key, partition, data_hash=data_hash)
    except ManifestError:
        return False
    return True


def test_defaults_and_the_refused_settings() -> None:
    assert (DEFAULT_KEEP_DAYS, DEFAULT_GRACE_SECONDS) == (30.0, 3600.0)
    report = GcReport(objects=["o"], history=["h"], temporaries=["t"])
    assert report.deleted == ["h", "o", "t"] and not report.dry_run and report.warnings == []


def test_bad_settings_are_refused_before_anything_is_read(store: PinnedStore) -> None:
    for settings in ({"keep_days": -0.001}, {"grace_seconds": -1.0}):
        with pytest.raises(ConfigurationError, match=r"gc: keep_days \(.*\) and grace_seconds \(.*\) must be >= 0"):
            collect(store, **settings)  # type: ignore[arg-type]
    assert collect(store, keep_days=0, grace_seconds=0).deleted == []


def test_history_written_exactly_at_the_retention_horizon_is_kept_and_a_nanosecond_older_goes(
        store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = [store.write("features/momentum", DAY, frame(v)).data_hash for v in (0.0, 1.0, 2.0)]
    older, _at_horizon, _ = backdate(store, "features/momentum", DAY, HORIZON_1_DAY - 1, HORIZON_1_DAY,
                                    HORIZON_1_DAY + 10**9)
    ages(store, monkeypatch, 10**6)
    report = collect(store, keep_days=1, grace_seconds=0)
    assert report.history == [store.filesystem.uri(older)]
    assert report.objects == [store.filesystem.uri(object_rel(versions[0]))]
    assert (report.reached, report.kept_objects, report.young) == (2, 2, 0)
    assert [readable(store, "features/momentum", DAY, h) for h in versions] == [False, True, True]


def test_history_younger_than_the_grace_period_is_kept_even_past_retention(
        store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    versions = [store.write("features/momentum", DAY, frame(v)).data_hash for v in (0.0, 1.0, 2.0)]
    grace_ns = int(NOW - 100) * 10**9  # NOW minus the 100 s grace period
    older, _, _ = backdate(store, "features/momentum", DAY, grace_ns - 1, grace_ns, grace_ns + 1)
    ages(store, monkeypatch, 50.0)  # the objects are younger still (written before their entries): all kept
    report = collect(store, keep_days=0, grace_seconds=100)
    assert report.history == [store.filesystem.uri(older)] and report.objects == []
    # the two entries the grace period keeps are roots: their objects are reached, not merely young
    assert (report.reached, report.young, report.kept_objects) == (2, 1, 3)
    assert all(readable(store, "features/momentum", DAY, h) for h in versions[1:])


def test_an_object_is_deleted_from_the_exact_end_of_its_grace_period_and_never_of_unknown_age(
        store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    hashes = [store.write(f"k{n}", None, frame(n)).data_hash for n in range(3)]
    for n in range(3):  # only history, no head: nothing roots an old version
        Path(store.base, head_rel(f"k{n}", None)).unlink()
        store.write(f"k{n}", None, frame(n + 100))
    backdate_all = [backdate(store, f"k{n}", None, 1, 2) for n in range(3)]
    assert all(len(b) == 2 for b in backdate_all)
    exact, young, unknown = (object_rel(h) for h in hashes)
    ages(store, monkeypatch, 10**6, **{exact: 100.0, young: 99.999, unknown: None})
    report = collect(store, keep_days=0, grace_seconds=100)
    assert report.objects == [store.filesystem.uri(exact)]
    assert (report.young, report.kept_objects) == (2, 5)
    assert len(report.history) == 3  # every old entry goes; their objects stay while young


def test_a_deleted_head_keeps_its_newest_version_and_only_that(store: PinnedStore,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    versions = [store.write("features/momentum", DAY, frame(v)).data_hash for v in (0.0, 1.0, 2.0)]
    Path(store.base, head_rel("features/momentum", DAY)).unlink()
    backdate(store, "features/momentum", DAY, 1, 2, 3)
    ages(store, monkeypatch, 10**6)
    report = collect(store, keep_days=0, grace_seconds=0)
    assert [readable(store, "features/momentum", DAY, h) for h in versions] == [False, False, True]
    assert len(report.history) == 2 and report.reached == 1


def test_a_head_whose_own_history_entry_was_lost_does_not_root_the_entry_before_it(
        store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.write("features/momentum", DAY, frame(0.0)).data_hash
    second = store.write("features/momentum", DAY, frame(1.0)).data_hash
    _older, newest = backdate(store, "features/momentum", DAY, 1, 2)
    Path(store.base, newest).unlink()
    ages(store, monkeypatch, 10**6)
    collect(store, keep_days=0, grace_seconds=0)
    assert not readable(store, "features/momentum", DAY, first)
    assert readable(store, "features/momentum", DAY, second)


@pytest.mark.parametrize("content", [b"{not json", b'{"data_hash": 5}', b"[]", b'{"upstream": []}'])
def test_an_unreadable_head_keeps_every_version_of_its_partition_and_says_so(
        store: PinnedStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, content: bytes) -> None:
    versions = [store.write("features/momentum", DAY, frame(v)).data_hash for v in (0.0, 1.0)]
    others = {n: store.write(f"other/k{n}", None, frame(100 + n)).data_hash for n in range(8)}  # other contents
    head = Path(store.base, head_rel("features/momentum", DAY))
    head.write_bytes(content)
    backdate(store, "features/momentum", DAY, 1, 2)
    ages(store, monkeypatch, 10**6)
    with caplog.at_level(logging.WARNING, logger="ml_platform.io.gc"):
        report = collect(store, keep_days=0, grace_seconds=0)
    assert report.deleted == []
    assert all(readable(store, "features/momentum", DAY, h) for h in versions)
    assert all(readable(store, f"other/k{n}", None, h) for n, h in others.items())  # the other heads still count
    kept = f"{head} cannot be read; every version of ('features/momentum', '{DAY}') is kept"
    assert report.warnings[-1] == kept
    assert f"gc: {kept}" in caplog.text
    if content == b"{not json":
        assert report.warnings[0].startswith(f"{head}: ") and len(report.warnings) == 2


def test_half_of_the_heads_unreadable_never_stops_the_others_from_counting(store: PinnedStore,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    written = {n: store.write(f"k/p{n}", None, frame(n)).data_hash for n in range(12)}
    for n in range(0, 12, 2):
        Path(store.base, head_rel(f"k/p{n}", None)).write_bytes(b"garbage")
    ages(store, monkeypatch, 10**6)
    report = collect(store, keep_days=0, grace_seconds=0)
    assert report.deleted == [] and len(report.warnings) == 12
    assert all(readable(store, f"k/p{n}", None, h) for n, h in written.items() if n % 2)


def chain(store: PinnedStore, n: int, shift: float) -> tuple[str, str, str]:
    prices = store.write(f"market/prices{n}", DAY, frame(shift))
    feature = store.write(f"features/f{n}", DAY, frame(shift + 10),
                          WriteFacts(upstream=(UpstreamRef(f"market/prices{n}", DAY, prices.data_hash),)))
    training = store.write(f"training{n}", None, frame(shift + 20),
                           WriteFacts(upstream=(UpstreamRef(f"features/f{n}", DAY, feature.data_hash),)))
    return prices.data_hash, feature.data_hash, training.data_hash


def test_the_closure_reaches_every_upstream_of_every_root_however_the_roots_are_ordered(
        store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    registered = [chain(store, n, float(n)) for n in range(8)]
    for n in range(8):  # rewrite everything: only the registered training sets root the old versions
        chain(store, n, 100.0 + n)
    for key in index_store(store).history:
        backdate(store, key[0], key[1], 1, 2)
    ages(store, monkeypatch, 10**6)
    extra = [h for _, f, t in registered for h in (f, t)]  # features are roots and upstreams both
    report = collect(store, extra, keep_days=0, grace_seconds=0)
    for n, (prices, feature, training) in enumerate(registered):
        assert readable(store, f"market/prices{n}", DAY, prices)
        assert readable(store, f"features/f{n}", DAY, feature)
        assert readable(store, f"training{n}", None, training)
    assert report.deleted == [] and report.reached == 48


def test_an_unreadable_history_entry_does_not_hide_the_upstream_its_head_names(
        store: PinnedStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    old_prices = store.write("market/prices", DAY, frame(0.0)).data_hash
    store.write("market/prices", DAY, frame(1.0))
    feature = store.write("features/momentum", DAY, frame(10.0),
                          WriteFacts(upstream=(UpstreamRef("market/prices", DAY, old_prices),)))
    (entry, _, _), = history(store, "features/momentum", DAY)
    Path(store.base, entry).write_bytes(b"torn")
    backdate(store, "market/prices", DAY, 1, 2)
    ages(store, monkeypatch, 10**6)
    with caplog.at_level(logging.WARNING, logger="ml_platform.io.gc"):
        report = collect(store, keep_days=0, grace_seconds=0)
    assert readable(store, "market/prices", DAY, old_prices) and feature.data_hash
    assert report.warnings == [(f"{store.filesystem.uri(entry)}: unreadable, its upstream is not followed "
                               f"(Expecting value: line 1 column 1 (char 0))")]
    assert "gc: " + report.warnings[0] in caplog.text


def test_a_history_entry_gone_while_gc_reads_it_does_not_hide_the_upstream_its_head_names(
        store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old_prices = store.write("market/prices", DAY, frame(0.0)).data_hash
    store.write("market/prices", DAY, frame(1.0))
    store.write("features/momentum", DAY, frame(10.0), WriteFacts(upstream=(UpstreamRef("market/prices", DAY,
                                                                                          old_prices),)))
    (entry, _, _), = history(store, "features/momentum", DAY)
    backdate(store, "market/prices", DAY, 1, 2)
    ages(store, monkeypatch, 10**6)
    read_buffer = store.filesystem.read_buffer

    def vanishing(rel: str):  # type: ignore[no-untyped-def]
        if rel == entry:  # replaced by a concurrent writer between the listing and this read
            raise FileNotFoundError(rel)
        return read_buffer(rel)

    monkeypatch.setattr(store.filesystem, "read_buffer", vanishing)
    report = collect(store, keep_days=0, grace_seconds=0)
    assert readable(store, "market/prices", DAY, old_prices) and report.warnings == []


def test_temporaries_go_after_their_grace_period_and_a_dry_run_deletes_nothing(
        store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write("features/momentum", DAY, frame(0.0))
    root = Path(store.base)
    temporaries = {name: root / "objects" / f".{name}.tmp-1" for name in ("old", "exact", "young", "unknown")}
    temporaries["refs"] = root / "refs" / ".HEAD.json.tmp-2"
    for path in temporaries.values():
        path.write_bytes(b"partial")
    rel = {name: str(path.relative_to(root)) for name, path in temporaries.items()}
    ages(store, monkeypatch, 0.0, **{rel["old"]: 500.0, rel["exact"]: 100.0, rel["young"]: 99.0,
                                     rel["unknown"]: None, rel["refs"]: 1000.0})
    dry = collect(store, keep_days=0, grace_seconds=100, dry_run=True)
    expected = sorted(store.filesystem.uri(rel[name]) for name in ("old", "exact", "refs"))
    assert sorted(dry.temporaries) == expected and dry.dry_run
    assert all(path.exists() for path in temporaries.values())
    real = collect(store, keep_days=0, grace_seconds=100)
    assert sorted(real.temporaries) == expected and not real.dry_run
    assert [name for name, path in temporaries.items() if path.exists()] == ["young", "unknown"]


def test_a_dry_run_lists_what_a_real_run_deletes(store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    old = store.write("features/momentum", DAY, frame(0.0)).data_hash
    store.write("features/momentum", DAY, frame(1.0))
    backdate(store, "features/momentum", DAY, 1, 2)
    ages(store, monkeypatch, 10**6)
    dry = collect(store, keep_days=0, grace_seconds=0, dry_run=True)
    assert len(dry.history) == 1 and len(dry.objects) == 1 and readable(store, "features/momentum", DAY, old)
    real = collect(store, keep_days=0, grace_seconds=0)
    assert real.deleted == dry.deleted and not readable(store, "features/momentum", DAY, old)


def test_gc_passes_its_crash_points_in_order(store: PinnedStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write("features/momentum", DAY, frame(0.0))
    store.write("features/momentum", DAY, frame(1.0))
    backdate(store, "features/momentum", DAY, 1, 2)
    (Path(store.base) / "objects" / ".x.tmp-1").write_bytes(b"partial")
    ages(store, monkeypatch, 10**6)
    passed: list[str] = []
    monkeypatch.setattr(gc, "crash_point", passed.append)
    collect(store, keep_days=0, grace_seconds=0)
    assert passed == list(GC_POINTS)
    passed.clear()
    collect(store, keep_days=0, grace_seconds=0, dry_run=True)  # nothing deleted: only the markers around
    assert passed == ["gc:start", "gc:listed", "gc:done"]
