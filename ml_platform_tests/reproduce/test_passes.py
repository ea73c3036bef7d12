"""Reproduction passes: the training set's lineage first, then live days that read other versions."""

from __future__ import annotations

import pytest

from ml_platform.io.manifest import UpstreamRef
from ml_platform.io.recorded_lineage import RecordedLineage, RecordedPartition
from ml_platform.reproduce.passes import plan_passes


def _v(key: str, partition: str | None, data_hash: str, *upstream: RecordedPartition) -> RecordedPartition:
    refs = tuple(UpstreamRef(u.key, u.partition, u.data_hash) for u in upstream)
    return RecordedPartition(key, partition, data_hash, refs, "graph")


def _ids(parts: tuple[RecordedPartition, ...]) -> list[tuple[str, str | None, str]]:
    return sorted((p.key, p.partition, p.data_hash) for p in parts)


# production: bars d1..d3 delivered, f over two days of bars, the training set over f d2..d3
B1, B2, B3 = _v("bars", "d1", "b1"), _v("bars", "d2", "b2"), _v("bars", "d3", "b3")
F2, F3 = _v("f", "d2", "f2", B1, B2), _v("f", "d3", "f3", B2, B3)
TRAIN = _v("train", None, "t", F2, F3)
# after training: d4 delivered; d3 revised by the vendor (b3r), then live days scored
B4, B3R = _v("bars", "d4", "b4"), _v("bars", "d3", "b3r")
F4_BEFORE = _v("f", "d4", "f4", B3, B4)  # scored before the revision arrived
F4_AFTER = _v("f", "d4", "f4r", B3R, B4)  # rescored after it
SIG_EARLY = _v("sig", "d4", "s4", F4_BEFORE)
F5 = _v("f", "d5", "f5", B4, B3R)
SIG_LATE = _v("sig", "d5", "s5", F5)
STORED = (B1, B2, B3, B4, B3R, F2, F3, F4_BEFORE, F4_AFTER, F5, TRAIN, SIG_EARLY, SIG_LATE)


def _lineage(*live: RecordedPartition, extra: tuple[RecordedPartition, ...] = ()) -> RecordedLineage:
    """What ``recorded_lineage`` walks from the training set and ``live`` (``extra``: more stored versions)."""
    seen: dict[tuple[str, str | None, str], RecordedPartition] = {}
    stack = [TRAIN, *live]
    index = {(p.key, p.partition, p.data_hash): p for p in (*STORED, *extra, *live)}
    while stack:
        part = stack.pop(0)
        seen.setdefault((part.key, part.partition, part.data_hash), part)
        stack.extend(index[(r.key, r.partition, r.data_hash)] for r in part.upstream)
    return RecordedLineage(TRAIN, tuple(seen.values()), ())


def test_a_training_set_alone_is_one_pass_of_its_sources_and_computed_versions() -> None:
    plan = plan_passes(_lineage(), [])
    (only,) = plan.passes
    assert _ids(only.seeded) == [("bars", "d1", "b1"), ("bars", "d2", "b2"), ("bars", "d3", "b3")]
    assert _ids(only.rebuilt) == [("f", "d2", "f2"), ("f", "d3", "f3")]  # not the training set: it is retrained
    assert only.live_days == () and plan.unplaceable == ()


def test_a_live_day_consistent_with_training_shares_its_pass() -> None:
    plan = plan_passes(_lineage(SIG_EARLY), [SIG_EARLY])
    (only,) = plan.passes
    assert ("bars", "d4", "b4") in _ids(only.seeded) and ("f", "d4", "f4") in _ids(only.rebuilt)
    assert only.live_days == (SIG_EARLY,)
    assert ("sig", "d4", "s4") not in _ids(only.rebuilt)  # a live day is scored, not backfilled


def test_a_live_day_that_read_a_revision_gets_a_second_pass_of_only_what_differs() -> None:
    plan = plan_passes(_lineage(SIG_EARLY, SIG_LATE), [SIG_EARLY, SIG_LATE])
    first, second = plan.passes
    assert first.live_days == (SIG_EARLY,) and second.live_days == (SIG_LATE,)
    assert ("bars", "d3", "b3") in _ids(first.seeded)
    assert _ids(second.seeded) == [("bars", "d3", "b3r")]  # bars d4 is already the head: not seeded twice
    assert _ids(second.rebuilt) == [("f", "d5", "f5")]
    assert plan.unplaceable == ()


def test_a_later_pass_seeds_again_a_version_an_earlier_pass_replaced() -> None:
    # live day A read the revision of d3; live day B read the original d3 but a revision of d4
    b4r, fa, fb = _v("bars", "d4", "b4r"), _v("f", "d6", "fa", B3R, B4), _v("f", "d7", "fb", B3, _v("bars", "d4", "b4r"))
    day_a, day_b = _v("sig", "d6", "sa", fa), _v("sig", "d7", "sb", fb)
    plan = plan_passes(_lineage(day_a, day_b, SIG_EARLY, extra=(b4r, fa, fb)), [SIG_EARLY, day_a, day_b])
    first, second, third = plan.passes
    assert first.live_days == (SIG_EARLY,) and second.live_days == (day_a,) and third.live_days == (day_b,)
    assert _ids(third.seeded) == [("bars", "d3", "b3"), ("bars", "d4", "b4r")]  # d3 back to what training read
    assert _ids(third.rebuilt) == [("f", "d7", "fb")]
    assert _ids(second.rebuilt) == [("f", "d6", "fa")]


def test_a_live_day_whose_own_lineage_reads_two_versions_is_unplaceable() -> None:
    torn = _v("sig", "d8", "st", F4_BEFORE, F4_AFTER)  # two features of one day, scored around the revision
    plan = plan_passes(_lineage(torn), [torn])
    assert len(plan.passes) == 1 and plan.passes[0].live_days == ()
    ((day, why),) = plan.unplaceable
    assert day == torn and "f partition d4 at f4 and at f4r" in why


def test_a_lineage_without_its_root_is_refused() -> None:
    with pytest.raises(ValueError, match="no root"):
        plan_passes(RecordedLineage(None, (), ()), [])
