"""Data hash: equal across storage choices and writers, different for any logical change."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ml_platform.errors import DataHashError
from ml_platform.lineage.data_hash import hash_table, raw_buffer_hash

MAX_ROWS = 30
EPOCH = dt.datetime(2000, 1, 1)

# Column kinds: Arrow type and a strategy for one non-null value.
KINDS: dict[str, tuple[pa.DataType, st.SearchStrategy[Any]]] = {
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "int32": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    "float64": (pa.float64(), st.floats(allow_nan=False) | st.just(math.nan)),
    "utf8": (pa.string(), st.text(max_size=6) | st.sampled_from(["", "é", "日本", "🙂"])),
    "bool": (pa.bool_(), st.booleans()),
    "date32": (pa.date32(), st.dates(dt.date(1900, 1, 1), dt.date(2200, 1, 1))),
    "timestamp_us": (pa.timestamp("us"), st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2100, 1, 1))),
    "timestamp_utc": (
        pa.timestamp("us", tz="UTC"),
        st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2100, 1, 1)),
    ),
    "list_int64": (pa.list_(pa.int64()), st.lists(st.none() | st.integers(-5, 5), max_size=3)),
    "struct": (
        pa.struct([("x", pa.int64()), ("y", pa.string())]),
        st.fixed_dictionaries({"x": st.none() | st.integers(-9, 9), "y": st.none() | st.text(max_size=3)}),
    ),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    """A random table: 1-5 columns of random kinds, 0-30 rows, nulls anywhere."""
    rows = draw(st.integers(0, MAX_ROWS))
    # Control characters are excluded: polars panics on a NUL in a column name when writing Parquet.
    name_text = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=4)
    names = draw(st.lists(name_text, min_size=1, max_size=5, unique=True))
    columns = {}
    for name in names:
        dtype, values = KINDS[draw(st.sampled_from(sorted(KINDS)))]
        data = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
        if dtype == pa.timestamp("us", tz="UTC"):
            data = [None if v is None else v.replace(tzinfo=dt.UTC) for v in data]
        columns[name] = pa.array(data, type=dtype)
    return pa.table(columns)


def rechunked(table: pa.Table, cuts: list[int]) -> pa.Table:
    bounds = [0, *sorted({c % (table.num_rows + 1) for c in cuts}), table.num_rows]
    pieces = [table.slice(lo, hi - lo) for lo, hi in itertools.pairwise(bounds)]
    return pa.concat_tables(pieces) if pieces else table


def offset_slice(table: pa.Table) -> pa.Table:
    """The same rows, stored at a non-zero offset inside larger buffers."""
    return pa.concat_tables([table, table]).combine_chunks().slice(table.num_rows, table.num_rows)


def via_parquet(writer: Callable[[io.BytesIO], None], reader: str = "pyarrow") -> Any:
    sink = io.BytesIO()
    writer(sink)
    sink.seek(0)
    return pq.read_table(sink) if reader == "pyarrow" else pl.read_parquet(sink)


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    tables(),
    st.lists(st.integers(0, MAX_ROWS), max_size=4),
    st.integers(1, MAX_ROWS + 1),
    st.sampled_from(["zstd", "snappy", "none"]),
)
def test_equal_for_the_same_logical_table(
    table: pa.Table, cuts: list[int], row_group: int, codec: str
) -> None:
    expected = hash_table(table)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    equal_forms = {
        "rechunked": rechunked(table, cuts),
        "offset slice": offset_slice(table),
        "combined": rechunked(table, cuts).combine_chunks(),
        "record batch": table.combine_chunks().to_batches()[0] if table.num_rows else table,
        "polars frame": frame,
        "polars to arrow": frame.to_arrow(),
        "pyarrow parquet": via_parquet(
            lambda sink: pq.write_table(
                rechunked(table, cuts), sink, row_group_size=row_group, compression=codec
            )
        ),
        "polars parquet": via_parquet(
            lambda sink: frame.write_parquet(
                sink, compression="uncompressed" if codec == "none" else codec, row_group_size=row_group
            )
        ),
        "polars reads polars parquet": via_parquet(lambda sink: frame.write_parquet(sink), reader="polars"),
    }
    for label, form in equal_forms.items():
        assert hash_table(form) == expected, label


def changed_value(value: Any, dtype: pa.DataType) -> Any:
    """A different non-null value of the same type."""
    if value is None:
        return KINDS_DEFAULTS[str(dtype)]
    if pa.types.is_integer(dtype):
        return value ^ 1
    if pa.types.is_floating(dtype):
        return 0.0 if math.isnan(value) or value != 0.0 else 1.0
    if pa.types.is_string(dtype):
        return value + "x"
    if pa.types.is_boolean(dtype):
        return not value
    if pa.types.is_date(dtype) or pa.types.is_timestamp(dtype):
        step = dt.timedelta(days=1) if pa.types.is_date(dtype) else dt.timedelta(microseconds=1)
        return value - step if value.year > 2000 else value + step
    if pa.types.is_list(dtype):
        return [*value, 1]
    return {**value, "x": 1 if value["x"] != 1 else 2}


KINDS_DEFAULTS = {
    "int64": 7,
    "int32": 7,
    "double": 0.5,
    "string": "v",
    "bool": True,
    "date32[day]": dt.date(2001, 1, 1),
    "timestamp[us]": EPOCH,
    "timestamp[us, tz=UTC]": EPOCH.replace(tzinfo=dt.UTC),
    "list<item: int64>": [1],
    "struct<x: int64, y: string>": {"x": 1, "y": "a"},
}


def with_cell(table: pa.Table, column: int, row: int, value: Any) -> pa.Table:
    values = table.column(column).to_pylist()
    values[row] = value
    return table.set_column(column, table.field(column), pa.array(values, type=table.field(column).type))


@SETTINGS
@given(tables(), st.data())
def test_different_after_any_logical_change(table: pa.Table, data: st.DataObject) -> None:
    expected = hash_table(table)
    column = data.draw(st.integers(0, table.num_columns - 1))
    names = table.column_names
    renamed = table.rename_columns([n + "_" if i == column else n for i, n in enumerate(names)])
    assert hash_table(renamed) != expected
    if table.num_columns > 1:
        other = (column + 1) % table.num_columns
        order = list(range(table.num_columns))
        order[column], order[other] = order[other], order[column]
        assert hash_table(table.select(order)) != expected
    assume(table.num_rows > 0)
    row = data.draw(st.integers(0, table.num_rows - 1))
    dtype = table.field(column).type
    old = table.column(column)[row].as_py()
    assert hash_table(with_cell(table, column, row, changed_value(old, dtype))) != expected
    if old is not None:
        assert hash_table(with_cell(table, column, row, None)) != expected


def test_type_changes_change_the_hash() -> None:
    base = pa.table({"x": pa.array([1, 2, None], pa.int64())})
    assert hash_table(base) != hash_table(base.cast(pa.schema([("x", pa.int32())])))
    assert hash_table(base) != hash_table(base.cast(pa.schema([("x", pa.float64())])))
    stamps = pa.table({"t": pa.array([0, 1], pa.timestamp("us"))})
    assert hash_table(stamps) != hash_table(stamps.cast(pa.schema([("t", pa.timestamp("us", tz="UTC"))])))


def test_dictionary_encoded_strings_equal_plain_strings() -> None:
    plain = pa.table({"sym": pa.array(["AAPL", None, "MSFT", "AAPL", ""])})
    encoded = pa.table({"sym": plain.column("sym").dictionary_encode()})
    categorical = pl.from_arrow(plain).with_columns(pl.col("sym").cast(pl.Categorical))
    assert hash_table(encoded) == hash_table(plain) == hash_table(categorical)
    read_as_dictionary = via_parquet(lambda sink: pq.write_table(plain, sink))
    assert hash_table(read_as_dictionary) == hash_table(plain)


def test_bytes_hidden_under_nulls_do_not_count() -> None:
    validity = pa.py_buffer(np.packbits(np.array([1, 0, 1], dtype=bool), bitorder="little").tobytes())
    offsets = pa.py_buffer(np.array([0, 1, 4, 6], dtype=np.int32).tobytes())
    dirty = pa.Array.from_buffers(pa.string(), 3, [validity, offsets, pa.py_buffer(b"abbbcc")], null_count=1)
    assert hash_table(pa.table({"s": dirty})) == hash_table(pa.table({"s": ["a", None, "cc"]}))
    list_offsets = pa.py_buffer(np.array([0, 2, 4, 5], dtype=np.int32).tobytes())
    dirty_list = pa.Array.from_buffers(
        pa.list_(pa.int64()), 3, [validity, list_offsets], null_count=1, children=[pa.array([1, 2, 3, 4, 5])]
    )
    assert hash_table(pa.table({"l": dirty_list})) == hash_table(pa.table({"l": [[1, 2], None, [5]]}))
    dirty_ints = pa.Array.from_buffers(
        pa.int64(), 3, [validity, pa.py_buffer(np.array([1, 99, 3]).tobytes())]
    )
    assert hash_table(pa.table({"i": dirty_ints})) == hash_table(pa.table({"i": [1, None, 3]}))


def test_value_boundaries_count_not_only_the_concatenated_bytes() -> None:
    assert hash_table(pa.table({"s": ["a", "bc"]})) != hash_table(pa.table({"s": ["ab", "c"]}))
    assert hash_table(pa.table({"s": ["", "ab"]})) != hash_table(pa.table({"s": ["ab", ""]}))
    assert hash_table(pa.table({"l": [[1], [2, 3]]})) != hash_table(pa.table({"l": [[1, 2], [3]]}))
    assert hash_table(pa.table({"l": [[], [1]]})) != hash_table(pa.table({"l": [None, [1]]}))


def test_bit_level_float_semantics_are_documented_behaviour() -> None:
    assert hash_table(pa.table({"f": [0.0]})) != hash_table(pa.table({"f": [-0.0]}))
    assert hash_table(pa.table({"f": [math.nan]})) != hash_table(
        pa.table({"f": pa.array([None], pa.float64())})
    )


def test_nested_null_and_decimal_columns() -> None:
    table = pa.table(
        {
            "n": pa.nulls(3),
            "fixed": pa.array([[1, 2], None, [3, 4]], pa.list_(pa.int64(), 2)),
            "dec": pa.array([1, None, 3], pa.decimal128(10, 2)),
        }
    )
    assert hash_table(table) == hash_table(offset_slice(table)) == hash_table(pl.from_arrow(table))
    narrow = table.set_column(2, "dec", table.column("dec").cast(pa.decimal64(10, 2)))
    assert hash_table(narrow) == hash_table(table)
    assert hash_table(table) != hash_table(
        table.set_column(2, "dec", table.column("dec").cast(pa.decimal128(10, 3)))
    )


@pytest.mark.parametrize(
    "column",
    [
        pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
        pa.UnionArray.from_sparse(pa.array([0], pa.int8()), [pa.array([1]), pa.array(["a"])]),
        pa.array([[1, 2]], pa.list_view(pa.int64())),
    ],
)
def test_unsupported_types_are_refused(column: pa.Array) -> None:
    with pytest.raises(DataHashError, match="column 'bad' has type .* does not support"):
        hash_table(pa.table({"bad": column}))


def test_bad_input_is_refused() -> None:
    with pytest.raises(DataHashError, match=r"columns \['o'\] hold Python objects"):
        hash_table(pl.DataFrame({"o": [object()], "x": [1]}))
    with pytest.raises(DataHashError, match="expects a pyarrow Table"):
        hash_table({"x": [1]})  # type: ignore[arg-type]
    with pytest.raises(DataHashError, match="expects a pyarrow Table"):
        raw_buffer_hash(pl.DataFrame({"x": [1]}))  # type: ignore[arg-type]


def test_hash_formats() -> None:
    table = pa.table({"x": [1, 2, 3]})
    for digest in (hash_table(table), raw_buffer_hash(table)):
        assert digest.startswith("xxh3_128:") and len(digest) == len("xxh3_128:") + 32
    assert hash_table(pa.table({"x": pa.array([], pa.int64())})) != hash_table(
        pa.table({"y": pa.array([], pa.int64())})
    )
