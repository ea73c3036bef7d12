"""Environment acceptances: a recorded, hashed decision that artefacts of one lock may load under another.

How it works, and why: docs/architecture.md, "ml_platform/environment/acceptance.py".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ml_platform.environment.diff import (
    EnvironmentDiff,
    EnvironmentPolicy,
    check_environment,
    diff_environments,
)
from ml_platform.environment.lock import EnvironmentLock
from ml_platform.errors import AcceptanceTampered, ConfigurationError, EnvironmentMismatch

__all__ = [
    "ACCEPTANCE_SCHEMA",
    "AcceptanceFile",
    "EnvironmentAcceptance",
    "EnvironmentVerdict",
    "accept_environment",
    "decide_environment",
    "parse_acceptance",
]

#: schema tag of an acceptance record; part of the hashed JSON, so the JSON form is the hash scheme
ACCEPTANCE_SCHEMA = "ml_platform.environment_acceptance/v1"
#: the longest rationale kept (a paragraph or a page, not a document)
RATIONALE_LIMIT = 20_000

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_FIELDS = ("schema", "from_lock", "to_lock", "differences", "rationale", "accepted_by", "accepted_at")


def _canonical(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


@dataclass(frozen=True)
class EnvironmentAcceptance:
    """Artefacts produced under lock ``from_lock`` may be loaded under ``to_lock`` (``strict``): who, when, why.

    Only that exact pair is accepted: no chains (``A -> B`` and ``B -> C`` do not accept ``A`` under ``C``).

    Attributes:
        from_lock: the environment hash of the artefacts accepted (the old image's lock).
        to_lock: the environment hash they are accepted under (the new image's lock).
        differences: every difference from ``from_lock`` to ``to_lock`` (``diff_environments``), as reviewed.
        rationale: why the difference cannot change a result, in the acceptor's words.
        accepted_by: who recorded it.
        accepted_at: when (UTC, ISO 8601).
    """

    from_lock: str
    to_lock: str
    differences: tuple[str, ...]
    rationale: str
    accepted_by: str
    accepted_at: str
    schema: str = ACCEPTANCE_SCHEMA

    def __post_init__(self) -> None:
        object.__setattr__(self, "differences", tuple(self.differences))
        problems = []
        if self.schema != ACCEPTANCE_SCHEMA:
            problems.append(f"schema {self.schema!r} is not {ACCEPTANCE_SCHEMA!r}")
        for name in ("from_lock", "to_lock"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _SHA256.fullmatch(value):
                problems.append(f"{name} {value!r} is not an environment hash (sha256:<64 hex>)")
        if self.from_lock == self.to_lock:
            problems.append("from_lock and to_lock are the same lock: there is nothing to accept")
        if not self.differences or not all(isinstance(d, str) and d for d in self.differences):
            problems.append("differences must list what differs, as text")
        if not isinstance(self.rationale, str) or not self.rationale.strip():
            problems.append("the rationale is empty: say why the difference cannot change a result")
        elif len(self.rationale) > RATIONALE_LIMIT:
            problems.append(f"the rationale is {len(self.rationale)} characters; at most {RATIONALE_LIMIT} are kept")
        if not isinstance(self.accepted_by, str) or not self.accepted_by.strip():
            problems.append("accepted_by is empty: name who accepts")
        try:
            stamp = dt.datetime.fromisoformat(self.accepted_at)
            if stamp.utcoffset() != dt.timedelta(0):
                problems.append(f"accepted_at {self.accepted_at!r} is not in UTC")
        except (TypeError, ValueError):
            problems.append(f"accepted_at {self.accepted_at!r} is not an ISO timestamp")
        if problems:
            raise ConfigurationError("environment acceptance: " + "; ".join(problems))

    def fields(self) -> dict[str, Any]:
        """Every field but the hash, as JSON values."""
        return {"schema": self.schema, "from_lock": self.from_lock, "to_lock": self.to_lock,
                "differences": list(self.differences), "rationale": self.rationale,
                "accepted_by": self.accepted_by, "accepted_at": self.accepted_at}

    @property
    def sha256(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of :meth:`fields` (schema tag included)."""
        return "sha256:" + hashlib.sha256(_canonical(self.fields())).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """The stored form: every field and the hash over them."""
        return {**self.fields(), "sha256": self.sha256}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=True).encode() + b"\n"

    @property
    def file_name(self) -> str:
        """``<hex>.json``: named by its own hash, so a record is never overwritten by another."""
        return self.sha256.split(":", 1)[1] + ".json"

    @property
    def diff(self) -> EnvironmentDiff:
        return EnvironmentDiff(self.differences)


def accept_environment(from_lock: EnvironmentLock, to_lock: EnvironmentLock, rationale: str, accepted_by: str,
                       accepted_at: dt.datetime) -> EnvironmentAcceptance:
    """The acceptance of ``from_lock``'s artefacts under ``to_lock``, with the difference between them.

    Raises:
        ConfigurationError: the locks are equal, the rationale or the acceptor is empty.
    """
    if from_lock.hash == to_lock.hash:
        raise ConfigurationError(f"the lock {from_lock.hash} is the running one: its artefacts load already, there "
                                 "is nothing to accept")
    return EnvironmentAcceptance(
        from_lock=from_lock.hash, to_lock=to_lock.hash,
        differences=diff_environments(from_lock, to_lock).differences, rationale=rationale,
        accepted_by=accepted_by, accepted_at=accepted_at.astimezone(dt.UTC).isoformat(timespec="seconds"))


@dataclass(frozen=True)
class AcceptanceFile:
    """One stored acceptance record as read: the acceptance, or why it accepts nothing.

    Attributes:
        source: the file's path or URI.
        acceptance: the verified record (None: it did not verify).
        problem: what is wrong with it (None: it verified).
        claims: the ``(from_lock, to_lock)`` the record names, verified or not (what a load may rely on).
    """

    source: str
    acceptance: EnvironmentAcceptance | None
    problem: str | None
    claims: tuple[str | None, str | None]


def parse_acceptance(data: bytes, source: str, name: str) -> AcceptanceFile:
    """Read one stored record; a record that does not verify is returned with its problem, never raised.

    ``name`` is the file's name, which must be its own hash (``<hex>.json``).
    """
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return AcceptanceFile(source, None, f"not JSON ({exc})", (None, None))
    if not isinstance(record, dict):
        return AcceptanceFile(source, None, "not a JSON object", (None, None))
    claims = (record.get("from_lock"), record.get("to_lock"))
    claims = tuple(c if isinstance(c, str) else None for c in claims)  # type: ignore[assignment]
    extra = sorted(set(record) - {*_FIELDS, "sha256"})
    missing = [f for f in (*_FIELDS, "sha256") if f not in record]
    if extra or missing:
        return AcceptanceFile(source, None, f"fields missing {missing} or unknown {extra}", claims)
    try:
        acceptance = EnvironmentAcceptance(**{f: record[f] for f in _FIELDS if f != "schema"},
                                           schema=record["schema"])
    except (ConfigurationError, TypeError) as exc:
        return AcceptanceFile(source, None, str(exc), claims)
    if record["sha256"] != acceptance.sha256:
        return AcceptanceFile(source, None, f"its fields hash to {acceptance.sha256}, but it records "
                                            f"{record['sha256']!r}: it was edited after it was recorded", claims)
    if name != acceptance.file_name:
        return AcceptanceFile(source, None, f"it is named {name!r}, not by its hash ({acceptance.file_name}): it "
                                            "was renamed or copied over another record", claims)
    return AcceptanceFile(source, acceptance, None, claims)


@dataclass(frozen=True)
class EnvironmentVerdict:
    """What a load found: the differences (stored -> running) and the acceptance it relied on, if any."""

    diff: EnvironmentDiff
    acceptance: EnvironmentAcceptance | None = None


def decide_environment(stored: EnvironmentLock, running: EnvironmentLock, policy: EnvironmentPolicy | str,
                       what: str, acceptances: Iterable[AcceptanceFile] = ()) -> EnvironmentVerdict:
    """:func:`check_environment`, where ``strict`` also passes a stored lock accepted for exactly this running lock.

    Only a verified record whose ``from_lock`` is the stored lock's hash and whose ``to_lock`` is the running
    lock's hash counts: no chains, no prefixes. ``warn`` and ``off`` are :func:`check_environment` unchanged.

    Raises:
        AcceptanceTampered: under ``strict``, the only record naming this pair does not verify.
        EnvironmentMismatch: under ``strict``, nothing accepts the pair; the message says how to accept it.
    """
    policy = EnvironmentPolicy.parse(policy)
    if policy is not EnvironmentPolicy.STRICT or stored.hash == running.hash:
        return EnvironmentVerdict(check_environment(stored, running, policy, what))
    pair = (stored.hash, running.hash)
    relied = [found for found in acceptances if found.claims == pair]
    for found in relied:
        if found.acceptance is not None:
            return EnvironmentVerdict(diff_environments(stored, running), found.acceptance)
    if relied:
        bad = relied[0]
        raise AcceptanceTampered(
            f"{what} was produced in environment {stored.hash}, accepted under the running {running.hash} only by "
            f"the record {bad.source}, which does not verify ({bad.problem}); it accepts nothing. Run "
            f"`ml-platform verify`, and record the acceptance again (`ml-platform environment accept --from "
            f"{stored.hash} --rationale-file FILE`)")
    try:
        return EnvironmentVerdict(check_environment(stored, running, policy, what))
    except EnvironmentMismatch as exc:
        raise EnvironmentMismatch(
            f"{exc.args[0]}\nOr, if the new environment cannot change a result, record that decision: "
            f"`ml-platform environment accept --from {stored.hash} --rationale-file FILE` (run in this "
            "environment; it accepts exactly this pair of locks)") from None
