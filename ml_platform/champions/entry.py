"""Ledger entries and their hash chain (scheme ``ml_platform.ledger/v1``). Pure: stdlib only.

How it works, and why: docs/architecture.md, "ml_platform/champions/entry.py".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ml_platform.errors import ConfigurationError

__all__ = [
    "GENESIS_HASH",
    "KINDS",
    "LEDGER_SCHEME",
    "LedgerEntry",
    "MoveKind",
    "canonical_bytes",
    "check_sha256",
    "check_text",
    "compute_entry_hash",
    "format_time",
    "parse_time",
]

LEDGER_SCHEME = "ml_platform.ledger/v1"
"""The id of the entry encoding and hash; stored on every entry and hashed with it."""

GENESIS_HASH = "sha256:" + "0" * 64
"""What the first entry of every model chains to (its ``prev_hash``)."""


class MoveKind:
    """The kinds of champion move."""

    PROMOTION = "promotion"
    ROLLBACK = "rollback"


KINDS = (MoveKind.PROMOTION, MoveKind.ROLLBACK)

#: The hashed fields, in the order :func:`canonical_bytes` documents them (the JSON sorts them anyway).
HASHED_FIELDS = (
    "scheme", "model", "seq", "kind", "from_version", "to_version", "actor", "approver", "reason",
    "report_ref", "report_sha256", "rationale_ref", "rationale_sha256", "override", "recorded_at", "prev_hash",
)

_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def format_time(moment: dt.datetime) -> str:
    """``moment`` (timezone-aware) in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, the hashed form."""
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigurationError(f"recorded_at must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> dt.datetime:
    """The inverse of :func:`format_time`; refuses any other spelling (so a stored time hashes as written)."""
    if not isinstance(text, str) or not _TIME.match(text):
        raise ValueError(f"not a ledger time (YYYY-MM-DDTHH:MM:SS.ffffffZ): {text!r}")
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def check_sha256(name: str, value: object, *, optional: bool = False) -> str | None:
    """``value`` if it is ``sha256:`` and 64 lower-case hex digits (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not _SHA256.match(value):
        raise ConfigurationError(f"{name} must be 'sha256:' followed by 64 lower-case hex digits, got {value!r}")
    return value


def check_text(name: str, value: object, *, max_length: int, optional: bool = False,
               multiline: bool = False) -> str | None:
    """``value`` if it is a non-blank string of at most ``max_length`` characters without control characters."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > max_length:
        raise ConfigurationError(f"{name} is {len(value)} characters long; the ledger keeps at most {max_length}")
    bad = _CONTROL.search(value) or (None if multiline else re.search(r"[\r\n\t]", value))
    if bad:
        raise ConfigurationError(f"{name} contains the control character {bad.group()!r}; remove it")
    return value


@dataclass(frozen=True)
class LedgerEntry:
    """One champion move, as recorded.

    Attributes:
        model: Registered model name.
        seq: Position in the model's chain, from 1, without gaps.
        kind: ``promotion`` or ``rollback`` (:class:`MoveKind`).
        from_version: The champion before the move (``None`` for the first entry).
        to_version: The champion after the move: the champion of record while this entry is the head.
        actor: Who (or which job) made the move.
        approver: Who approved it (promotions through the four-eyes gate), if anyone.
        reason: Why, in words.
        report_ref: Where the numeric report is stored (e.g. an MLflow artefact URI), if any.
        report_sha256: ``sha256:<hex>`` of the report's bytes; given exactly when ``report_ref`` is.
        rationale_ref: Where the written rationale is stored, if any.
        rationale_sha256: ``sha256:<hex>`` of the rationale's bytes; given exactly when ``rationale_ref`` is.
        override: The rationale declared an override of a failed threshold.
        recorded_at: When the ledger recorded the move (UTC, microseconds).
        prev_hash: ``entry_hash`` of the entry before (:data:`GENESIS_HASH` for the first).
        entry_hash: ``sha256:<hex>`` of :func:`canonical_bytes` of every field above.
        scheme: The encoding and hash scheme (:data:`LEDGER_SCHEME`).
    """

    model: str
    seq: int
    kind: str
    from_version: str | None
    to_version: str
    actor: str
    approver: str | None
    reason: str
    report_ref: str | None
    report_sha256: str | None
    rationale_ref: str | None
    rationale_sha256: str | None
    override: bool
    recorded_at: dt.datetime
    prev_hash: str
    entry_hash: str
    scheme: str = LEDGER_SCHEME

    @property
    def expected_hash(self) -> str:
        """The hash this entry's fields give (equal to ``entry_hash`` unless the entry was altered)."""
        return compute_entry_hash(self.hashed_fields())

    def hashed_fields(self) -> dict[str, Any]:
        """Every field but ``entry_hash``, in its hashed form (``recorded_at`` as text)."""
        values = {name: getattr(self, name) for name in HASHED_FIELDS if name != "recorded_at"}
        values["recorded_at"] = format_time(self.recorded_at)
        return values

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (for ``ml-platform history --json``)."""
        return {**self.hashed_fields(), "entry_hash": self.entry_hash}


def canonical_bytes(fields: dict[str, Any]) -> bytes:
    """The ``ml_platform.ledger/v1`` encoding of an entry's hashed fields (see the module docstring).

    Raises:
        ConfigurationError: a field is missing or extra, or the scheme is not ``v1``.
    """
    if set(fields) != set(HASHED_FIELDS):
        missing = sorted(set(HASHED_FIELDS) - set(fields))
        extra = sorted(set(fields) - set(HASHED_FIELDS))
        raise ConfigurationError(f"ledger entry fields do not match {LEDGER_SCHEME}: missing {missing}, extra {extra}")
    if fields["scheme"] != LEDGER_SCHEME:
        raise ConfigurationError(f"ledger scheme {fields['scheme']!r} is unknown to this ml_platform "
                                 f"(it writes and verifies {LEDGER_SCHEME!r}); upgrade ml_platform")
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def compute_entry_hash(fields: dict[str, Any]) -> str:
    """``sha256:<hex>`` of :func:`canonical_bytes` of ``fields``."""
    return "sha256:" + hashlib.sha256(canonical_bytes(fields)).hexdigest()
