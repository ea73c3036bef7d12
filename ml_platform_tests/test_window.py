"""Data windows and partition keys: parsing, bad input, and the per-day split shared by assets and storage."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ml_platform.errors import PartitionError, WindowError
from ml_platform.window import DataWindow, parse_partition_key, split_by_day


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


def test_split_by_day_covers_every_day_and_refuses_rows_outside():
    frame = pl.DataFrame({"date": [dt.date(2012, 1, 6), dt.date(2012, 1, 9)], "x": [1, 2]})
    parts = split_by_day(frame, DataWindow.parse("2012-01-06..2012-01-09"))
    assert [p.height for p in parts.values()] == [1, 0, 0, 1]
    assert all(p.schema == frame.schema for p in parts.values())
    with pytest.raises(WindowError, match="outside the window"):
        split_by_day(frame, DataWindow.parse("2012-01-07..2012-01-09"))
    with pytest.raises(WindowError, match="no 'date' column"):
        split_by_day(frame.rename({"date": "day"}), DataWindow.parse("2012-01-06..2012-01-09"))
