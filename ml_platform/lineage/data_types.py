"""Logical Arrow types for the data hash: how writers' physical choices are made to agree.

How it works, and why: docs/architecture.md, "ml_platform/lineage/data_types.py".
"""

from __future__ import annotations

import enum
import json

import pyarrow as pa

from ml_platform.errors import DataHashError

_MAX_DECIMAL128_PRECISION = 38


class Kind(enum.Enum):
    """How the values of a column are streamed."""

    NULL = "null"
    BOOL = "bool"
    FIXED = "fixed"
    VARBINARY = "varbinary"
    LIST = "list"
    FIXED_LIST = "fixed_list"
    STRUCT = "struct"


def _is_utf8(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def _is_binary(dtype: pa.DataType) -> bool:
    return pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype)


def _is_fixed_width(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_temporal(dtype)
        or pa.types.is_fixed_size_binary(dtype)
    )


def logical_type(dtype: pa.DataType, path: str) -> tuple[str, Kind]:
    """The logical type string and streaming kind of an Arrow type.

    Args:
        dtype: the column's (or nested child's) Arrow type.
        path: the column path, for error messages (``'prices'``, ``'quotes'.bid``, ``'legs'[]``).

    Raises:
        DataHashError: the type is not supported (map, union, run-end encoded, list view, extension).
    """
    if pa.types.is_dictionary(dtype):
        return logical_type(dtype.value_type, path)
    if pa.types.is_null(dtype):
        return "null", Kind.NULL
    if pa.types.is_boolean(dtype):
        return "bool", Kind.BOOL
    if _is_utf8(dtype):
        return "utf8", Kind.VARBINARY
    if _is_binary(dtype):
        return "binary", Kind.VARBINARY
    if pa.types.is_decimal(dtype):
        return f"decimal({dtype.precision},{dtype.scale})", Kind.FIXED
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return f"list<{logical_type(dtype.value_type, path + '[]')[0]}>", Kind.LIST
    if pa.types.is_fixed_size_list(dtype):
        child = logical_type(dtype.value_type, path + "[]")[0]
        return f"fixed_size_list<{child}>[{dtype.list_size}]", Kind.FIXED_LIST
    if pa.types.is_struct(dtype):
        fields = [dtype.field(i) for i in range(dtype.num_fields)]
        inner = ",".join(
            f"{json.dumps(f.name, ensure_ascii=False)}:{logical_type(f.type, f'{path}.{f.name}')[0]}"
            for f in fields
        )
        return f"struct<{inner}>", Kind.STRUCT
    if _is_fixed_width(dtype) and not isinstance(dtype, pa.BaseExtensionType):
        return str(dtype), Kind.FIXED
    raise DataHashError(
        f"column {path} has type {dtype}, which the data hash does not support; cast it to a supported "
        "type first (numbers, bool, strings, binary, dates/times/timestamps, decimals, lists, structs)"
    )


def canonical_chunk(chunk: pa.Array, path: str) -> pa.Array:
    """Rewrite one chunk into the physical layout its logical type is streamed from.

    Dictionaries are decoded, string/binary views become ``large_string``/``large_binary``, and
    decimals are widened to ``decimal128`` (precision <= 38) or ``decimal256``. Other chunks are
    returned unchanged (zero copy).
    """
    dtype = chunk.type
    try:
        if pa.types.is_dictionary(dtype):
            return canonical_chunk(chunk.dictionary_decode(), path)
        if pa.types.is_string_view(dtype):
            return chunk.cast(pa.large_string())
        if pa.types.is_binary_view(dtype):
            return chunk.cast(pa.large_binary())
        if pa.types.is_decimal(dtype):
            wide = pa.decimal128 if dtype.precision <= _MAX_DECIMAL128_PRECISION else pa.decimal256
            target = wide(dtype.precision, dtype.scale)
            return chunk if dtype == target else chunk.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataHashError(f"column {path}: cannot normalize a {dtype} chunk for hashing: {exc}") from exc
    return chunk
