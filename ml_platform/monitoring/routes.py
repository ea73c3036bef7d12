"""The two alert routes: infra incidents page on-call, alpha drift findings go to research. No Dagster, no MLflow.

How it works, and why: docs/architecture.md, "ml_platform/monitoring/routes.py".
"""

from __future__ import annotations

import abc
import datetime as dt
import functools
import ipaddress
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

from ml_platform.errors import ConfigurationError, DeliveryFailed, MisroutedAlert
from ml_platform.monitoring.alerts import (
    AlphaDriftFinding,
    IncidentAction,
    InfraIncident,
    alert_from_dict,
    utc_now_text,
)
from ml_platform.monitoring.outbox import OutboxEvent, OutboxLog, OutboxRecord
from ml_platform.monitoring.outbox_sql import open_outbox

__all__ = [
    "DEFAULT_EVENTS_URL",
    "DEFAULT_PAGER_COOLDOWN_SECONDS",
    "DEFAULT_PAGER_OVERDUE_SECONDS",
    "DEFAULT_REDELIVERY_BACKOFF_SECONDS",
    "DEFAULT_RESEARCH_COOLDOWN_SECONDS",
    "DEFAULT_RESEARCH_OVERDUE_SECONDS",
    "FLUSH_FAILURE_BOUND",
    "Delivery",
    "DeliveryStatus",
    "PagerRoute",
    "ResearchRoute",
    "Route",
    "check_endpoint_url",
    "check_route_settings",
    "slack_message",
    "statistics_table",
]

#: PagerDuty's Events API v2 endpoint (US service region; the EU one is ``https://events.eu.pagerduty.com/v2/enqueue``)
DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_PAGER_COOLDOWN_SECONDS = 3600.0
DEFAULT_RESEARCH_COOLDOWN_SECONDS = 86400.0
DEFAULT_TIMEOUT_SECONDS = 5.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_SECONDS = 0.5
MAX_TIMEOUT_SECONDS = 60.0
MAX_RETRIES = 10
MAX_BACKOFF_SECONDS = 30.0
DEFAULT_REDELIVERY_BACKOFF_SECONDS = 15.0
MAX_REDELIVERY_WAIT_SECONDS = 600.0  # a pending alert is tried again at least every 10 minutes
DEFAULT_PAGER_OVERDUE_SECONDS = 900.0
DEFAULT_RESEARCH_OVERDUE_SECONDS = 3600.0
FLUSH_FAILURE_BOUND = 8  # failed attempts after which a pass starts no further alert
_MAX_SLEEP = 10.0
_ENQUEUE_PATH = "/v2/enqueue"
_PD_SUMMARY_LIMIT = 1024  # the Events API v2 limit on payload.summary
_OUTBOX_ENDPOINT = "outbox"
_RETRYABLE_STATUSES = frozenset({408, 425, 429})

A = TypeVar("A", InfraIncident, AlphaDriftFinding)


class DeliveryStatus(StrEnum):
    """The outcome of one alert on a route."""

    DELIVERED = "delivered"  # the endpoint (or, with none configured, the outbox) has it
    PENDING = "pending"  # kept in the outbox, re-delivered by a later flush
    SUPPRESSED = "suppressed"  # a duplicate within its cooldown: recorded, not sent
    SKIPPED = "skipped"  # nothing to do (a resolve of a key that is not open): recorded, not sent


@dataclass(frozen=True)
class Delivery:
    """What became of one alert.

    Attributes:
        alert_id: Its id in the outbox.
        route: ``pager`` or ``research``.
        key: The alert's de-duplication key.
        status: :class:`DeliveryStatus`.
        endpoint: ``pagerduty``, ``slack`` or ``outbox`` (no endpoint configured).
        attempts: Delivery attempts so far, over every flush (0 when suppressed, skipped or not attempted).
        answer: The endpoint's answer when delivered (HTTP status, PagerDuty's dedup key).
        error: Why it is still pending, or why it was suppressed or skipped.
        overdue: Still pending past the route's ``overdue_seconds`` (then reported on the other route's outbox).
    """

    alert_id: str
    route: str
    key: str
    status: DeliveryStatus
    endpoint: str
    attempts: int = 0
    answer: Mapping[str, Any] | None = None
    error: str | None = None
    endpoint_down: bool = field(default=False, repr=False)
    overdue: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is DeliveryStatus.DELIVERED

    @property
    def pending(self) -> bool:
        return self.status is DeliveryStatus.PENDING

    def raise_if_pending(self) -> Delivery:
        """This delivery, or :class:`~ml_platform.errors.DeliveryFailed` if the alert is still pending."""
        if self.pending:
            raise DeliveryFailed(
                f"{self.route} alert {self.key!r} (id {self.alert_id}) was not delivered to {self.endpoint} after "
                f"{self.attempts} attempt(s): {self.error}; it stays in the outbox and the next flush retries it"
            )
        return self


