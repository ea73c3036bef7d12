"""Canonical, length-prefixed byte encoding shared by the code, graph and data hashes.

How it works, and why: docs/architecture.md, "ml_platform/lineage/encoding.py".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_LENGTH_BYTES = 8


def frame(field: bytes | str) -> bytes:
    """Return one field framed as ``len(field)`` (8 bytes, little-endian) followed by the field.

    Args:
        field: the field's bytes, or text (encoded as UTF-8).

    Returns:
        The framed field.
    """
    data = field.encode("utf-8") if isinstance(field, str) else bytes(field)
    return len(data).to_bytes(_LENGTH_BYTES, "little") + data


def length_prefixed(fields: Iterable[bytes | str]) -> bytes:
    """Concatenate framed fields into one unambiguous byte string.

    Example:
        >>> length_prefixed(["ab", "c"]) != length_prefixed(["a", "bc"])
        True
    """
    return b"".join(frame(field) for field in fields)


def sha256_of_fields(fields: Iterable[bytes | str]) -> str:
    """SHA-256 of the length-prefixed fields, rendered as ``"sha256:<64 hex digits>"``."""
    return "sha256:" + hashlib.sha256(length_prefixed(fields)).hexdigest()
