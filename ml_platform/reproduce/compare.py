"""Compare what a reproduction rebuilt with what production recorded, and name the first difference.

Every comparison is by content hash first (the data hash of a partition, the sha256 of a model); only
when two hashes differ are the two frames read to say where: a column missing or of another type, a
row count, or the first row (by the frame keys) and column whose values differ. Pure: store reads and
polars, no Dagster, no MLflow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import polars as pl

from ml_platform.errors import MLPlatformError
from ml_platform.io.recorded_lineage import RecordedPartition
from ml_platform.io.store import PinnedStore
from ml_platform.keys import FrameKeys

__all__ = ["Comparison", "ComparisonKind", "compare_bytes", "compare_partition", "compare_partitions",
           "first_difference"]

_SHOWN = 60  # characters of a value shown in a difference


class ComparisonKind(StrEnum):
    """What a comparison covers."""

    PARTITION = "partition"
    TRAINING_SET = "training_set"
    MODEL = "model"
    SIGNALS = "signals"
    ENVIRONMENT = "environment"


@dataclass(frozen=True)
class Comparison:
    """One recorded value against its reproduction.

    Attributes:
        kind: partition, training set, model, signals or environment.
        subject: what was compared (``momentum partition 2011-06-01``, ``model sha256``, a package).
        recorded / reproduced: the two hashes or versions (``reproduced`` None: nothing was rebuilt).
        difference: where they differ (None when equal).
    """

    kind: ComparisonKind
    subject: str
    recorded: str | None
    reproduced: str | None
    difference: str | None = None

    @property
    def equal(self) -> bool:
        return self.difference is None and self.recorded == self.reproduced and self.reproduced is not None

    def to_dict(self) -> dict[str, object]:
        return {"kind": str(self.kind), "subject": self.subject, "recorded": self.recorded,
                "reproduced": self.reproduced, "equal": self.equal, "difference": self.difference}


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


def first_difference(recorded: pl.DataFrame, reproduced: pl.DataFrame, keys: FrameKeys | None = None) -> str | None:
    """Where two frames first differ, in words; None if they hold the same names, types and values.

    Columns are compared by name, then type, then the row count; rows are aligned by ``keys`` when
    both frames have them (sorted by them), else by position. Nulls equal nulls; NaN equals NaN.
    """
    if recorded.columns != reproduced.columns:
        missing = [c for c in recorded.columns if c not in reproduced.columns]
        extra = [c for c in reproduced.columns if c not in recorded.columns]
        if missing or extra:
            return f"columns differ: missing {missing}, unexpected {extra}"
        return f"column order differs: recorded {recorded.columns}, reproduced {reproduced.columns}"
    for name in recorded.columns:
        if recorded.schema[name] != reproduced.schema[name]:
            return f"column {name!r}: type {recorded.schema[name]} recorded, {reproduced.schema[name]} reproduced"
    if recorded.height != reproduced.height:
        return f"{recorded.height} rows recorded, {reproduced.height} reproduced"
    key_columns = list(keys.columns) if keys is not None and all(c in recorded.columns for c in keys.columns) else []
    if key_columns:
        recorded, reproduced = recorded.sort(key_columns), reproduced.sort(key_columns)
    for name in recorded.columns:
        a, b = recorded[name], reproduced[name]
        same = (a == b) | (a.is_null() & b.is_null())
        if a.dtype.is_float():
            same = same | (a.is_nan() & b.is_nan())
        same = same.fill_null(False)
        if not same.all():
            row = int((~same).arg_true()[0])
            where = ", ".join(f"{k}={_show(recorded[k][row])}" for k in key_columns) or f"position {row}"
            return (f"column {name!r} at row {row} ({where}): recorded {_show(a[row])}, reproduced "
                    f"{_show(b[row])}")
    return None


def compare_bytes(kind: ComparisonKind, subject: str, recorded: str | None, reproduced: str | None) -> Comparison:
    """Two content hashes (a model's sha256, a lock's hash): equal, or the two values."""
    if reproduced is None:
        return Comparison(kind, subject, recorded, None, "nothing was reproduced")
    if recorded != reproduced:
        return Comparison(kind, subject, recorded, reproduced, f"recorded {recorded}, reproduced {reproduced}")
    return Comparison(kind, subject, recorded, reproduced)


def compare_partition(production: PinnedStore, reproduced: PinnedStore, recorded: RecordedPartition, *,
                      reproduced_key: str | None = None, keys: FrameKeys | None = None,
                      kind: ComparisonKind = ComparisonKind.PARTITION) -> Comparison:
    """The reproduced head of one recorded version against the recorded data hash (and, if they differ, where)."""
    key = reproduced_key or recorded.key
    try:
        rebuilt = reproduced.manifest(key, recorded.partition)
    except MLPlatformError as exc:
        return Comparison(kind, recorded.label, recorded.data_hash, None, f"not reproduced: {exc}")
    if rebuilt.data_hash == recorded.data_hash:
        return Comparison(kind, recorded.label, recorded.data_hash, rebuilt.data_hash)
    try:
        before = production.read(recorded.key, recorded.partition, data_hash=recorded.data_hash).frame
        after = reproduced.read(key, recorded.partition).frame
        where = first_difference(before, after, keys) or "same values, different data hash (a hash scheme change?)"
    except MLPlatformError as exc:
        where = f"data hash {rebuilt.data_hash}; the frames could not be compared: {exc}"
    return Comparison(kind, recorded.label, recorded.data_hash, rebuilt.data_hash, where)


def compare_partitions(production: PinnedStore, reproduced: PinnedStore, recorded: Sequence[RecordedPartition], *,
                       key_map: Callable[[str], str] = lambda key: key,
                       keys: FrameKeys | None = None) -> tuple[Comparison, ...]:
    """:func:`compare_partition` for each recorded version, in the order given."""
    return tuple(compare_partition(production, reproduced, r, reproduced_key=key_map(r.key), keys=keys)
                 for r in recorded)
