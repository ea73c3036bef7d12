"""The two kinds of alert, kept apart by type. Pure: stdlib only.

How it works, and why: docs/architecture.md, "ml_platform/monitoring/alerts.py".
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from ml_platform.errors import ConfigurationError
from ml_platform.redact import redacted_url, redacted_values

__all__ = [
    "AlphaDriftFinding",
    "IncidentAction",
    "InfraCheckKind",
    "InfraIncident",
    "Severity",
    "alert_from_dict",
    "utc_now_text",
]

_KEY = re.compile(r"[A-Za-z0-9_.:/@=\-]{1,255}")


class Severity(StrEnum):
    """The PagerDuty Events API v2 severities (``critical``, ``error``, ``warning``, ``info``)."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class IncidentAction(StrEnum):
    """What an infra incident asks of the pager: open (``trigger``) or close (``resolve``) its key."""

    TRIGGER = "trigger"
    RESOLVE = "resolve"


class InfraCheckKind(StrEnum):
    """The infra checks: the expected partition exists, its schema is the champion's, it landed in time,
    the scheduled run ran and succeeded, the champion ledger's head agrees with its anchor."""

    FRESHNESS = "freshness"
    SCHEMA = "schema"
    LATENCY = "latency"
    SCHEDULED_RUN = "scheduled_run"
    LEDGER_ANCHOR = "ledger_anchor"


def utc_now_text(now: dt.datetime | None = None) -> str:
    """``now`` (default: the current time) as an ISO-8601 UTC text with microseconds."""
    moment = now or dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ConfigurationError(f"a time must be timezone-aware, got {moment!r}")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ConfigurationError(f"an alert key must be 1-255 characters of letters, digits and _.:/@=-, got {key!r}")
    return key


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"an alert's {name} must be a non-empty text, got {value!r}")
    return value


