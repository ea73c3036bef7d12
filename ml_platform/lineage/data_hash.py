"""Data hash: a content hash of an Arrow table, independent of how the table happens to be stored.

How it works, and why: docs/architecture.md, "ml_platform/lineage/data_hash.py".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import xxhash

from ml_platform.errors import DataHashError
from ml_platform.lineage.data_types import Kind, canonical_chunk, logical_type
from ml_platform.lineage.encoding import frame

if TYPE_CHECKING:
    import polars as pl

DATA_HASH_VERSION = "mlp-data-v1"
_PREFIX = "xxh3_128:"


def hash_table(table: pa.Table | pa.RecordBatch | pl.DataFrame) -> str:
    """Content hash of a table (see the module docstring for the exact algorithm).

    Args:
        table: a pyarrow ``Table`` or ``RecordBatch``, or a polars ``DataFrame``.

    Returns:
        ``"xxh3_128:<32 hex digits>"``.

    Raises:
        DataHashError: the input is not a table, or a column has an unsupported type.

    Example:
        >>> t = pa.table({"x": [1, 2, 3]})
        >>> hash_table(t) == hash_table(pa.concat_tables([t.slice(0, 1), t.slice(1)]))
        True
    """
    arrow = _as_arrow_table(table)
    header = bytearray()
    for field in (DATA_HASH_VERSION, str(arrow.num_rows), str(arrow.num_columns)):
        header += frame(field)
    columns: list[_ColumnHasher] = []
    for name, column in zip(arrow.column_names, arrow.columns):
        hasher = _ColumnHasher(column.type, repr(name))
        header += frame(name) + frame(hasher.logical)
        for chunk in column.chunks:
            hasher.update(chunk)
        columns.append(hasher)
    final = xxhash.xxh3_128(bytes(header))
    for hasher in columns:
        for digest in hasher.digests():
            final.update(frame(digest))
    return _PREFIX + final.hexdigest()


def raw_buffer_hash(table: pa.Table) -> str:
    """Plain XXH3-128 over every buffer of every chunk as stored: the benchmark baseline.

    It is *not* a logical content hash: it changes with chunking, slicing and padding. It measures
    how fast the machine can hash the same bytes with no normalization at all.
    """
    if not isinstance(table, pa.Table):
        raise DataHashError(f"raw_buffer_hash expects a pyarrow Table, got {type(table).__qualname__}")
    hasher = xxhash.xxh3_128()
    for column in table.columns:
        for chunk in column.chunks:
            for buffer in chunk.buffers():
                if buffer is not None:
                    hasher.update(buffer)
    return _PREFIX + hasher.hexdigest()


def _as_arrow_table(table: Any) -> pa.Table:
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    module = type(table).__module__ or ""
    if module.startswith("polars") and type(table).__name__ == "DataFrame":
        opaque = [name for name, dtype in table.schema.items() if _holds_python_objects(dtype)]
        if opaque:  # polars exports Object columns as raw pointers: never content
            raise DataHashError(
                f"columns {opaque} hold Python objects (polars Object dtype), which have no content hash; "
                "cast them to a supported type (strings, numbers, structs) first"
            )
        try:
            return table.to_arrow()
        except Exception as exc:  # a polars failure (e.g. an Object column), re-raised at our boundary
            raise DataHashError(f"cannot convert the polars DataFrame to Arrow for hashing: {exc}") from exc
    raise DataHashError(
        f"hash_table expects a pyarrow Table or RecordBatch or a polars DataFrame, got "
        f"{type(table).__module__}.{type(table).__qualname__}; convert it first (e.g. pa.Table.from_pandas)"
    )


def _holds_python_objects(dtype: Any) -> bool:
    """Whether a polars dtype is, or nests, the ``Object`` dtype."""
    import polars as pl

    if isinstance(dtype, pl.Object) or dtype == pl.Object:
        return True
    if isinstance(dtype, (pl.List, pl.Array)):
        return _holds_python_objects(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_holds_python_objects(field.dtype) for field in dtype.fields)
    return False


class _ColumnHasher:
    """The streams of one column (or nested child), fed chunk by chunk in row order."""

    def __init__(self, dtype: pa.DataType, path: str) -> None:
        self.logical, self.kind = logical_type(dtype, path)
        self._path = path
        self._rows = 0
        self._nulls = xxhash.xxh3_128()
        self._streams: list[xxhash.xxh3_128] = []
        self._children: list[_ColumnHasher] = []
        if self.kind in (Kind.FIXED, Kind.BOOL):
            self._streams = [xxhash.xxh3_128()]
        elif self.kind is Kind.VARBINARY:
            self._streams = [xxhash.xxh3_128(), xxhash.xxh3_128()]
        elif self.kind is Kind.LIST:
            self._streams = [xxhash.xxh3_128()]
        if self.kind in (Kind.LIST, Kind.FIXED_LIST):
            self._children = [_ColumnHasher(_storage_type(dtype).value_type, f"{path}[]")]
        elif self.kind is Kind.STRUCT:
            struct = _storage_type(dtype)
            self._children = [
                _ColumnHasher(struct.field(i).type, f"{path}.{struct.field(i).name}")
                for i in range(struct.num_fields)
            ]

    def update(self, chunk: pa.Array) -> None:
        """Feed the next chunk of the column (rows continue where the previous chunk ended)."""
        length = len(chunk)
        if length == 0:
            return
        chunk = canonical_chunk(chunk, self._path)
        nulls: np.ndarray | None = None
        if chunk.null_count:
            nulls = _null_positions(chunk)
            self._nulls.update(nulls + self._rows)
        kind = self.kind
        if kind is Kind.FIXED:
            self._streams[0].update(_fixed_width_values(chunk, nulls))
        elif kind is Kind.BOOL:
            if nulls is not None:
                chunk = chunk.fill_null(False)
            self._streams[0].update(_fixed_width_values(chunk.cast(pa.uint8()), None))
        elif kind is Kind.VARBINARY:
            self._update_varbinary(chunk, nulls)
        elif kind is Kind.LIST:
            self._streams[0].update(_lengths(chunk, nulls))
            self._children[0].update(chunk.flatten())
        elif kind is Kind.FIXED_LIST:
            self._children[0].update(chunk.flatten())
        elif kind is Kind.STRUCT:
            for child, field in zip(self._children, chunk.flatten()):
                child.update(field)
        self._rows += length

    def _update_varbinary(self, chunk: pa.Array, nulls: np.ndarray | None) -> None:
        offsets = _offsets(chunk)
        lengths = np.diff(offsets)
        if nulls is not None and lengths[nulls].any():
            # Null slots that still point at bytes: rebuild the chunk without them.
            chunk = chunk.fill_null(pa.scalar(b"", type=chunk.type))
            offsets = _offsets(chunk)
            lengths = np.diff(offsets)
        self._streams[0].update(lengths.astype("<i8", copy=False))
        data = chunk.buffers()[2]
        if data is not None and offsets[-1] > offsets[0]:
            self._streams[1].update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])

    def digests(self) -> list[bytes]:
        """The 16-byte digests of this column's streams, then its children's, depth first."""
        out = [self._nulls.digest(), *(stream.digest() for stream in self._streams)]
        for child in self._children:
            out.extend(child.digests())
        return out


def _storage_type(dtype: pa.DataType) -> Any:
    return dtype.value_type if pa.types.is_dictionary(dtype) else dtype


def _offsets(chunk: pa.Array) -> np.ndarray:
    """The ``length + 1`` offsets of a (large) binary/string/list chunk, respecting its slice offset."""
    dtype = chunk.type
    wide = pa.types.is_large_string(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_large_list(dtype)
    offset_type = np.dtype("<i8") if wide else np.dtype("<i4")
    return np.frombuffer(
        chunk.buffers()[1],
        dtype=offset_type,
        count=len(chunk) + 1,
        offset=chunk.offset * offset_type.itemsize,
    )


def _null_positions(chunk: pa.Array) -> np.ndarray:
    """Chunk-relative indices (int64, ascending) of the null slots of a chunk that has nulls."""
    length, offset = len(chunk), chunk.offset
    validity = chunk.buffers()[0]
    if validity is None:  # the null type: every slot is null
        return np.arange(length, dtype="<i8")
    bits = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), count=offset + length, bitorder="little")
    return np.flatnonzero(bits[offset:] == 0).astype("<i8", copy=False)


def _lengths(chunk: pa.Array, nulls: np.ndarray | None) -> np.ndarray:
    lengths = np.diff(_offsets(chunk)).astype("<i8")
    if nulls is not None:
        lengths[nulls] = 0
    return lengths


def _fixed_width_values(chunk: pa.Array, nulls: np.ndarray | None) -> np.ndarray:
    """The bytes of a fixed-width chunk's used range, with null slots zeroed (copying only then)."""
    width = chunk.type.byte_width
    dtype = np.dtype(f"<u{width}") if width in (1, 2, 4, 8) else np.dtype(np.uint8)
    count = len(chunk) if dtype.itemsize == width else len(chunk) * width
    values = np.frombuffer(chunk.buffers()[1], dtype=dtype, count=count, offset=chunk.offset * width)
    if nulls is None:
        return values
    if dtype.itemsize == width and not values[nulls].any():
        return values  # null slots already hold zeros: nothing to canonicalize
    canonical = values.copy() if dtype.itemsize == width else values.reshape(len(chunk), width).copy()
    canonical[nulls] = 0
    return canonical
