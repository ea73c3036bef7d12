"""Data windows: the inclusive span of calendar days a feature, a training set or a model covers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

from ml_platform.errors import PartitionError, WindowError

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # used with fullmatch: `$` would accept a trailing newline


def parse_day(text: str, *, what: str = "date") -> dt.date:
    """Parse an ISO ``YYYY-MM-DD`` day, raising :class:`WindowError` with the offending text."""
    if not isinstance(text, str) or not _DATE.fullmatch(text.strip(" ")):
        raise WindowError(f"{what} {text!r} is not an ISO date; write it as YYYY-MM-DD, e.g. 2012-01-03")
    try:
        return dt.date.fromisoformat(text.strip(" "))
    except ValueError as exc:
        raise WindowError(f"{what} {text!r} is not a real calendar day: {exc}") from exc


def parse_partition_key(key: str) -> dt.date:
    """Parse a daily partition key, raising :class:`PartitionError` for anything else."""
    try:
        return parse_day(key, what="partition key")
    except WindowError as exc:
        raise PartitionError(
            f"unknown partition key {key!r}: daily partitions are keyed YYYY-MM-DD (e.g. 2012-01-03)"
        ) from exc


@dataclass(frozen=True, order=True)
class DataWindow:
    """An inclusive range of calendar days ``[start, end]``.

    Example:
        >>> DataWindow.parse("2012-01-02..2012-03-30").days
        89
    """

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if not isinstance(self.start, dt.date) or not isinstance(self.end, dt.date):
            raise WindowError(f"window bounds must be dates, got {self.start!r} and {self.end!r}")
        if self.start > self.end:
            raise WindowError(
                f"window start {self.start.isoformat()} is after its end {self.end.isoformat()}; "
                "swap them or fix the dates"
            )

    @classmethod
    def parse(cls, text: str) -> DataWindow:
        """Parse ``START..END`` (inclusive ISO days) or a single day ``DAY``."""
        if not isinstance(text, str) or not text.strip():
            raise WindowError("empty data window; write it as START..END, e.g. 2012-01-03..2012-06-29")
        parts = text.strip().split("..")
        if len(parts) == 1:
            day = parse_day(parts[0], what="window day")
            return cls(day, day)
        if len(parts) != 2:
            raise WindowError(f"malformed window {text!r}; write it as START..END, e.g. 2012-01-03..2012-06-29")
        return cls(parse_day(parts[0], what="window start"), parse_day(parts[1], what="window end"))

    @classmethod
    def of(cls, start: str | dt.date, end: str | dt.date) -> DataWindow:
        """Build a window from two days given as dates or ISO strings."""
        s = start if isinstance(start, dt.date) else parse_day(start, what="window start")
        e = end if isinstance(end, dt.date) else parse_day(end, what="window end")
        return cls(s, e)

    @property
    def days(self) -> int:
        """Number of calendar days in the window, both ends included."""
        return (self.end - self.start).days + 1

    def __iter__(self) -> Iterator[dt.date]:
        for i in range(self.days):
            yield self.start + dt.timedelta(days=i)

    def __contains__(self, day: object) -> bool:
        return isinstance(day, dt.date) and self.start <= day <= self.end

    def partition_keys(self) -> list[str]:
        """The daily partition keys (ISO days) of every day in the window, in order."""
        return [day.isoformat() for day in self]

    def shift(self, before: int = 0, after: int = 0) -> DataWindow:
        """Widen the window by ``before`` days earlier and ``after`` days later."""
        return DataWindow(self.start - dt.timedelta(days=before), self.end + dt.timedelta(days=after))

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> DataWindow:
        try:
            return cls.of(data["start"], data["end"])
        except (KeyError, TypeError) as exc:
            raise WindowError(f"window record {data!r} lacks 'start'/'end' ISO days") from exc

    def __str__(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


def split_by_windows(frame: pl.DataFrame, windows: list[DataWindow], column: str) -> list[pl.DataFrame]:
    """Split a frame into one frame per window (consecutive, non-overlapping), in the windows' order.

    ``column`` is the frame's time column (Date, or Datetime read as its calendar day). Every window
    gets an entry, an empty frame (same schema) for a window without rows (a weekend, a holiday). Rows
    outside every window are refused: they would be silently dropped otherwise. This one function is
    what the IO manager uses to turn a range run's output into per-partition files.
    """
    import numpy as np
    import polars as pl

    if column not in frame.columns:
        raise WindowError(f"cannot split into partitions: the frame has no time column {column!r} "
                          f"(columns: {frame.columns})")
    dtype = frame.schema[column]
    if dtype != pl.Date and not isinstance(dtype, pl.Datetime):
        raise WindowError(f"cannot split into partitions: column {column!r} is {dtype}, expected Date or Datetime")
    if not windows:
        raise WindowError("cannot split into partitions: no partition windows given")
    days = frame[column] if dtype == pl.Date else frame[column].dt.date()
    if days.null_count():
        raise WindowError(f"cannot split into partitions: time column {column!r} holds {days.null_count()} nulls")
    if frame.height:
        lo, hi = days.min(), days.max()
        if lo < windows[0].start or hi > windows[-1].end:  # type: ignore[operator]
            raise WindowError(
                f"frame holds days {lo}..{hi} outside the partitions {windows[0].start}..{windows[-1].end}; "
                "trim it to the partitions of the run first"
            )
    starts = np.array([w.start.toordinal() for w in windows])
    ordinals = days.cast(pl.Int32).to_numpy() + dt.date(1970, 1, 1).toordinal()
    index = np.searchsorted(starts, ordinals, side="right") - 1
    tagged = frame.with_columns(pl.Series("__window", index, dtype=pl.Int64))
    groups = {key[0]: part.drop("__window")
              for key, part in tagged.partition_by("__window", as_dict=True, maintain_order=True).items()}
    empty = frame.clear()
    return [groups.get(i, empty) for i in range(len(windows))]
