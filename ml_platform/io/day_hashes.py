"""Per-day content hashes of a partition longer than a day (a month of daily rows). Pure: no Dagster.

How it works, and why: docs/architecture.md, "ml_platform/io/day_hashes.py".
"""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from ml_platform.errors import ConfigurationError, DataError, WindowError
from ml_platform.io.layout import validate_data_hash
from ml_platform.lineage.data_hash import hash_table
from ml_platform.window import DataWindow, parse_day

__all__ = ["DayHashes", "hash_days"]

_EPOCH = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class DayHashes:
    """The content hash of each day's rows of a stored frame, by its time column.

    Attributes:
        column: the frame's time column (Date, or Datetime read as its calendar day).
        hashes: ISO day -> the data hash of that day's rows, in stored order: every day of the
            partition's window (an empty day gets the hash of no rows, as a daily partition would),
            plus any other day the frame holds rows of. Sorted by day.
    """

    column: str
    hashes: Mapping[str, str]

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise ConfigurationError(f"day hashes need the name of a time column, got {self.column!r}")
        if not isinstance(self.hashes, Mapping) or not self.hashes:
            raise ConfigurationError(f"day hashes need a non-empty mapping of ISO day -> data hash, got "
                                     f"{self.hashes!r}")
        checked = {}
        for day, digest in self.hashes.items():
            try:
                checked[parse_day(day, what="day").isoformat()] = validate_data_hash(digest, f"hash of day {day}")
            except (WindowError, TypeError) as exc:
                raise ConfigurationError(f"day hashes: {day!r} is not an ISO day ({exc})") from exc
        if list(checked) != list(self.hashes) or list(checked) != sorted(checked):
            raise ConfigurationError("day hashes must be keyed by ISO days (YYYY-MM-DD) in ascending order")
        object.__setattr__(self, "hashes", types.MappingProxyType(checked))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form recorded in a manifest: ``{"column": ..., "days": {day: hash}}``."""
        return {"column": self.column, "days": dict(self.hashes)}

    @classmethod
    def from_dict(cls, value: Any) -> DayHashes:
        """Parse the recorded form; anything else raises ValueError (the manifest reports it as malformed)."""
        if not isinstance(value, dict) or set(value) != {"column", "days"} or not isinstance(value["days"], dict):
            raise ValueError(f"day_hashes must be {{\"column\": ..., \"days\": {{day: hash}}}}, got {value!r}")
        try:
            return cls(value["column"], value["days"])
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from exc

    def differing(self, other: DayHashes) -> list[str]:
        """The days whose hash differs between the two (or that only one of them holds), in order."""
        days = sorted(set(self.hashes) | set(other.hashes))
        return [day for day in days if self.hashes.get(day) != other.hashes.get(day)]


def _day_ordinals(table: pa.Table, column: str) -> np.ndarray:
    """The calendar day of every row as days since 1970-01-01 (int32)."""
    if column not in table.column_names:
        raise DataError(f"cannot hash the frame day by day: it has no time column {column!r} "
                        f"(columns: {table.column_names})")
    times = pl.Series(column, table.column(column))
    if times.dtype != pl.Date and not isinstance(times.dtype, pl.Datetime):
        raise DataError(f"cannot hash the frame day by day: time column {column!r} is {times.dtype}, "
                        "expected Date or Datetime")
    if times.null_count():
        raise DataError(f"cannot hash the frame day by day: time column {column!r} holds "
                        f"{times.null_count()} nulls")
    days = times if times.dtype == pl.Date else times.dt.date()
    return days.cast(pl.Int32).to_numpy()


def hash_days(table: pa.Table, column: str, window: DataWindow) -> DayHashes:
    """The data hash of each day's rows of ``table`` (every day of ``window``, and any other it holds).

    The rows are grouped once (a stable sort by day, skipped when they are already in day order, as
    every feature frame is) and each day is a zero-copy slice, hashed with
    :func:`~ml_platform.lineage.data_hash.hash_table`: a day's hash is exactly the data hash the
    same rows get when stored as a daily partition.

    Raises:
        DataError: the time column is missing, not Date/Datetime, or holds nulls.
    """
    ordinals = _day_ordinals(table, column)
    if ordinals.size and np.any(ordinals[1:] < ordinals[:-1]):
        order = np.argsort(ordinals, kind="stable")
        table, ordinals = table.take(pa.array(order)), ordinals[order]
    wanted = set(range(window.start.toordinal() - _EPOCH, window.end.toordinal() - _EPOCH + 1))
    present = np.unique(ordinals)
    starts = np.searchsorted(ordinals, present, side="left")
    ends = np.searchsorted(ordinals, present, side="right")
    bounds = {int(day): (int(lo), int(hi)) for day, lo, hi in zip(present, starts, ends, strict=True)}
    empty: str | None = None  # the hash of no rows: every empty day shares it
    hashes: dict[str, str] = {}
    for day in sorted(wanted | set(bounds)):
        span = bounds.get(day)
        if span is None:
            empty = empty or hash_table(table.slice(0, 0))
        digest = empty if span is None else hash_table(table.slice(span[0], span[1] - span[0]))
        hashes[dt.date.fromordinal(day + _EPOCH).isoformat()] = str(digest)
    return DayHashes(column, hashes)
