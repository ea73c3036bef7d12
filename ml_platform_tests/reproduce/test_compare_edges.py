"""Reproduction's comparisons whole: what each says when equal, different, or not reproduced at all, and
where two frames first differ (NaN against NaN only, long values cut, rows named by their keys).
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from ml_platform import FrameKeys, PinnedStore
from ml_platform.io.recorded_lineage import RecordedPartition
from ml_platform.reproduce.compare import (
    Comparison,
    ComparisonKind,
    compare_bytes,
    compare_partition,
    compare_partitions,
    first_difference,
)

KEYS = FrameKeys("day", ("name",))


def frame(*values: float | None, names: tuple[str, ...] = ("A", "B")) -> pl.DataFrame:
    return pl.DataFrame({"day": [1] * len(values), "name": list(names[:len(values)]), "f": list(values)},
                        schema_overrides={"f": pl.Float64})


def test_a_comparison_is_equal_only_with_the_same_value_reproduced_and_no_difference() -> None:
    assert Comparison(ComparisonKind.MODEL, "m", "a", "a").equal
    assert not Comparison(ComparisonKind.MODEL, "m", "a", "b").equal
    assert not Comparison(ComparisonKind.MODEL, "m", None, None).equal
    assert not Comparison(ComparisonKind.MODEL, "m", "a", "a", "but the frames differ").equal
    assert Comparison(ComparisonKind.SIGNALS, "s", "x", None, "nothing").to_dict() == {
        "kind": "signals", "subject": "s", "recorded": "x", "reproduced": None, "equal": False,
        "difference": "nothing"}
    assert [str(k) for k in ComparisonKind] == ["partition", "training_set", "model", "signals", "environment"]


def test_two_hashes_compare_whole() -> None:
    kind = ComparisonKind.ENVIRONMENT
    assert compare_bytes(kind, "lock", "sha256:a", "sha256:a") == Comparison(kind, "lock", "sha256:a", "sha256:a")
    assert compare_bytes(kind, "lock", "sha256:a", "sha256:b") == Comparison(
        kind, "lock", "sha256:a", "sha256:b", "recorded sha256:a, reproduced sha256:b")
    assert compare_bytes(kind, "lock", "sha256:a", None) == Comparison(kind, "lock", "sha256:a", None,
                                                                       "nothing was reproduced")
    assert compare_bytes(kind, "lock", None, "sha256:b").difference == "recorded None, reproduced sha256:b"


def test_the_first_difference_of_columns_names_the_missing_and_the_extra() -> None:
    base = frame(1.0, 2.0)
    assert first_difference(base, base.drop("f")) == "columns differ: missing ['f'], unexpected []"
    assert first_difference(base, base.with_columns(pl.lit(1).alias("g"))) == (
        "columns differ: missing [], unexpected ['g']")
    assert first_difference(base, base.rename({"f": "g"})) == "columns differ: missing ['f'], unexpected ['g']"
    assert first_difference(base, base.select("f", "day", "name")) == (
        "column order differs: recorded ['day', 'name', 'f'], reproduced ['f', 'day', 'name']")


def test_nan_equals_nan_and_nothing_else() -> None:
    nan = math.nan
    assert first_difference(frame(nan, 2.0), frame(nan, 2.0), KEYS) is None
    assert first_difference(frame(nan, 2.0), frame(1.0, 2.0), KEYS) == (
        "column 'f' at row 0 (day=1, name='A'): recorded nan, reproduced 1.0")
    assert first_difference(frame(1.0, 2.0), frame(nan, 2.0), KEYS) == (
        "column 'f' at row 0 (day=1, name='A'): recorded 1.0, reproduced nan")
    assert first_difference(frame(None, 2.0), frame(nan, 2.0), KEYS) == (
        "column 'f' at row 0 (day=1, name='A'): recorded None, reproduced nan")
    assert first_difference(frame(1.0, None), frame(1.0, 2.0), KEYS) == (
        "column 'f' at row 1 (day=1, name='B'): recorded None, reproduced 2.0")


def test_rows_are_named_by_their_keys_or_their_position() -> None:
    a, b = frame(1.0, 2.0), frame(1.0, 3.0)
    assert first_difference(a, b, KEYS) == "column 'f' at row 1 (day=1, name='B'): recorded 2.0, reproduced 3.0"
    assert first_difference(a, b) == "column 'f' at row 1 (position 1): recorded 2.0, reproduced 3.0"
    other_keys = FrameKeys("day", ("ticker",))  # not columns of these frames: rows by position
    assert first_difference(a, b, other_keys) == "column 'f' at row 1 (position 1): recorded 2.0, reproduced 3.0"
    texts = pl.DataFrame({"day": [1], "name": ["A"], "s": ["x" * 100]})
    shown = first_difference(texts, texts.with_columns(pl.lit("y" * 58).alias("s")), KEYS)
    long, exact = repr("x" * 100), repr("y" * 58)
    assert len(exact) == 60
    assert shown == f"column 's' at row 0 (day=1, name='A'): recorded {long[:57]}..., reproduced {exact}"


@pytest.fixture
def stores(tmp_path: Path) -> tuple[PinnedStore, PinnedStore]:
    return PinnedStore(tmp_path / "production"), PinnedStore(tmp_path / "reproduced")


def recorded(store: PinnedStore, key: str, partition: str | None, data: pl.DataFrame) -> RecordedPartition:
    written = store.write(key, partition, data)
    return RecordedPartition(key, partition, written.data_hash, (), None)


def test_a_partition_compares_by_hash_and_says_where_the_frames_differ(stores: tuple[PinnedStore, PinnedStore]) -> None:
    production, reproduced = stores
    same = recorded(production, "f", "2024-01-02", frame(1.0, 2.0))
    reproduced.write("f", "2024-01-02", frame(1.0, 2.0))
    assert compare_partition(production, reproduced, same) == Comparison(
        ComparisonKind.PARTITION, "f partition 2024-01-02", same.data_hash, same.data_hash)
    old = recorded(production, "g", None, frame(1.0, 2.0))
    production.write("g", None, frame(9.0, 9.0))  # the recorded version is no longer the head: read by hash
    rebuilt = reproduced.write("g_copy", None, frame(1.0, 5.0))
    found = compare_partition(production, reproduced, old, reproduced_key="g_copy", keys=KEYS,
                              kind=ComparisonKind.TRAINING_SET)
    assert found == Comparison(ComparisonKind.TRAINING_SET, "g", old.data_hash, rebuilt.data_hash,
                               "column 'f' at row 1 (day=1, name='B'): recorded 2.0, reproduced 5.0")


def test_a_partition_not_reproduced_or_unreadable_says_so(stores: tuple[PinnedStore, PinnedStore]) -> None:
    production, reproduced = stores
    record = recorded(production, "f", "2024-01-02", frame(1.0, 2.0))
    missing = compare_partition(production, reproduced, record)
    assert (missing.kind, missing.subject, missing.recorded, missing.reproduced) == (
        ComparisonKind.PARTITION, "f partition 2024-01-02", record.data_hash, None)
    assert missing.difference is not None and missing.difference.startswith("not reproduced: [")
    rebuilt = reproduced.write("f", "2024-01-02", frame(1.0, 3.0))
    Path(production.data_path(production.manifest("f", "2024-01-02"))).unlink()
    lost = compare_partition(production, reproduced, record)
    assert (lost.recorded, lost.reproduced) == (record.data_hash, rebuilt.data_hash)
    assert lost.difference is not None and lost.difference.startswith(
        f"data hash {rebuilt.data_hash}; the frames could not be compared: [")


def test_partitions_compare_in_the_order_given_through_the_key_map(stores: tuple[PinnedStore, PinnedStore]) -> None:
    production, reproduced = stores
    records = [recorded(production, key, None, frame(v, v)) for key, v in (("b", 1.0), ("a", 2.0))]
    reproduced.write("repro/b", None, frame(1.0, 1.0))
    reproduced.write("repro/a", None, frame(2.0, 7.0))
    results = compare_partitions(production, reproduced, records, key_map=lambda key: f"repro/{key}", keys=KEYS)
    assert [(r.subject, r.equal) for r in results] == [("b", True), ("a", False)]
    assert results[1].difference == "column 'f' at row 1 (day=1, name='B'): recorded 2.0, reproduced 7.0"
    plain = compare_partitions(production, reproduced, records)
    assert [r.reproduced for r in plain] == [None, None]
