"""Feature schemas: writer-independent type strings, order, nullability, round trips, refusals."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from ml_platform.errors import ConfigurationError
from ml_platform.registry.schema import FeatureField, FeatureSchema, arrow_type, normalize_type


def test_polars_string_and_arrow_large_string_compare_equal() -> None:
    from_polars = FeatureSchema.from_polars(pl.DataFrame({"instrument": ["A"], "x": [1.0]}))
    for string_type in (pa.string(), pa.large_string(), pa.string_view()):
        from_arrow = FeatureSchema.from_arrow(pa.schema([("instrument", string_type), ("x", pa.float64())]))
        assert from_arrow == from_polars
    assert from_polars.field("instrument").type == "utf8"


def test_categorical_is_its_value_type_and_float_widths_differ() -> None:
    frame = pl.DataFrame({"c": pl.Series(["a"], dtype=pl.Categorical), "f32": pl.Series([1.0], dtype=pl.Float32),
                          "f64": [1.0]})
    schema = FeatureSchema.from_polars(frame)
    assert [f.type for f in schema] == ["utf8", "float", "double"]


def test_arrow_types_keep_their_canonical_strings() -> None:
    cases = {
        pa.date32(): "date32[day]",
        pa.timestamp("us", tz="UTC"): "timestamp[us, tz=UTC]",
        pa.decimal128(10, 2): "decimal(10,2)",
        pa.decimal256(50, 3): "decimal(50,3)",
        pa.large_list(pa.large_string()): "list<utf8>",
        pa.list_(pa.float64()): "list<double>",
        pa.large_binary(): "binary",
        pa.int32(): "int32",
    }
    for data_type, text in cases.items():
        assert normalize_type(data_type) == text
        assert normalize_type(arrow_type(text)) == text


def test_contract_types_are_the_data_hash_logical_types() -> None:
    """Two frames the data hash calls identical never differ in a contract check, and vice versa."""
    same = [pa.decimal128(10, 2), pa.decimal256(10, 2)], [pa.string(), pa.large_string(), pa.string_view()]
    for group in same:
        assert len({normalize_type(t) for t in group}) == 1
    assert normalize_type(pa.decimal128(10, 2)) != normalize_type(pa.decimal128(10, 3))


def test_round_trip_through_arrow_keeps_order_and_nullability() -> None:
    arrow = pa.schema([pa.field("date", pa.date32(), nullable=False), pa.field("b", pa.float64()),
                       pa.field("a", pa.large_string(), nullable=False)])
    schema = FeatureSchema.from_arrow(arrow)
    assert schema.names == ("date", "b", "a")
    assert [f.nullable for f in schema] == [False, True, False]
    assert FeatureSchema.from_arrow(schema.to_arrow()) == schema
    assert FeatureSchema.from_list(schema.to_list()) == schema


def test_from_polars_marks_only_named_columns_non_null() -> None:
    schema = FeatureSchema.from_polars(pl.DataFrame({"date": [1], "x": [1.0]}).schema, non_null=["date"])
    assert [f.nullable for f in schema] == [False, True]
    with pytest.raises(ConfigurationError, match="unknown column"):
        FeatureSchema.from_polars(pl.DataFrame({"x": [1.0]}), non_null=["y"])


def test_nested_struct_is_refused_naming_the_column() -> None:
    with pytest.raises(ConfigurationError, match="'quote'.*flat"):
        FeatureSchema.from_arrow(pa.schema([("quote", pa.struct([("bid", pa.float64())]))]))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ((), "at least one column"),
        ((FeatureField("x", "double"), FeatureField("x", "float")), "duplicate feature column"),
    ],
)
def test_malformed_schemas_are_refused(fields: tuple[FeatureField, ...], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FeatureSchema(fields)


@pytest.mark.parametrize(
    ("type_string", "message"),
    [("float64", "not in normalized form; write 'double'"), ("string", "write 'utf8'"), ("decimal(1)", "unknown")],
)
def test_unknown_or_unnormalized_type_strings_are_refused(type_string: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        FeatureField("x", type_string)


def test_field_records_need_exactly_their_keys() -> None:
    with pytest.raises(ConfigurationError, match="exactly name, type, nullable"):
        FeatureField.from_dict({"name": "x", "type": "double"})
    with pytest.raises(ConfigurationError, match="must be a list"):
        FeatureSchema.from_list({"name": "x"})  # type: ignore[arg-type]
