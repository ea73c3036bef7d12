"""Shared click parameter types: every argument is checked here, before a command reads or writes anything.

How it works, and why: docs/architecture.md, "ml_platform/cli/params.py".
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import click

from ml_platform.errors import ConfigurationError
from ml_platform.registry.entities import check_model_name

__all__ = ["BoundedText", "FiniteNumber", "ModelName", "PathText", "VersionNumber", "WritableDir", "printable"]

#: The largest version number SQLite (and MLflow's integer column) can hold.
MAX_VERSION = 2**63 - 1
#: Arguments longer than this are refused (paths, URIs, names); free text has its own bound.
MAX_ARGUMENT = 4096
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe(char: str) -> bool:
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


def printable(text: object) -> str:
    """``text`` with control characters and bidirectional overrides escaped (``\\u202e``): one honest line."""
    return "".join(f"\\u{ord(c):04x}" if _unsafe(c) else c for c in str(text))


class BoundedText(click.ParamType):
    """Free text of 1 to ``max_length`` characters without control characters or bidirectional overrides."""

    name = "text"

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text.strip():
            self.fail("is empty: say it in words", param, ctx)
        if len(text) > self.max_length:
            self.fail(f"is {len(text)} characters long; at most {self.max_length} are kept", param, ctx)
        bad = sorted({printable(c) for c in text if _unsafe(c)})
        if bad:
            self.fail(f"holds control or bidirectional characters ({', '.join(bad)}) that would hide or reorder "
                      "what is recorded; write it on one line of plain text", param, ctx)
        return text


class PathText(BoundedText):
    """A path or URI: bounded text whose every ``/``-separated name fits a file name (255 bytes)."""

    name = "path"

    def __init__(self) -> None:
        super().__init__(MAX_ARGUMENT)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in text.split("/")):
            self.fail(f"{printable(text[:60])!r}... has a name longer than a file name can be (255 bytes)", param, ctx)
        return text


class ModelName(click.ParamType):
    """A registered model name as MLflow allows it (letters, digits, ``_.-``; at most 128)."""

    name = "model"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return check_model_name(str(value))
        except ConfigurationError:
            self.fail(f"{printable(str(value)[:140])!r} is not a model name: use 1-128 letters, digits, '_', '.' "
                      "or '-', starting with a letter or digit", param, ctx)


class VersionNumber(click.ParamType):
    """A model version: ASCII digits, 1 to 2**63-1 (``²`` and ``٣`` are digits to Python, not to MLflow)."""

    name = "version"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if len(text) > 19 or not re.fullmatch(r"[0-9]+", text) or not 1 <= int(text) <= MAX_VERSION:
            self.fail(f"{printable(text[:40])!r} is not a version number: versions are positive integers like 3",
                      param, ctx)
        return str(int(text))


class FiniteNumber(click.ParamType):
    """A finite number of seconds (or days) in ``[minimum, maximum]``, ``minimum`` excluded when ``open_min``."""

    name = "number"

    def __init__(self, minimum: float, maximum: float, *, open_min: bool = False) -> None:
        self.minimum, self.maximum, self.open_min = minimum, maximum, open_min

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{printable(str(value)[:40])!r} is not a number", param, ctx)
        low = "(" if self.open_min else "["
        if (not math.isfinite(number) or number < self.minimum or number > self.maximum
                or (self.open_min and number == self.minimum)):
            self.fail(f"{printable(str(value)[:40])!r} is not a finite number in {low}{self.minimum:g}, "
                      f"{self.maximum:g}]", param, ctx)
        return number


class WritableDir(click.ParamType):
    """A folder to write into: an existing writable folder, or a new one whose parent is one."""

    name = "directory"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text or len(text) > MAX_ARGUMENT or "\x00" in text:
            self.fail(f"{printable(text[:40])!r} is not a usable path", param, ctx)
        path = Path(text)
        try:
            target = path if path.exists() else path.absolute().parent
            is_dir, writable = target.is_dir(), os.access(target, os.W_OK | os.X_OK)
        except OSError as exc:
            self.fail(f"{printable(text[:80])!r} cannot be used: {exc.strerror}", param, ctx)
        if not is_dir:
            what = "is not a folder" if target == path else f"cannot be created: {target} is not an existing folder"
            self.fail(f"{printable(text[:80])!r} {what}; create the parent folder first or pick another path",
                      param, ctx)
        if not writable:
            self.fail(f"{printable(str(target)[:80])!r} is not writable; pick a folder you can write to", param, ctx)
        return text
