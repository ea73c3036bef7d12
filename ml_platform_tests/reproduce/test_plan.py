"""The plan step of a reproduction on a real store: the training set, the days served, the passes, the refusals.

No Dagster and no MLflow: versions are written to a store directly, live-signal days with the model and
version that scored them, as ``live_signals`` records them.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ml_platform.errors import ReproductionFailed
from ml_platform.io.layout import object_rel
from ml_platform.io.manifest import Manifest, UpstreamRef, WriteFacts
from ml_platform.io.store import PinnedStore
from ml_platform.reproduce.compare import ComparisonKind
from ml_platform.reproduce.plan import plan_reproduction

D1, D2, D3, D4, D5 = (f"2024-01-0{d}" for d in range(2, 7))
MODEL = "alpha"


def frame(value: float) -> pl.DataFrame:
    return pl.DataFrame({"value": [float(value), value + 0.5]})


def upon(*manifests: Manifest, params: dict[str, object] | None = None) -> WriteFacts:
    refs = tuple(UpstreamRef(m.asset_key, m.partition, m.data_hash) for m in manifests)
    return WriteFacts(upstream=refs, params=params or {})


def served(version: str) -> dict[str, object]:
    return {"model_name": MODEL, "model_version": version}


class Production:
    """bars per day (sources), f of a day over bars of the day and the day before, train over f d2..d3."""

    def __init__(self, store: PinnedStore) -> None:
        self.store = store
        self.bars = {d: store.write("bars", d, frame(i)) for i, d in enumerate((D1, D2, D3, D4))}
        self.f = {D2: self.feature(D2, 20, self.bars[D1], self.bars[D2]),
                  D3: self.feature(D3, 30, self.bars[D2], self.bars[D3])}
        self.train = store.write("train", None, frame(99), upon(self.f[D2], self.f[D3]))

    def feature(self, day: str, value: float, *bars: Manifest) -> Manifest:
        return self.store.write("f", day, frame(value), upon(*bars))

    def signal(self, day: str, value: float, *features: Manifest, version: str = "1") -> Manifest:
        return self.store.write("sig", day, frame(value), upon(*features, params=served(version)))


@pytest.fixture
def production(tmp_path: Path) -> Production:
    return Production(PinnedStore(tmp_path / "production"))


def plan_of(production: Production, version: str = "1"):  # type: ignore[no-untyped-def]
    return plan_reproduction(production.store, MODEL, version, production.train.data_hash)


def test_a_training_set_and_days_served_with_it_are_one_pass(production: Production) -> None:
    f4 = production.feature(D4, 40, production.bars[D3], production.bars[D4])
    day = production.signal(D4, 1, f4)
    production.signal(D5, 2, f4, version="2")  # served by another version: not this one's
    plan = plan_of(production)
    assert plan.training_key == "train" and plan.root.data_hash == production.train.data_hash
    assert len(plan.passes) == 1 and plan.live_days == 1 and plan.unreproducible == ()
    assert [(d.key, d.partition, d.data_hash) for d in plan.passes[0].live_days] == [("sig", D4, day.data_hash)]
    assert len(plan.lineage.partitions) == 1 + 2 + 4 + 2  # train, f d2..d3, bars d1..d4, f d4 and the day
    assert {p.partition for p in plan.passes[0].seeded} == {D1, D2, D3, D4}


def test_a_day_that_read_a_revision_gets_a_second_pass(production: Production) -> None:
    revised = production.store.write("bars", D3, frame(7))  # the vendor revises d3 after training
    f4 = production.feature(D4, 41, revised, production.bars[D4])
    production.signal(D4, 1, f4)
    plan = plan_of(production)
    assert len(plan.passes) == 2 and plan.live_days == 1 and plan.passes[0].live_days == ()
    assert [(p.partition, p.data_hash) for p in plan.passes[1].seeded] == [(D3, revised.data_hash),
                                                                            (D4, production.bars[D4].data_hash)]
    assert [p.partition for p in plan.passes[1].rebuilt] == [D4]  # f d4; the training set's pass rebuilt f d2..d3


def test_a_day_whose_own_lineage_reads_two_versions_is_an_unreproducible_comparison(production: Production) -> None:
    revised = production.store.write("bars", D3, frame(7))
    f4 = production.feature(D4, 41, revised, production.bars[D4])
    day = production.signal(D4, 1, production.f[D3], f4)  # f d3 read the delivered d3, f d4 the revision
    plan = plan_of(production)
    assert plan.live_days == 0 and len(plan.passes) == 1
    (comparison,) = plan.unreproducible
    assert (comparison.kind, comparison.subject, comparison.recorded, comparison.reproduced) == (
        ComparisonKind.SIGNALS, f"signals sig partition {D4}", day.data_hash, None)
    assert not comparison.equal and f"read bars partition {D3} at" in str(comparison.difference)


def test_an_altered_object_is_named_before_anything_starts(production: Production) -> None:
    altered = production.bars[D2]
    path = Path(production.store.base) / object_rel(altered.data_hash)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"!")
    with pytest.raises(ReproductionFailed, match=rf"model 'alpha' version 1: .*bars partition {D2}"):
        plan_of(production)


def test_a_training_set_no_longer_stored_is_refused(production: Production) -> None:
    with pytest.raises(ReproductionFailed, match="no stored training set has data hash"):
        plan_reproduction(production.store, MODEL, "1", "xxh3_128:" + "0" * 32)
