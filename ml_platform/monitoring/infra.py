"""The infra checks, as pure functions of what the instance and the store report. No Dagster, no MLflow.

How it works, and why: docs/architecture.md, "ml_platform/monitoring/infra.py".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ml_platform.champions.chain import ChainReport
from ml_platform.errors import ConfigurationError
from ml_platform.monitoring.alerts import InfraCheckKind, InfraIncident, Severity, utc_now_text
from ml_platform.window import DataWindow

__all__ = [
    "ExpectedPartition",
    "InfraOutcome",
    "InfraSLO",
    "MarketSession",
    "RunFacts",
    "check_freshness",
    "check_latency",
    "check_ledger_anchor",
    "check_scheduled_run",
    "check_schema",
    "expected_partition",
    "incident_of",
    "session_day",
]

_MAX_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class MarketSession:
    """When a trading day's data can be expected: the session close, in the exchange's time zone.

    Attributes:
        close: Local close time (``16:00`` for a US equity session).
        timezone: IANA time zone of the exchange (``America/New_York``).
    """

    close: dt.time = dt.time(16, 0)
    timezone: str = "America/New_York"

    def __post_init__(self) -> None:
        if not isinstance(self.close, dt.time) or self.close.tzinfo is not None:
            raise ConfigurationError(f"MarketSession.close must be a naive datetime.time (local to timezone), "
                                     f"got {self.close!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"MarketSession.timezone must be an IANA time zone such as "
                                     f"'America/New_York', got {self.timezone!r}") from exc

    def close_of(self, day: dt.date) -> dt.datetime:
        """The close of ``day`` as an aware UTC datetime."""
        local = dt.datetime.combine(day, self.close, tzinfo=ZoneInfo(self.timezone))
        return local.astimezone(dt.UTC)


@dataclass(frozen=True)
class InfraSLO:
    """The service levels on-call is paged against.

    Attributes:
        freshness_minutes: Minutes after the session close by which the day's partition must exist.
        max_run_seconds: Longest acceptable run materializing a partition (latency).
        schedule_grace_minutes: Minutes after the close + freshness deadline a scheduled run may still be
            running before a missing success pages.
    """

    freshness_minutes: int = 120
    max_run_seconds: float = 1800.0
    schedule_grace_minutes: int = 0

    def __post_init__(self) -> None:
        for name, low in (("freshness_minutes", 0), ("schedule_grace_minutes", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= _MAX_MINUTES:
                raise ConfigurationError(f"InfraSLO.{name} must be an integer number of minutes from {low} to "
                                         f"{_MAX_MINUTES} (a week), got {value!r}")
        value = self.max_run_seconds
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 86_400:
            raise ConfigurationError(f"InfraSLO.max_run_seconds must be a number of seconds in (0, 86400], "
                                     f"got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"freshness_minutes": self.freshness_minutes, "max_run_seconds": float(self.max_run_seconds),
                "schedule_grace_minutes": self.schedule_grace_minutes}


@dataclass(frozen=True)
class ExpectedPartition:
    """The newest partition that must exist by ``now``.

    Attributes:
        key: Its partition key.
        day: Its session day (the trading day whose close completes it).
        due_at: When it became due: the close of its session day plus the freshness SLO (UTC).
    """

    key: str
    day: dt.date
    due_at: dt.datetime


def _aware(now: dt.datetime) -> dt.datetime:
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise ConfigurationError(f"'now' must be a timezone-aware datetime, got {now!r}")
    return now.astimezone(dt.UTC)


def session_day(window: DataWindow, min_days: int) -> dt.date:
    """The trading day whose close completes a partition covering ``window``.

    A calendar of one-session partitions (daily, business days: ``min_days == 1``) completes each at the
    close of its first day (a business-day Friday partition also spans the weekend, but holds Friday's
    session); a longer period (weekly, monthly) at the close of its last day.
    """
    return window.start if min_days == 1 else window.end


def expected_partition(partitions: Sequence[tuple[str, dt.date]], session: MarketSession, slo: InfraSLO,
                       now: dt.datetime) -> ExpectedPartition | None:
    """The newest of ``partitions`` (key and session day, in time order) due by ``now``; ``None`` if none is.

    A partition is due at the close of its session day plus ``slo.freshness_minutes``. Only the
    calendar's partitions are considered: a day it has no partition for expects nothing.
    """
    moment = _aware(now)
    late = dt.timedelta(minutes=slo.freshness_minutes)
    for key, day in reversed(partitions):
        due = session.close_of(day) + late
        if due <= moment:
            return ExpectedPartition(key, day, due)
    return None


@dataclass(frozen=True)
class InfraOutcome:
    """One infra check's verdict on one asset.

    Attributes:
        check: Which check.
        asset: The asset key (``a/b`` form).
        passed: ``True`` when on-call has nothing to do.
        summary: One line saying what was found.
        partition: The partition judged, if any.
        details: JSON-ready facts for the pager and the check's metadata.
        skipped: Why nothing was judged (``passed`` is then ``True``), e.g. nothing due yet.
    """

    check: InfraCheckKind
    asset: str
    passed: bool
    summary: str
    partition: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @property
    def key(self) -> str:
        """The incident key of this check on this asset (one open incident per key)."""
        return f"{self.check}:{self.asset}"


def _skip(check: InfraCheckKind, asset: str, reason: str) -> InfraOutcome:
    return InfraOutcome(check, asset, True, f"not judged: {reason}", skipped=reason)


def check_freshness(asset: str, expected: ExpectedPartition | None, stored: Iterable[str],
                    now: dt.datetime) -> InfraOutcome:
    """Freshness: the expected partition of ``asset`` is among the ``stored`` (materialized) partitions."""
    moment = _aware(now)
    if expected is None:
        return _skip(InfraCheckKind.FRESHNESS, asset, "no partition is due yet")
    details = {"expected_partition": expected.key, "due_at": expected.due_at.isoformat()}
    if expected.key in set(stored):
        return InfraOutcome(InfraCheckKind.FRESHNESS, asset, True,
                            f"{asset} partition {expected.key} is present", expected.key, details)
    late = moment - expected.due_at
    minutes = int(late.total_seconds() // 60)
    return InfraOutcome(InfraCheckKind.FRESHNESS, asset, False,
                        f"{asset} partition {expected.key} is missing, {minutes} min past its deadline "
                        f"{expected.due_at:%Y-%m-%d %H:%M} UTC", expected.key, {**details, "minutes_late": minutes})


def check_schema(asset: str, partition: str | None, differences: Sequence[str], *, model: str | None,
                 version: str | None) -> InfraOutcome:
    """Schema: the newest partition of the model's input matches the champion's contract (no ``differences``).

    ``differences`` come from the contract comparison (feature graph hash, keys, column names, types,
    nullability, order); no champion or no stored partition is a skip, not a page.
    """
    if model is None or version is None:
        return _skip(InfraCheckKind.SCHEMA, asset, "no champion of record to compare with")
    if partition is None:
        return _skip(InfraCheckKind.SCHEMA, asset, "no partition stored yet")
    details: dict[str, Any] = {"model": model, "version": version, "partition": partition,
                               "differences": list(differences)}
    if not differences:
        return InfraOutcome(InfraCheckKind.SCHEMA, asset, True,
                            f"{asset} partition {partition} matches the contract of {model} v{version}",
                            partition, details)
    return InfraOutcome(InfraCheckKind.SCHEMA, asset, False,
                        f"{asset} partition {partition} does not match the contract of champion {model} v{version} "
                        f"({len(differences)} difference(s): {differences[0]}); its live signals will be refused",
                        partition, details)


@dataclass(frozen=True)
class RunFacts:
    """What the instance says about one run (read by the Dagster layer).

    Attributes:
        run_id: The run.
        status: Dagster's run status name (``SUCCESS``, ``FAILURE``, ``STARTED``, ``CANCELED``...).
        partition: The partition (or ``first..last`` range) it was for, if any.
        started_at / ended_at: UTC epoch seconds, when known.
    """

    run_id: str
    status: str
    partition: str | None = None
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


def check_latency(asset: str, expected: ExpectedPartition | None, run: RunFacts | None, slo: InfraSLO) -> InfraOutcome:
    """Latency: the run that materialized the expected partition took at most ``slo.max_run_seconds``."""
    if expected is None:
        return _skip(InfraCheckKind.LATENCY, asset, "no partition is due yet")
    if run is None or run.seconds is None:
        return _skip(InfraCheckKind.LATENCY, asset, f"no finished run materialized {expected.key}")
    details = {"run_id": run.run_id, "run_seconds": round(run.seconds, 3), "max_run_seconds": slo.max_run_seconds,
               "partition": expected.key}
    if run.seconds <= slo.max_run_seconds:
        return InfraOutcome(InfraCheckKind.LATENCY, asset, True,
                            f"{asset} {expected.key} materialized in {run.seconds:.0f} s", expected.key, details)
    return InfraOutcome(InfraCheckKind.LATENCY, asset, False,
                        f"{asset} {expected.key} took {run.seconds:.0f} s to materialize (SLO "
                        f"{slo.max_run_seconds:.0f} s) in run {run.run_id}", expected.key, details)


def _covers(run_partition: str | None, key: str) -> bool:
    if run_partition is None:
        return False
    if run_partition == key:
        return True
    first, sep, last = run_partition.partition("..")
    return bool(sep) and first <= key <= last


def check_scheduled_run(job: str, expected: ExpectedPartition | None, runs: Sequence[RunFacts], slo: InfraSLO,
                        now: dt.datetime) -> InfraOutcome:
    """Scheduled run: a run of ``job`` for the expected partition exists and the newest one succeeded.

    ``runs`` are the schedule's runs, any order. A run still in progress before the grace deadline is
    not judged; a failed or canceled newest run pages, and so does no run at all after the deadline.
    """
    moment = _aware(now)
    asset = f"job/{job}"
    if expected is None:
        return _skip(InfraCheckKind.SCHEDULED_RUN, asset, "no partition is due yet")
    mine = sorted((r for r in runs if _covers(r.partition, expected.key)), key=lambda r: r.started_at or 0.0)
    grace_until = expected.due_at + dt.timedelta(minutes=slo.schedule_grace_minutes)
    details: dict[str, Any] = {"job": job, "partition": expected.key, "grace_until": grace_until.isoformat(),
                               "runs": [r.run_id for r in mine]}
    if not mine:
        if moment < grace_until:
            return _skip(InfraCheckKind.SCHEDULED_RUN, asset, f"the run for {expected.key} may still start")
        return InfraOutcome(InfraCheckKind.SCHEDULED_RUN, asset, False,
                            f"no run of {job} for partition {expected.key}: the schedule did not launch it "
                            "(is the schedule running and the daemon up?)", expected.key, details)
    last = mine[-1]
    details["status"] = last.status
    if last.status == "SUCCESS":
        return InfraOutcome(InfraCheckKind.SCHEDULED_RUN, asset, True,
                            f"run {last.run_id} of {job} for {expected.key} succeeded", expected.key, details)
    if last.status in ("FAILURE", "CANCELED"):
        return InfraOutcome(InfraCheckKind.SCHEDULED_RUN, asset, False,
                            f"run {last.run_id} of {job} for {expected.key} ended {last.status}", expected.key,
                            details)
    if moment < grace_until:
        return _skip(InfraCheckKind.SCHEDULED_RUN, asset, f"run {last.run_id} for {expected.key} is {last.status}")
    return InfraOutcome(InfraCheckKind.SCHEDULED_RUN, asset, False,
                        f"run {last.run_id} of {job} for {expected.key} is still {last.status} past its deadline",
                        expected.key, details)


def check_ledger_anchor(report: ChainReport) -> InfraOutcome:
    """Ledger anchor: the champion ledger's head agrees with its anchor outside the ledger's tables.

    ``report`` is :meth:`~ml_platform.champions.service.ChampionService.check_anchor`'s (the head and
    its anchor, two reads). A cut tail, a moved-back or rewritten head pages; an anchor behind the
    head or missing (a move whose anchor write did not finish) does not: reconcile repairs it.
    """
    asset = f"ledger/{report.model}"
    details: dict[str, Any] = {"model": report.model, "head_seq": report.head_seq, "head_hash": report.head_hash,
                               "anchor": report.anchor, "anchor_state": report.anchor_state}
    if report.problem is None:
        return InfraOutcome(InfraCheckKind.LEDGER_ANCHOR, asset, True, report.describe(), details=details)
    details["problem"] = {"seq": report.problem.seq, "kind": report.problem.kind, "detail": report.problem.detail}
    return InfraOutcome(InfraCheckKind.LEDGER_ANCHOR, asset, False,
                        f"{report.describe()}; serving refuses it: run `ml-platform audit verify {report.model}`",
                        details=details)


def incident_of(outcome: InfraOutcome, *, observed_at: dt.datetime | None = None,
                severity: Severity = Severity.ERROR) -> InfraIncident:
    """The pager incident of a failing outcome (``trigger``; resolve it with ``InfraIncident.resolved``)."""
    if outcome.passed:
        raise ConfigurationError(f"{outcome.key} passed: only a failing infra check becomes an incident")
    return InfraIncident(key=outcome.key, check=outcome.check, asset=outcome.asset, summary=outcome.summary,
                         severity=severity, partition=outcome.partition, details=dict(outcome.details),
                         observed_at=utc_now_text(observed_at))
