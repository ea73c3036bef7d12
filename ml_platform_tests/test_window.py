"""Data windows and partition keys: parsing, bad input, and the per-day split shared by assets and storage."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ml_platform.errors import PartitionError, WindowError
from ml_platform.window import DataWindow, parse_partition_key, split_by_windows


def test_parse_and_properties():
    w = DataWindow.parse("2012-01-30..2012-02-02")
    assert (w.start, w.end, w.days) == (dt.date(2012, 1, 30), dt.date(2012, 2, 2), 4)
    assert str(w) == "2012-01-30..2012-02-02" and DataWindow.from_dict(w.to_dict()) == w
    assert dt.date(2012, 2, 1) in w and dt.date(2012, 2, 3) not in w
    assert list(DataWindow.parse("2012-02-28")) == [dt.date(2012, 2, 28)]
    assert w.shift(before=2, after=1) == DataWindow.parse("2012-01-28..2012-02-03")


@pytest.mark.parametrize("text, needle", [
    ("", "empty"), ("2012-01-01..", "YYYY-MM-DD"), ("2012-02-30..2012-03-01", "not a real calendar day"),
    ("2012-03-01..2012-02-01", "after its end"), ("2012/01/01..2012/02/01", "YYYY-MM-DD"),
    ("2012-01-01..2012-01-05..2012-01-09", "START..END"),
])
def test_malformed_windows_name_the_problem(text, needle):
    with pytest.raises(WindowError, match=needle):
        DataWindow.parse(text)


def test_partition_keys():
    assert parse_partition_key("2012-01-03") == dt.date(2012, 1, 3)
    with pytest.raises(PartitionError, match="2012-1-3"):
        parse_partition_key("2012-1-3")


def _days(*spans: str) -> list[DataWindow]:
    return [DataWindow.parse(s) for s in spans]


def test_split_by_windows_covers_every_window_and_refuses_rows_outside():
    frame = pl.DataFrame({"date": [dt.date(2012, 1, 6), dt.date(2012, 1, 9)], "x": [1, 2]})
    days = _days("2012-01-06..2012-01-06", "2012-01-07..2012-01-07", "2012-01-08..2012-01-08",
                 "2012-01-09..2012-01-09")
    parts = split_by_windows(frame, days, "date")
    assert [p.height for p in parts] == [1, 0, 0, 1]
    assert all(p.schema == frame.schema for p in parts)
    with pytest.raises(WindowError, match="outside the partitions"):
        split_by_windows(frame, days[1:], "date")
    with pytest.raises(WindowError, match="no time column 'date'"):
        split_by_windows(frame.rename({"date": "day"}), days, "date")
    with pytest.raises(WindowError, match="expected Date or Datetime"):
        split_by_windows(frame, days, "x")


def test_split_by_windows_puts_each_row_in_its_week_and_reads_datetimes_as_days():
    stamps = [dt.datetime(2024, 1, 1, 9), dt.datetime(2024, 1, 7, 23, 59), dt.datetime(2024, 1, 8, 0, 0),
              dt.datetime(2024, 1, 20, 12)]
    frame = pl.DataFrame({"ts": stamps, "v": [1, 2, 3, 4]})
    weeks = _days("2024-01-01..2024-01-07", "2024-01-08..2024-01-14", "2024-01-15..2024-01-21")
    parts = split_by_windows(frame, weeks, "ts")
    assert [p["v"].to_list() for p in parts] == [[1, 2], [3], [4]]