@dataclass(frozen=True)
class _Answer:
    """One delivery attempt's result."""

    ok: bool
    status: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    retryable: bool = True

    @property
    def endpoint_down(self) -> bool:
        return not self.ok and self.retryable


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(owner: str, name: str, url: str) -> str:
    """``url`` if it is ``https://`` (or ``http://`` on a loopback host, a local stand-in), else ConfigurationError."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        # not quoted: a webhook URL is itself the credential
        raise ConfigurationError(f"{owner}.{name} is not a URL ({exc}; the value is not shown: it may be a "
                                 "credential)") from None
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and _is_loopback(host):
        return url
    raise ConfigurationError(
        f"{owner}.{name} must be an https:// URL (plain http:// only on a loopback host, for a local "
        f"stand-in), got {parts.scheme or 'no'} scheme on host {host!r}"
    )


def check_route_settings(owner: str, *, cooldown_seconds: float, timeout_seconds: float, retries: int,
                         backoff_seconds: float) -> None:
    """Refuse out-of-range route settings with a ConfigurationError naming ``owner.field`` and its range."""

    def number(name: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigurationError(f"{owner}.{name} must be a finite number, got {value!r}")
        return float(value)

    if number("cooldown_seconds", cooldown_seconds) < 0:
        raise ConfigurationError(f"{owner}.cooldown_seconds must be >= 0 (0: no cooldown), got {cooldown_seconds!r}")
    if not 0 < number("timeout_seconds", timeout_seconds) <= MAX_TIMEOUT_SECONDS:
        raise ConfigurationError(
            f"{owner}.timeout_seconds must be in (0, {MAX_TIMEOUT_SECONDS:g}] so a dead endpoint cannot hang a "
            f"sensor, got {timeout_seconds!r}"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise ConfigurationError(f"{owner}.retries must be an integer in 0..{MAX_RETRIES}, got {retries!r}")
    if not 0 <= number("backoff_seconds", backoff_seconds) <= MAX_BACKOFF_SECONDS:
        raise ConfigurationError(
            f"{owner}.backoff_seconds must be in [0, {MAX_BACKOFF_SECONDS:g}], got {backoff_seconds!r}"
        )


def _redacted(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with every secret (a key of ``secrets``, longest first) replaced by its stand-in."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, secrets[secret])
    return text


class _RedactingFilter(logging.Filter):
    """Rewrites a record's message with its secrets replaced, before any handler sees it."""

    def __init__(self, secrets: Mapping[str, str]) -> None:
        super().__init__()
        self.secrets = dict(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _redacted(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def _one_line(text: object, limit: int = 500) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


@dataclass(frozen=True)
class _Verdict:
    send: bool
    status: DeliveryStatus = DeliveryStatus.PENDING
    reason: str | None = None
    duplicate_of: str | None = None


@dataclass(frozen=True)
class _Tries:
    """The failed attempts an alert has had so far (over every flush), read from the outbox."""

    failed: int = 0
    last_at: dt.datetime | None = None
    last_error: str | None = None


def _tries_of(logbook: OutboxLog) -> dict[str, _Tries]:
    tries: dict[str, _Tries] = {}
    for record in logbook.records:
        if record.event is OutboxEvent.FAILED:
            tries[record.id] = _Tries(tries.get(record.id, _Tries()).failed + 1, record.time,
                                      record.data.get("error"))
    return tries


def _check_seconds(owner: str, name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigurationError(f"{owner}.{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


class Route(abc.ABC, Generic[A]):
    """A typed alert route over a durable outbox: ``send`` one alert, ``flush`` what is pending.

    Subclasses fix :attr:`alert_type` (checked at run time too), :attr:`name` (the outbox file) and how
    one attempt reaches their endpoint.

    Args:
        outbox_dir: The folder of the outbox files (:func:`~ml_platform.monitoring.outbox.default_outbox_dir`);
            this route's file is ``<outbox_dir>/<name>.jsonl``.
        outbox_url: Instead of ``outbox_dir``: the SQLAlchemy URL of the database keeping the outboxes
            (:mod:`~ml_platform.monitoring.outbox_sql`; PostgreSQL in production).
        cooldown_seconds: See the subclass (>= 0; 0: no de-duplication in time).
        timeout_seconds: Limit of one attempt, in (0, 60].
        retries: Extra attempts per delivery, 0..10 (in one pass, while the endpoint answers).
        backoff_seconds: Wait before the first retry, doubled for each further one (at most 10 s).
        redelivery_backoff_seconds: Per alert, across flushes: after ``n`` failed attempts a flush tries it
            again only once ``redelivery_backoff_seconds * 2**(n-1)`` (at most 600 s) have passed; 0..600.
        overdue_seconds: An alert still pending this long after it was queued is reported once on the other
            route's outbox (an ``undelivered`` line) and flagged ``overdue``; 60..604800.
        clock: The current time (aware); for tests.
        sleep: How to wait between attempts; for tests.
    """

    name: ClassVar[str]
    alert_type: ClassVar[type]
    other_route: ClassVar[str]
    other_name: ClassVar[str]
    endpoint_name: ClassVar[str]
    default_overdue_seconds: ClassVar[float]

    def __init__(self, outbox_dir: str | os.PathLike[str] | None, *, cooldown_seconds: float,
                 timeout_seconds: float, retries: int, backoff_seconds: float, outbox_url: str | None = None,
                 redelivery_backoff_seconds: float = DEFAULT_REDELIVERY_BACKOFF_SECONDS,
                 overdue_seconds: float | None = None, clock: Callable[[], dt.datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        owner = type(self).__name__
        check_route_settings(owner, cooldown_seconds=cooldown_seconds,
                             timeout_seconds=timeout_seconds, retries=retries, backoff_seconds=backoff_seconds)
        self.redelivery_backoff_seconds = _check_seconds(owner, "redelivery_backoff_seconds",
                                                         redelivery_backoff_seconds, 0, MAX_REDELIVERY_WAIT_SECONDS)
        overdue = self.default_overdue_seconds if overdue_seconds is None else overdue_seconds
        self.overdue_seconds = _check_seconds(owner, "overdue_seconds", overdue, 60, 7 * 86400)
        folder = Path(outbox_dir) if outbox_dir else None
        self.outbox = open_outbox(self.name, outbox_dir=folder, outbox_url=outbox_url)
        self.other_outbox = open_outbox(self.other_name, outbox_dir=folder, outbox_url=outbox_url)
        self.cooldown_seconds = float(cooldown_seconds)
        self.timeout_seconds = float(timeout_seconds)
        self.retries = retries
        self.backoff_seconds = float(backoff_seconds)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"{type(self).__name__}(outbox={self.outbox.location!r}, endpoint={self.endpoint!r})"

    @property
    @abc.abstractmethod
    def configured(self) -> bool:
        """Whether an endpoint is configured; False: the outbox is the destination."""

    @property
    def endpoint(self) -> str:
        """Where alerts go: the endpoint's name, or ``outbox`` when none is configured."""
        return self.endpoint_name if self.configured else _OUTBOX_ENDPOINT

    def _now(self) -> dt.datetime:
        return self._clock()

    def check_alert(self, alert: object) -> None:
        """Raise MisroutedAlert unless ``alert`` is this route's alert type."""
        if not isinstance(alert, self.alert_type):
            got = type(alert).__name__
            raise MisroutedAlert(
                f"{type(self).__name__} accepts only {self.alert_type.__name__}, got {got}"
                + (f" {alert.key!r}" if isinstance(alert, InfraIncident | AlphaDriftFinding) else "")
                + f"; send it through the {self.other_route}. Nothing was recorded or sent"
            )

    def send(self, alert: A) -> Delivery:
        """Record ``alert`` in the outbox, then deliver it (after anything still pending).

        Returns:
            Its :class:`Delivery`: delivered, pending (kept for the next flush, see ``raise_if_pending``),
            suppressed or skipped.

        Raises:
            MisroutedAlert: ``alert`` is not this route's type (checked before anything is written).
            MonitoringError: the outbox cannot be written (nothing was sent).
        """
        self.check_alert(alert)
        with self.outbox.exclusive():
            logbook = self.outbox.read()
            payload = alert.to_dict()
            action = str(alert.action) if isinstance(alert, InfraIncident) else None
            at = utc_now_text(self._now())
            verdict = self._decide(alert, logbook)
            if not verdict.send:
                reason = verdict.reason or "not sent"
                if verdict.status is DeliveryStatus.SUPPRESSED:
                    alert_id = self.outbox.record_suppressed(payload, key=alert.key, action=action, reason=reason,
                                                             duplicate_of=verdict.duplicate_of, at=at)
                else:
                    alert_id = self.outbox.record_skipped(payload, key=alert.key, action=action, reason=reason,
                                                          at=at)
                self._deliver_pending()  # a send always flushes what is pending
                return Delivery(alert_id=alert_id, route=self.name, key=alert.key, status=verdict.status,
                                endpoint=self.endpoint, error=reason)
            alert_id = self.outbox.record_queued(payload, key=alert.key, action=action, at=at)
            for delivery in self._deliver_pending():
                if delivery.alert_id == alert_id:
                    return delivery
        raise AssertionError(f"the alert {alert_id} just queued was not among the pending ones")  # pragma: no cover

    def flush(self) -> list[Delivery]:
        """Try every pending alert that is due; returns one Delivery per alert that was pending, oldest first.

        No alert waits behind another of a different key; see docs/architecture.md,
        "ml_platform/monitoring/routes.py", for the bounds and the per-alert backoff.

        Raises:
            MonitoringError: the outbox cannot be written.
        """
        with self.outbox.exclusive():
            return self._deliver_pending()

    def pending(self) -> list[OutboxRecord]:
        """The alerts of this route still waiting for delivery, oldest first."""
        return self.outbox.pending()

    # -- subclass hooks --------------------------------------------------------------------------------

    @abc.abstractmethod
    def _decide(self, alert: A, logbook: OutboxLog) -> _Verdict:
        """Send, suppress or skip ``alert``, from what the outbox holds."""

    @abc.abstractmethod
    def _attempt(self, alert: A, alert_id: str) -> _Answer:
        """One delivery attempt to the configured endpoint; never raises for an endpoint failure."""

    # -- delivery --------------------------------------------------------------------------------------

    def _secrets(self) -> dict[str, str]:
        """The endpoint's secret texts and their stand-ins: never in an outbox line, a log or an error."""
        return {}

    def _redact_answer(self, answer: _Answer) -> _Answer:
        secrets = self._secrets()
        if not secrets:
            return answer
        detail = {name: _redacted(value, secrets) if isinstance(value, str) else value
                  for name, value in answer.detail.items()}
        return replace(answer, error=_redacted(answer.error, secrets) if answer.error else answer.error,
                       detail=detail)

    def _client_logger(self, name: str) -> logging.Logger:
        """A logger for an endpoint's client library, under this module's, that redacts :meth:`_secrets`
        (slack_sdk logs the whole webhook URL at debug level)."""
        client_log = logging.Logger(f"{__name__}.{name}")  # noqa: LOG001 - unregistered: one per attempt, then dropped
        client_log.parent = logging.getLogger(__name__)
        client_log.addFilter(_RedactingFilter(self._secrets()))
        return client_log

    def _age_seconds(self, moment: dt.datetime) -> float:
        return (self._now() - moment).total_seconds()

    def _wait_seconds(self, tries: _Tries) -> float:
        """How long after its last failed attempt an alert is tried again by a flush."""
        if not tries.failed:
            return 0.0
        return min(self.redelivery_backoff_seconds * 2 ** (tries.failed - 1), MAX_REDELIVERY_WAIT_SECONDS)

    def _deliver_pending(self) -> list[Delivery]:
        logbook = self.outbox.read()
        pending = logbook.pending()
        tries = _tries_of(logbook)
        now = self._now()
        by_key: dict[str, list[OutboxRecord]] = {}
        for record in pending:
            by_key.setdefault(record.key, []).append(record)
        # least recently tried first (never tried before all), so a bounded pass reaches every alert in turn
        order = sorted(by_key.values(), key=lambda group: (tries.get(group[0].id, _Tries()).last_at is not None,
                                                           tries.get(group[0].id, _Tries()).last_at or now))
        results: dict[str, Delivery] = {}
        failures = 0  # failed attempts in this pass
        down = False  # the endpoint failed as a whole in this pass: one attempt per alert from here on
        last_error: str | None = None

        def kept(record: OutboxRecord, why: str) -> None:
            results[record.id] = Delivery(alert_id=record.id, route=self.name, key=record.key,
                                          status=DeliveryStatus.PENDING, endpoint=self.endpoint,
                                          attempts=logbook.attempts(record.id), error=why)

        for group in order:
            blocked = False  # an earlier alert of the key is still pending: keep the key's order
            for record in group:
                record_tries = tries.get(record.id, _Tries())
                wait = self._wait_seconds(record_tries)
                if blocked:
                    kept(record, "not attempted: an earlier alert with the same key is still pending")
                elif record_tries.last_at is not None and (now - record_tries.last_at).total_seconds() < wait:
                    kept(record, f"not attempted: it is tried again {wait:g}s after its last failed attempt "
                         f"({record_tries.last_at.isoformat()}: {record_tries.last_error})")
                elif failures >= FLUSH_FAILURE_BOUND:
                    kept(record, f"not attempted: this flush reached its bound of {FLUSH_FAILURE_BOUND} failed "
                         f"attempts (last: {last_error}); the next flush tries it first")
                else:
                    attempts = logbook.attempts(record.id)
                    delivery = self._deliver(record, attempts, retries=0 if down else self.retries)
                    results[record.id] = delivery
                    failures += delivery.attempts - attempts - int(delivery.delivered)
                    down = down or delivery.endpoint_down
                    last_error = delivery.error or last_error
                blocked = not results[record.id].delivered
        return self._report_overdue([results[record.id] for record in pending], pending, now)

    def _report_overdue(self, deliveries: list[Delivery], pending: list[OutboxRecord],
                        now: dt.datetime) -> list[Delivery]:
        """Flag every alert still pending past ``overdue_seconds``; report each once on the other route's outbox."""
        late = {record.id: record for record in pending
                if (now - record.time).total_seconds() >= self.overdue_seconds}
        if not late:
            return deliveries
        reported = {record.id for record in self.other_outbox.read().records
                    if record.event is OutboxEvent.UNDELIVERED}
        flagged = []
        for delivery in deliveries:
            record = late.get(delivery.alert_id)
            if record is None or delivery.delivered:
                flagged.append(delivery)
                continue
            if record.id not in reported:
                self.other_outbox.append(
                    OutboxEvent.UNDELIVERED, alert_id=record.id, key=record.key, at=utc_now_text(now),
                    route=self.name, endpoint=self.endpoint, queued_at=record.at, attempts=delivery.attempts,
                    error=delivery.error, action=record.action, alert=record.alert,
                    reason=f"{self.name} alert {record.key!r} still undelivered {(now - record.time).total_seconds():.0f}s "
                    f"after it was queued (bound {self.overdue_seconds:g}s); see `ml-platform monitoring status`")
            flagged.append(replace(delivery, overdue=True))
        return flagged

    def _deliver(self, record: OutboxRecord, attempts: int, retries: int) -> Delivery:
        outbox = self.outbox
        if not self.configured:
            outbox.record_delivered(record.id, key=record.key, endpoint=_OUTBOX_ENDPOINT, attempt=attempts + 1,
                                    answer={"note": "no endpoint configured: the outbox is the destination"},
                                    at=utc_now_text(self._now()))
            return Delivery(alert_id=record.id, route=self.name, key=record.key, status=DeliveryStatus.DELIVERED,
                            endpoint=_OUTBOX_ENDPOINT, attempts=attempts + 1,
                            answer={"note": "no endpoint configured: the outbox is the destination"})
        try:
            alert = alert_from_dict(record.alert or {})
            self.check_alert(alert)
        except (MisroutedAlert, ValueError, KeyError, TypeError) as exc:  # a foreign or damaged queued record
            error = f"the queued alert cannot be read back: {_one_line(exc)}"
            outbox.record_failed(record.id, key=record.key, endpoint=self.endpoint_name, attempt=attempts + 1,
                                 error=error, retryable=False, at=utc_now_text(self._now()))
            return Delivery(alert_id=record.id, route=self.name, key=record.key, status=DeliveryStatus.PENDING,
                            endpoint=self.endpoint_name, attempts=attempts + 1, error=error)
        answer = _Answer(ok=False, error="not attempted")
        for retry in range(retries + 1):
            if retry:
                self._sleep(min(self.backoff_seconds * 2 ** (retry - 1), _MAX_SLEEP))
            answer = self._redact_answer(self._attempt(alert, record.id))
            attempts += 1
            now = utc_now_text(self._now())
            if answer.ok:
                reply = {"status": answer.status, **answer.detail}
                outbox.record_delivered(record.id, key=record.key, endpoint=self.endpoint_name, attempt=attempts,
                                        answer=reply, at=now)
                return Delivery(alert_id=record.id, route=self.name, key=record.key,
                                status=DeliveryStatus.DELIVERED, endpoint=self.endpoint_name, attempts=attempts,
                                answer=reply)
            outbox.record_failed(record.id, key=record.key, endpoint=self.endpoint_name, attempt=attempts,
                                 error=answer.error or "failed", status=answer.status, retryable=answer.retryable,
                                 at=now)
            if not answer.retryable:
                break
        return Delivery(alert_id=record.id, route=self.name, key=record.key, status=DeliveryStatus.PENDING,
                        endpoint=self.endpoint_name, attempts=attempts, error=answer.error,
                        endpoint_down=answer.endpoint_down)


def _events_base_url(events_url: str) -> str:
    base = events_url.rstrip("/")
    return base.removesuffix(_ENQUEUE_PATH)


@functools.cache
def _events_client_class() -> type:
    import pagerduty

    class OneShotEventsClient(pagerduty.EventsApiV2Client):
        """The Events API v2 client, accepting a plain-http base URL on a loopback host (a local stand-in)."""

        @property
        def url(self) -> str:
            return self._url

        @url.setter
        def url(self, new_base_url: str) -> None:  # the library itself insists on https://
            check_endpoint_url("PagerRoute", "events_url", new_base_url)
            self._url = new_base_url

    return OneShotEventsClient


def _events_client(routing_key: str, base_url: str, timeout_seconds: float) -> Any:
    """A ``pagerduty.EventsApiV2Client`` that makes exactly one HTTP attempt per call, within ``timeout_seconds``."""
    client = _events_client_class()(routing_key, base_url=base_url)
    client.timeout = timeout_seconds  # sent as httpx's timeout on every request (connect, read, write, pool)
    client.max_network_attempts = 0  # a network error or timeout raises at once instead of sleeping and retrying
    # A status listed in ``retry`` is returned at once when the attempts so far exceed max_http_attempts
    # (the library's test is ``>``, hence -1); 429 must be listed, since unlisted it is retried forever.
    client.retry = {429: 1}
    client.max_http_attempts = -1
    return client


class PagerRoute(Route[InfraIncident]):
    """On-call paging of infra incidents through the PagerDuty Events API v2.

    A ``trigger`` is sent with ``dedup_key=incident.key``, the incident's severity, ``source`` = its asset,
    its summary, and ``custom_details`` (check, asset, partition, alert id, details); PagerDuty groups
    every event of one dedup key into one incident. A ``resolve`` is sent for the key only if the
    outbox has it open (else recorded ``skipped``). A trigger of an open key last triggered less than
    ``cooldown_seconds`` ago is recorded ``suppressed`` (after the cooldown it is sent again, and
    PagerDuty adds it to the still-open incident: a reminder, not a second page).

    Args:
        outbox_dir: Folder of the outbox; this route writes ``pager.jsonl``.
        outbox_url: Instead of ``outbox_dir``: the database of the outboxes (see :class:`Route`).
        routing_key: The Events API v2 integration (routing) key; empty: no endpoint, the outbox is the
            destination (the embedded default).
        events_url: The Events API v2 enqueue URL (or its base); https://, or http:// on a loopback host.
        cooldown_seconds: Suppression window of re-triggers of an open incident (default one hour).
        timeout_seconds / retries / backoff_seconds / redelivery_backoff_seconds / overdue_seconds / clock /
            sleep: See :class:`Route` (``overdue_seconds`` defaults to an hour on research, 15 min on the pager).
    """

    name = "pager"
    alert_type = InfraIncident
    other_route = "ResearchRoute (alpha drift goes to research and never pages)"
    other_name = "research"
    endpoint_name = "pagerduty"
    default_overdue_seconds = DEFAULT_PAGER_OVERDUE_SECONDS

    def __init__(self, outbox_dir: str | os.PathLike[str] | None = None, *, routing_key: str = "",
                 events_url: str = DEFAULT_EVENTS_URL,
                 cooldown_seconds: float = DEFAULT_PAGER_COOLDOWN_SECONDS,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, retries: int = DEFAULT_RETRIES,
                 backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
                 redelivery_backoff_seconds: float = DEFAULT_REDELIVERY_BACKOFF_SECONDS,
                 overdue_seconds: float | None = None, clock: Callable[[], dt.datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep, outbox_url: str | None = None) -> None:
        super().__init__(outbox_dir, cooldown_seconds=cooldown_seconds, timeout_seconds=timeout_seconds,
                         retries=retries, backoff_seconds=backoff_seconds, outbox_url=outbox_url,
                         redelivery_backoff_seconds=redelivery_backoff_seconds, overdue_seconds=overdue_seconds,
                         clock=clock, sleep=sleep)
        if not isinstance(routing_key, str):
            raise ConfigurationError("PagerRoute.routing_key must be a text (empty: deliver to the outbox only)")
        self.routing_key = routing_key.strip()
        self.events_url = check_endpoint_url("PagerRoute", "events_url", events_url)
        self._base_url = _events_base_url(events_url)

    def __repr__(self) -> str:  # never shows the routing key
        return (f"PagerRoute(outbox={self.outbox.location!r}, endpoint={self.endpoint!r}, "
                f"events_url={self.events_url!r})")

    @property
    def configured(self) -> bool:
        return bool(self.routing_key)

    def _secrets(self) -> dict[str, str]:
        return {self.routing_key: "<routing key>"}

    def send(self, alert: InfraIncident) -> Delivery:
        """Page (``trigger``) or close (``resolve``) the incident of ``alert.key``; see :meth:`Route.send`."""
        return super().send(alert)

    def open_incidents(self) -> dict[str, OutboxRecord]:
        """Incident key -> the trigger that opened it, for every key not resolved since."""
        return self.outbox.open_incidents()

    def _decide(self, alert: InfraIncident, logbook: OutboxLog) -> _Verdict:
        opened = logbook.open_incidents().get(alert.key)
        if alert.action is IncidentAction.RESOLVE:
            if opened is None:
                return _Verdict(send=False, status=DeliveryStatus.SKIPPED,
                                reason=f"no open incident with key {alert.key!r}: nothing to resolve")
            return _Verdict(send=True)
        last = logbook.last_sent(alert.key, action=str(IncidentAction.TRIGGER))
        if opened is not None and last is not None:
            age = self._age_seconds(last)
            if age < self.cooldown_seconds:
                return _Verdict(send=False, status=DeliveryStatus.SUPPRESSED, duplicate_of=opened.id,
                                reason=f"incident {alert.key!r} is open (since {opened.at}) and was last triggered "
                                f"{max(age, 0.0):.0f}s ago, within the cooldown of {self.cooldown_seconds:g}s")
        return _Verdict(send=True)

    def _attempt(self, alert: InfraIncident, alert_id: str) -> _Answer:
        import pagerduty

        try:
            with _events_client(self.routing_key, self._base_url, self.timeout_seconds) as client:
                if alert.action is IncidentAction.RESOLVE:
                    dedup_key = client.resolve(alert.key)
                else:
                    dedup_key = client.trigger(
                        summary=alert.summary[:_PD_SUMMARY_LIMIT], source=alert.asset, dedup_key=alert.key,
                        severity=str(alert.severity),
                        payload={"timestamp": alert.observed_at, "component": alert.asset,
                                 "class": str(alert.check)},
                        custom_details={"check": str(alert.check), "asset": alert.asset,
                                        "partition": alert.partition, "alert_id": alert_id,
                                        "details": dict(alert.details)},
                    )
        except pagerduty.Error as exc:
            status = exc.response.status_code if exc.response is not None else None
            retryable = status is None or status >= 500 or status in _RETRYABLE_STATUSES
            reason = str(exc.msg if hasattr(exc, "msg") else exc)
            if exc.__cause__ is not None:  # the transport error behind "non-transient network error"
                reason += f" ({type(exc.__cause__).__name__}: {exc.__cause__})"
            reason = _one_line(reason).replace(self.routing_key, "<routing key>")
            return _Answer(ok=False, status=status, error=f"{type(exc).__name__}: {reason}", retryable=retryable)
        except pagerduty.UrlError as exc:
            return _Answer(ok=False, error=f"UrlError: {_one_line(exc)}", retryable=False)
        except Exception as exc:  # noqa: BLE001 - any other transport failure keeps the alert pending
            return _Answer(ok=False, error=f"{type(exc).__name__}: {_one_line(exc)}", retryable=True)
        return _Answer(ok=True, status=202, detail={"dedup_key": dedup_key})


class ResearchRoute(Route[AlphaDriftFinding]):
    """Alpha drift findings for research: a Slack incoming-webhook message, never a page.

    The message carries the summary, the model and windows, the drift statistics as a text table and
    the link to the research report (``finding.report_ref``, stored in MLflow by the caller). A finding
    whose key was sent less than ``cooldown_seconds`` ago (default one day) is recorded ``suppressed``.

    Args:
        outbox_dir: Folder of the outbox; this route writes ``research.jsonl``.
        outbox_url: Instead of ``outbox_dir``: the database of the outboxes (see :class:`Route`).
        slack_webhook_url: The incoming-webhook URL (a secret); empty: the outbox is the destination.
        cooldown_seconds: Suppression window per finding key.
        timeout_seconds / retries / backoff_seconds / redelivery_backoff_seconds / overdue_seconds / clock /
            sleep: See :class:`Route` (``overdue_seconds`` defaults to an hour on research, 15 min on the pager).
    """

    name = "research"
    alert_type = AlphaDriftFinding
    other_route = "PagerRoute (infra incidents page on-call)"
    other_name = "pager"
    endpoint_name = "slack"
    default_overdue_seconds = DEFAULT_RESEARCH_OVERDUE_SECONDS

    def __init__(self, outbox_dir: str | os.PathLike[str] | None = None, *, slack_webhook_url: str = "",
                 cooldown_seconds: float = DEFAULT_RESEARCH_COOLDOWN_SECONDS,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS, retries: int = DEFAULT_RETRIES,
                 backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
                 redelivery_backoff_seconds: float = DEFAULT_REDELIVERY_BACKOFF_SECONDS,
                 overdue_seconds: float | None = None, clock: Callable[[], dt.datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep, outbox_url: str | None = None) -> None:
        super().__init__(outbox_dir, cooldown_seconds=cooldown_seconds, timeout_seconds=timeout_seconds,
                         retries=retries, backoff_seconds=backoff_seconds, outbox_url=outbox_url,
                         redelivery_backoff_seconds=redelivery_backoff_seconds, overdue_seconds=overdue_seconds,
                         clock=clock, sleep=sleep)
        if not isinstance(slack_webhook_url, str):
            raise ConfigurationError("ResearchRoute.slack_webhook_url must be a text (empty: the outbox only)")
        self.slack_webhook_url = slack_webhook_url.strip()
        if self.slack_webhook_url:
            check_endpoint_url("ResearchRoute", "slack_webhook_url", self.slack_webhook_url)

    def __repr__(self) -> str:  # never shows the webhook URL (it is the credential)
        return f"ResearchRoute(outbox={self.outbox.location!r}, endpoint={self.endpoint!r})"

    @property
    def configured(self) -> bool:
        return bool(self.slack_webhook_url)

    def _secrets(self) -> dict[str, str]:
        """The webhook URL is the credential: the URL, its path and the path's token are each redacted."""
        url = self.slack_webhook_url
        if not url:
            return {}
        path = urlsplit(url).path
        token = path.rstrip("/").rsplit("/", 1)[-1]
        secrets = {url: "<webhook url>", path: "<webhook path>"}
        if len(token) >= 8:
            secrets[token] = "<webhook token>"
        return secrets

    def send(self, alert: AlphaDriftFinding) -> Delivery:
        """Post ``alert`` to research; see :meth:`Route.send`."""
        return super().send(alert)

    def _decide(self, alert: AlphaDriftFinding, logbook: OutboxLog) -> _Verdict:
        last = logbook.last_sent(alert.key)
        if last is not None:
            age = self._age_seconds(last)
            if age < self.cooldown_seconds:
                previous = next(r for r in reversed(logbook.records) if r.key == alert.key and r.event is OutboxEvent.QUEUED)
                return _Verdict(send=False, status=DeliveryStatus.SUPPRESSED, duplicate_of=previous.id,
                                reason=f"finding {alert.key!r} was sent {max(age, 0.0):.0f}s ago, within the "
                                f"cooldown of {self.cooldown_seconds:g}s")
        return _Verdict(send=True)

    def _attempt(self, alert: AlphaDriftFinding, alert_id: str) -> _Answer:
        from slack_sdk.webhook import WebhookClient

        client = WebhookClient(self.slack_webhook_url, timeout=self.timeout_seconds,  # type: ignore[arg-type]
                               retry_handlers=[],  # the route retries, and records each attempt
                               logger=self._client_logger("slack_sdk"))
        try:
            response = client.send(text=slack_message(alert), unfurl_links=False, unfurl_media=False)
        except Exception as exc:  # noqa: BLE001 - urllib, socket and timeout errors: keep it pending
            reason = _one_line(exc).replace(self.slack_webhook_url, "<webhook url>")
            return _Answer(ok=False, error=f"{type(exc).__name__}: {reason}", retryable=True)
        status = response.status_code
        if 200 <= status < 300:
            return _Answer(ok=True, status=status, detail={"body": _one_line(response.body or "", 100)})
        return _Answer(ok=False, status=status, error=f"HTTP {status}: {_one_line(response.body or '', 200)}",
                       retryable=status >= 500 or status in _RETRYABLE_STATUSES)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def statistics_table(statistics: Mapping[str, Any]) -> str:
    """The drift statistics as a fixed-width text table: one row per statistic.

    A statistic that is a mapping shows its ``value``, ``threshold`` and ``breached`` first, then its
    other fields; a plain value shows in the ``value`` column.
    """
    if not statistics:
        return "(no statistics)"
    preferred = ["value", "threshold", "breached"]
    others = sorted({name for stat in statistics.values() if isinstance(stat, Mapping) for name in stat}
                    - set(preferred))
    columns = [c for c in preferred if c == "value" or any(isinstance(s, Mapping) and c in s
                                                           for s in statistics.values())] + others
    rows = [["statistic", *columns]]
    for name in sorted(statistics):
        stat = statistics[name]
        fields = stat if isinstance(stat, Mapping) else {"value": stat}
        rows.append([name, *(_cell(fields[c]) if c in fields else "" for c in columns)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def slack_message(finding: AlphaDriftFinding) -> str:
    """The Slack text of a finding: summary, model and windows, statistics table, report link."""
    ref = finding.report_ref
    if ref and urlsplit(ref).scheme in ("http", "https"):
        report = f"<{ref}|research report>"
    elif ref:
        report = f"`{ref}`"
    else:
        report = "not stored yet"
    return (
        f":bar_chart: *Alpha drift* (research, not paging): {finding.summary}\n"
        f"model `{finding.model}` version `{finding.version}`; live window {finding.live_window} vs validation "
        f"window {finding.validation_window}; observed {finding.observed_at}\n"
        f"```\n{statistics_table(finding.statistics)}\n```\n"
        f"Report: {report}"
    )
