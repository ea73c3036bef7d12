"""Feature schemas of deploy contracts: ordered, typed, nullable columns, writer-independent.

How it works, and why: docs/architecture.md, "ml_platform/registry/schema.py".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ml_platform.errors import ConfigurationError, DataHashError
from ml_platform.lineage.data_types import logical_type

if TYPE_CHECKING:
    import polars as pl

__all__ = ["FeatureField", "FeatureSchema", "arrow_type", "normalize_type"]

_TIMESTAMP = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]$")
_DECIMAL = re.compile(r"^decimal\((\d+),(-?\d+)\)$")


def normalize_type(data_type: pa.DataType, *, column: str = "?") -> str:
    """Return the logical type string of an Arrow type: exactly the data hash's (``logical_type``).

    Raises:
        ConfigurationError: for struct, map, fixed-size-list, union and other nested types.
    """
    flat = data_type.value_type if pa.types.is_dictionary(data_type) else data_type
    if pa.types.is_nested(flat) and not (pa.types.is_list(flat) or pa.types.is_large_list(flat)):
        raise ConfigurationError(
            f"feature column {column!r} has nested type {data_type}; a deploy contract describes flat "
            "feature columns (scalars or lists): flatten or unnest it before it reaches the model"
        )
    try:
        return logical_type(data_type, repr(column))[0]
    except DataHashError as exc:
        raise ConfigurationError(f"feature column {column!r}: {exc}") from exc


def arrow_type(type_string: str) -> pa.DataType:
    """Rebuild an Arrow type from a normalized type string (strings/binaries become the large forms).

    Raises:
        ConfigurationError: if the string is not a normalized type this module can produce.
    """
    text = type_string.strip() if isinstance(type_string, str) else ""
    if text == "utf8":
        return pa.large_string()
    if text == "binary":
        return pa.large_binary()
    if text.startswith("list<") and text.endswith(">"):
        return pa.large_list(arrow_type(text[5:-1]))
    if match := _TIMESTAMP.match(text):
        return pa.timestamp(match.group(1), tz=match.group(2))
    if match := _DECIMAL.match(text):
        precision, scale = int(match.group(1)), int(match.group(2))
        return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)
    try:
        result = pa.type_for_alias(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"unknown feature type {type_string!r}; expected a normalized Arrow type string such as "
            "'double', 'int64', 'utf8', 'date32[day]' or 'timestamp[us, tz=UTC]'"
        ) from exc
    if normalize_type(result) != text:  # aliases like 'float64' or 'string' are not normalized forms
        raise ConfigurationError(
            f"feature type {type_string!r} is not in normalized form; write {normalize_type(result)!r}"
        )
    return result


@dataclass(frozen=True)
class FeatureField:
    """One column of a feature schema.

    Attributes:
        name: Column name.
        type: Normalized logical type string (see :func:`normalize_type`).
        nullable: Whether the column may hold nulls.
    """

    name: str
    type: str
    nullable: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigurationError(f"feature column name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.nullable, bool):
            raise ConfigurationError(f"feature column {self.name!r}: nullable must be a bool, got {self.nullable!r}")
        if not isinstance(self.type, str):
            raise ConfigurationError(f"feature column {self.name!r}: type must be a string, got {self.type!r}")
        try:
            arrow_type(self.type)
        except ConfigurationError as exc:
            raise ConfigurationError(f"feature column {self.name!r}: {exc.args[0]}") from exc

    def to_arrow(self) -> pa.Field:
        """The Arrow field (strings/binaries as the large forms polars writes)."""
        return pa.field(self.name, arrow_type(self.type), nullable=self.nullable)

    def describe(self) -> str:
        """Short human form, e.g. ``"double, non-null"``."""
        return f"{self.type}, {'nullable' if self.nullable else 'non-null'}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}

    @classmethod
    def from_dict(cls, data: Any) -> FeatureField:
        """Rebuild a field from :meth:`to_dict` output.

        Raises:
            ConfigurationError: if keys are missing or of the wrong type.
        """
        if not isinstance(data, dict) or set(data) != {"name", "type", "nullable"}:
            raise ConfigurationError(f"feature field record {data!r} must have exactly name, type, nullable")
        return cls(name=data["name"], type=data["type"], nullable=data["nullable"])


@dataclass(frozen=True)
class FeatureSchema:
    """The ordered columns of a model's input frame.

    Example:
        >>> import pyarrow as pa
        >>> FeatureSchema.from_arrow(pa.schema([("mom_5d", pa.float64())])).names
        ('mom_5d',)
    """

    fields: tuple[FeatureField, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.fields, tuple) or not all(isinstance(f, FeatureField) for f in self.fields):
            raise ConfigurationError("FeatureSchema.fields must be a tuple of FeatureField")
        if not self.fields:
            raise ConfigurationError("a feature schema needs at least one column")
        names = [f.name for f in self.fields]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigurationError(f"duplicate feature column(s) {duplicates}; column names must be unique")

    @property
    def names(self) -> tuple[str, ...]:
        """Column names in order."""
        return tuple(f.name for f in self.fields)

    def __iter__(self) -> Iterator[FeatureField]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def field(self, name: str) -> FeatureField:
        """The field called ``name``.

        Raises:
            ConfigurationError: if there is none.
        """
        for f in self.fields:
            if f.name == name:
                return f
        raise ConfigurationError(f"no feature column {name!r}; the schema has {list(self.names)}")

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> FeatureSchema:
        """Build from an Arrow schema, keeping order and each field's nullability."""
        if not isinstance(schema, pa.Schema):
            raise ConfigurationError(f"expected a pyarrow.Schema, got {type(schema).__name__}")
        return cls(
            tuple(
                FeatureField(f.name, normalize_type(f.type, column=f.name), bool(f.nullable)) for f in schema
            )
        )

    @classmethod
    def from_polars(cls, frame: pl.DataFrame | pl.Schema, *, non_null: Iterable[str] = ()) -> FeatureSchema:
        """Build from a polars frame or schema.

        Polars schemas carry no nullability, so every column is nullable except those named in
        ``non_null`` (each must exist). Only the schema is read, never the data.

        Raises:
            ConfigurationError: for a name in ``non_null`` that is not a column, or a wrong argument.
        """
        import polars as pl

        if isinstance(frame, pl.DataFrame):
            schema = frame.schema
        elif isinstance(frame, pl.Schema):
            schema = frame
        else:
            raise ConfigurationError(f"expected a polars DataFrame or Schema, got {type(frame).__name__}")
        required = set(non_null)
        unknown = sorted(required - set(schema.names()))
        if unknown:
            raise ConfigurationError(f"non_null names unknown column(s) {unknown}; columns: {schema.names()}")
        arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
        return cls(
            tuple(
                FeatureField(f.name, normalize_type(f.type, column=f.name), f.name not in required)
                for f in arrow_schema
            )
        )

    def to_arrow(self) -> pa.Schema:
        """The Arrow schema (strings/binaries as the large forms polars writes)."""
        return pa.schema([f.to_arrow() for f in self.fields])

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.fields]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> FeatureSchema:
        """Rebuild from :meth:`to_list` output.

        Raises:
            ConfigurationError: for anything that is not a list of field records.
        """
        if not isinstance(data, list):
            raise ConfigurationError(f"feature schema record must be a list of fields, got {type(data).__name__}")
        return cls(tuple(FeatureField.from_dict(item) for item in data))
