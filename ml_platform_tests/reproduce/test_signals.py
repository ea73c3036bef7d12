"""The live days a version served, found in the store's history, and their comparison, on real stores.

Production (the lineage fixture of ``test_lineage_compare``) gets a ``sig`` node: version 1 of ``m`` scores
two days, then version 2 rescores the second; a signal frame of another model sits under its own key.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ml_platform import FrameKeys, PinnedStore
from ml_platform.io.manifest import UpstreamRef, WriteFacts
from ml_platform.io.recorded_lineage import recorded_lineage
from ml_platform.reproduce.compare import ComparisonKind
from ml_platform.reproduce.signals import compare_signals, conflicting_versions, served_signals
from ml_platform_tests.reproduce.test_lineage_compare import DAYS, write_production

KEYS = FrameKeys("day", ("name",))


def _signals(day: str, version: str, score: float = 0.5, model: str = "m") -> pl.DataFrame:
    return pl.DataFrame({"day": [day, day], "name": ["A", "B"], "score": [score, -score],
                         "model_name": [model, model], "model_version": [version, version]}).with_columns(
        pl.col("day").str.to_date())


def _write_signal(store: PinnedStore, key: str, day: str, version: str, upstream, model: str = "m",  # type: ignore[no-untyped-def]
                  score: float = 0.5):
    return store.write(key, day, _signals(day, version, score, model),
                       WriteFacts(upstream=(UpstreamRef(upstream.asset_key, upstream.partition, upstream.data_hash),),
                                  params={"model_name": model, "model_version": version}))


def test_the_days_a_version_served_are_found_whatever_was_written_after(tmp_path: Path) -> None:
    store = PinnedStore(str(tmp_path / "prod"))
    written = write_production(store)
    f = written["f"]
    first = {d: _write_signal(store, "sig", d, "1", f[d]) for d in DAYS[:2]}  # type: ignore[index]
    _write_signal(store, "sig", DAYS[1], "2", f[DAYS[1]], score=0.9)  # type: ignore[index]  # a later champion
    _write_signal(store, "other_sig", DAYS[0], "1", f[DAYS[0]], model="other")  # type: ignore[index]

    served = served_signals(store, "m", "1")
    assert [(s.key, s.partition, s.data_hash) for s in served] == [("sig", d, first[d].data_hash) for d in DAYS[:2]]
    assert [s.partition for s in served_signals(store, "m", "2")] == [DAYS[1]]
    assert served_signals(store, "m", "3") == () and served_signals(store, "unknown", "1") == ()

    lineage = recorded_lineage(store, "train", None, written["train"].data_hash,  # type: ignore[attr-defined]
                               also=[(s.key, s.partition, s.data_hash) for s in served])
    assert lineage.complete and not conflicting_versions(lineage)
    assert {p.key for p in lineage.partitions} == {"train", "f", "bars", "sig"}

    # the reproduction: its own registry numbers the model 1 again or otherwise; every other column counts
    rebuilt = PinnedStore(str(tmp_path / "repro"))
    rebuilt.write("sig", DAYS[0], _signals(DAYS[0], "7"), WriteFacts())
    rebuilt.write("sig", DAYS[1], _signals(DAYS[1], "7", score=0.5000000001), WriteFacts())
    same, differs = compare_signals(store, rebuilt, served, keys=KEYS)
    assert same.kind is ComparisonKind.SIGNALS and same.equal, same
    assert not differs.equal
    assert differs.difference is not None and "column 'score' at row 0" in differs.difference
    assert "day=datetime.date(2024, 1, 3), name='A'" in differs.difference
    (missing,) = compare_signals(store, PinnedStore(str(tmp_path / "empty")), served[:1], keys=KEYS)
    assert not missing.equal and missing.reproduced is None and "not reproduced" in str(missing.difference)


def test_two_versions_of_one_partition_in_a_lineage_are_named(tmp_path: Path) -> None:
    store = PinnedStore(str(tmp_path / "prod"))
    written = write_production(store)
    revised = store.write("f", DAYS[0], pl.DataFrame({"day": [DAYS[0]], "name": ["A"], "f": [1.0]}).with_columns(
        pl.col("day").str.to_date()), WriteFacts())
    sig = _write_signal(store, "sig", DAYS[2], "1", revised)
    lineage = recorded_lineage(store, "train", None, written["train"].data_hash,  # type: ignore[attr-defined]
                               also=[("sig", DAYS[2], sig.data_hash)])
    conflicts = conflicting_versions(lineage)
    assert list(conflicts) == [("f", DAYS[0])] and revised.data_hash in conflicts[("f", DAYS[0])]
