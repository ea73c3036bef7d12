"""Canonical text encoding of the constant values that hashed code reads.

How it works, and why: docs/architecture.md, "ml_platform/lineage/code_values.py".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import fractions
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ml_platform.errors import CodeHashError

_REPR_TYPES: tuple[type, ...] = (type(None), bool, int, float, complex, str, bytes)
_REPR_STABLE_TYPES: tuple[type, ...] = (
    dt.date,
    dt.datetime,
    dt.time,
    dt.timedelta,
    decimal.Decimal,
    fractions.Fraction,
    np.generic,
)


def qualified_name(obj: Any) -> str:
    """``<module>.<qualname>`` of a function or class (``<lambda>`` and ``<locals>`` kept)."""
    module = getattr(obj, "__module__", None) or "<unknown>"
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
    return f"{module}.{name}"


def unwrap(value: Any) -> Any:
    """Follow ``__wrapped__`` as set by ``functools.wraps``/``lru_cache`` (stored on the object itself)."""
    seen: set[int] = set()
    while "__wrapped__" in getattr(value, "__dict__", ()) and id(value) not in seen:
        seen.add(id(value))
        value = value.__dict__["__wrapped__"]
    return value


def is_named_callable(value: Any) -> bool:
    """A callable that names itself (builtin, ufunc, wrapper): has string ``__module__`` and ``__name__``."""
    return (
        callable(value)
        and isinstance(getattr(value, "__module__", None), str)
        and isinstance(getattr(value, "__name__", None), str)
    )


def _encode_library_value(value: Any) -> str | None:
    """Canonical text of a library value whose ``repr`` is not a stable encoding; None for anything else.

    Covers compiled regular expressions (``re.Pattern``: pattern and flags) and polars/Arrow
    schemas, fields and data types (names, types, nullability and schema metadata).
    """
    import polars as pl
    import pyarrow as pa

    if isinstance(value, re.Pattern):
        return f"re.compile({value.pattern!r},{int(value.flags)})"
    if isinstance(value, pl.Schema):
        return "polars.Schema{" + ",".join(f"{name!r}:{dtype!r}" for name, dtype in value.items()) + "}"
    if isinstance(value, pl.DataType):
        return f"polars.dtype:{value!r}"
    if isinstance(value, pa.Schema):
        fields = ",".join(_arrow_field(f) for f in value)
        meta = sorted((value.metadata or {}).items())
        return f"arrow.schema{{{fields}}}meta{meta!r}"
    if isinstance(value, pa.Field):
        return _arrow_field(value)
    if isinstance(value, pa.DataType):
        return f"arrow.type:{value}"
    return None


def _arrow_field(field: Any) -> str:
    return f"arrow.field({field.name!r}:{field.type}:{'null' if field.nullable else 'not null'})"


class ValueEncoder:
    """Encodes constant values; collects the project functions and classes they name.

    Args:
        is_project: predicate telling whether a module name belongs to the project.
        where: human description of where the value was found, for error messages.
    """

    def __init__(self, is_project: Callable[[str], bool], where: str) -> None:
        self._is_project = is_project
        self._where = where
        self._open: set[int] = set()
        self.edges: list[Any] = []

    def encode(self, value: Any) -> str:
        """Return the canonical text of ``value``; project functions/classes are added to ``edges``."""
        if type(value) in _REPR_TYPES:
            return repr(value)
        if isinstance(value, enum.Enum):
            cls = type(value)
            self._name_object(cls)
            return f"enum {qualified_name(cls)}.{value.name}={self.encode(value.value)}"
        if isinstance(value, _REPR_STABLE_TYPES):
            return repr(value)
        if inspect.isfunction(value) or inspect.isclass(value) or is_named_callable(value):
            return self._name_object(unwrap(value))
        if isinstance(value, functools.partial):
            return self._container(value, lambda: self._partial(value))
        if isinstance(value, (tuple, list)) and type(value) in (tuple, list):
            brackets = "()" if type(value) is tuple else "[]"
            return self._container(
                value, lambda: brackets[0] + ",".join(self.encode(v) for v in value) + brackets[1]
            )
        if type(value) is dict:
            return self._container(value, lambda: self._dict(value))
        if type(value) in (set, frozenset):
            return self._container(
                value,
                lambda: f"{type(value).__name__}{{" + ",".join(sorted(self.encode(v) for v in value)) + "}",
            )
        library_value = _encode_library_value(value)
        if library_value is not None:
            return library_value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
            return self._container(value, lambda: self._record(type(value), fields))
        if isinstance(value, tuple) and hasattr(type(value), "_fields"):
            fields = list(zip(type(value)._fields, value))
            return self._container(value, lambda: self._record(type(value), fields))
        raise CodeHashError(
            f"the code hasher cannot hash a value of type {type(value).__module__}.{type(value).__qualname__} "
            f"({self._where}): its content has no stable encoding. Wrap it in a function that builds it, "
            "or make it a plain constant (number, string, tuple, list, dict, enum member, dataclass of those)"
        )

    def _name_object(self, obj: Any) -> str:
        name = qualified_name(obj)
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and self._is_project(module):
            self.edges.append(obj)
            return f"<project {name}>"
        return f"<external {name}>"

    def _container(self, value: Any, render: Callable[[], str]) -> str:
        if id(value) in self._open:
            raise CodeHashError(
                f"the value {self._where} contains itself (a reference cycle); the code hasher needs "
                "acyclic constants: build the structure inside a function instead"
            )
        self._open.add(id(value))
        try:
            return render()
        finally:
            self._open.discard(id(value))

    def _dict(self, value: dict[Any, Any]) -> str:
        items = sorted((self.encode(k), self.encode(v)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"

    def _record(self, cls: type, fields: list[tuple[str, Any]]) -> str:
        body = ",".join(f"{name}={self.encode(field)}" for name, field in fields)
        return f"{self._name_object(cls)}({body})"

    def _partial(self, value: functools.partial[Any]) -> str:
        args = ",".join(self.encode(a) for a in value.args)
        keywords = self._dict(dict(value.keywords))
        return f"functools.partial({self.encode(value.func)};({args});{keywords})"