def _frozen_details(details: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(details, Mapping):
        raise ConfigurationError(f"alert details must be a mapping, got {type(details).__name__}")
    try:  # JSON round trip: the outbox must be able to hold it, and the copy cannot be mutated from outside
        frozen = json.loads(json.dumps(dict(details), sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"alert details must be JSON values without NaN or infinity: {exc}") from exc
    return redacted_values(frozen)  # an error quoted in the facts may name a URL with its password


@dataclass(frozen=True)
class InfraIncident:
    """An infra check that failed (``trigger``) or recovered (``resolve``): for on-call, through the pager.

    Attributes:
        key: De-duplication key, stable for one incident (``<check>:<asset>``): a second trigger of an
            open key is suppressed, a resolve closes it.
        check: Which infra check (:class:`InfraCheckKind`).
        asset: The asset key the check is about (``a/b`` form).
        summary: One line for the pager: what is wrong and what it affects.
        action: ``trigger`` or ``resolve``.
        severity: The pager severity (``error`` by default).
        partition: The partition concerned, if any.
        details: JSON-ready facts (expected partition, deadline, schema differences, run id...).
        observed_at: When the check saw it (ISO-8601 UTC).
    """

    route: ClassVar[str] = "pager"

    key: str
    check: InfraCheckKind
    asset: str
    summary: str
    action: IncidentAction = IncidentAction.TRIGGER
    severity: Severity = Severity.ERROR
    partition: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    observed_at: str = field(default_factory=utc_now_text)

    def __post_init__(self) -> None:
        _check_key(self.key)
        object.__setattr__(self, "check", InfraCheckKind(self.check))
        object.__setattr__(self, "action", IncidentAction(self.action))
        object.__setattr__(self, "severity", Severity(self.severity))
        _check_text("asset", self.asset)
        object.__setattr__(self, "summary", redacted_url(_check_text("summary", self.summary)))
        object.__setattr__(self, "details", _frozen_details(self.details))

    def resolved(self, summary: str, *, observed_at: str | None = None) -> InfraIncident:
        """The resolve of this incident (same key), saying why it is over."""
        return InfraIncident(key=self.key, check=self.check, asset=self.asset, summary=summary,
                             action=IncidentAction.RESOLVE, severity=Severity.INFO, partition=self.partition,
                             details=self.details, observed_at=observed_at or utc_now_text())

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "route": self.route, "key": self.key, "check": str(self.check),
                "asset": self.asset, "summary": self.summary, "action": str(self.action),
                "severity": str(self.severity), "partition": self.partition, "details": dict(self.details),
                "observed_at": self.observed_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InfraIncident:
        if data.get("type") != cls.__name__:
            raise ConfigurationError(f"not an {cls.__name__}: {data.get('type')!r}")
        return cls(key=data["key"], check=data["check"], asset=data["asset"], summary=data["summary"],
                   action=data["action"], severity=data["severity"], partition=data.get("partition"),
                   details=data.get("details") or {}, observed_at=data["observed_at"])


@dataclass(frozen=True)
class AlphaDriftFinding:
    """A champion earning differently from its validation: for research, never for the pager.

    Attributes:
        key: De-duplication key (``<model>:<version>:<statistics>``).
        model: Registered model name.
        version: The champion version the live returns came from.
        summary: One line: which statistics moved and by how much.
        live_window: The live days evaluated (``start..end``).
        validation_window: The champion's validation window (from its contract).
        statistics: JSON-ready results of every drift statistic (name, value, threshold, breached).
        report_ref: Where the research report is stored (an MLflow artefact reference), once written.
        observed_at: When the drift was found (ISO-8601 UTC).
    """

    route: ClassVar[str] = "research"

    key: str
    model: str
    version: str
    summary: str
    live_window: str
    validation_window: str
    statistics: Mapping[str, Any] = field(default_factory=dict)
    report_ref: str | None = None
    observed_at: str = field(default_factory=utc_now_text)

    def __post_init__(self) -> None:
        _check_key(self.key)
        for name in ("model", "version", "summary", "live_window", "validation_window"):
            _check_text(name, getattr(self, name))
        object.__setattr__(self, "summary", redacted_url(self.summary))
        object.__setattr__(self, "statistics", _frozen_details(self.statistics))

    def with_report(self, report_ref: str) -> AlphaDriftFinding:
        """The same finding, pointing at its stored research report."""
        return AlphaDriftFinding(key=self.key, model=self.model, version=self.version, summary=self.summary,
                                 live_window=self.live_window, validation_window=self.validation_window,
                                 statistics=self.statistics, report_ref=report_ref, observed_at=self.observed_at)

    def to_dict(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "route": self.route, "key": self.key, "model": self.model,
                "version": self.version, "summary": self.summary, "live_window": self.live_window,
                "validation_window": self.validation_window, "statistics": dict(self.statistics),
                "report_ref": self.report_ref, "observed_at": self.observed_at}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlphaDriftFinding:
        if data.get("type") != cls.__name__:
            raise ConfigurationError(f"not an {cls.__name__}: {data.get('type')!r}")
        return cls(key=data["key"], model=data["model"], version=data["version"], summary=data["summary"],
                   live_window=data["live_window"], validation_window=data["validation_window"],
                   statistics=data.get("statistics") or {}, report_ref=data.get("report_ref"),
                   observed_at=data["observed_at"])


def alert_from_dict(data: Mapping[str, Any]) -> InfraIncident | AlphaDriftFinding:
    """Either alert from its ``to_dict`` form (the outbox's lines)."""
    kind = data.get("type") if isinstance(data, Mapping) else None
    if kind == InfraIncident.__name__:
        return InfraIncident.from_dict(data)
    if kind == AlphaDriftFinding.__name__:
        return AlphaDriftFinding.from_dict(data)
    raise ConfigurationError(f"not an alert record (type {kind!r}); expected InfraIncident or AlphaDriftFinding")
