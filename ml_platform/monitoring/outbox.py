"""The alert outbox: an append-only log per route, the durable record of every alert. Pure: stdlib only.

:class:`AlertOutbox` is what the routes and the status read and write; :class:`Outbox` keeps it in a
JSON-lines file (the embedded default), ``outbox_sql.SqlOutbox`` in a database table.

How it works, and why: docs/architecture.md, "ml_platform/monitoring/outbox.py".
"""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ml_platform.errors import MonitoringError
from ml_platform.monitoring.alerts import utc_now_text

__all__ = [
    "OUTBOX_FORMAT_VERSION",
    "AlertOutbox",
    "DamagedLine",
    "Outbox",
    "OutboxEvent",
    "OutboxLog",
    "OutboxRecord",
    "default_outbox_dir",
    "file_lock",
    "log_of",
]

log = logging.getLogger(__name__)

OUTBOX_FORMAT_VERSION = 1
_SHOWN = 200  # characters of a damaged line kept in its report


class OutboxEvent(StrEnum):
    """What one outbox line records about an alert."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    SKIPPED = "skipped"
    UNDELIVERED = "undelivered"  # on the *other* route's outbox: an alert of this route is overdue


def default_outbox_dir(home: str | os.PathLike[str]) -> Path:
    """The outbox folder of a deployment whose home is ``home`` (``Settings.home``): ``<home>/monitoring/outbox``."""
    return Path(home) / "monitoring" / "outbox"


def _parse_time(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class OutboxRecord:
    """One line of the outbox, parsed.

    Attributes:
        line: Its 1-based line number in the file.
        event: What it records.
        id: The alert id it is about.
        at: When it was written (ISO-8601 UTC).
        key: The alert's de-duplication key.
        data: The whole line as written (``alert``, ``action``, ``answer``, ``error``... by event).
    """

    line: int
    event: OutboxEvent
    id: str
    at: str
    key: str
    data: Mapping[str, Any] = field(repr=False)

    @property
    def action(self) -> str | None:
        """``trigger`` / ``resolve`` for an infra incident, None for an alpha finding or an outcome line."""
        return self.data.get("action")

    @property
    def alert(self) -> dict[str, Any] | None:
        """The alert's ``to_dict`` (on ``queued``, ``suppressed`` and ``skipped`` lines)."""
        return self.data.get("alert")

    @property
    def time(self) -> dt.datetime:
        """``at`` as an aware datetime."""
        return _parse_time(self.at)


@dataclass(frozen=True)
class DamagedLine:
    """A line of the outbox that is not a valid record: the torn end of an append a crash interrupted.

    Attributes:
        line: Its 1-based line number.
        text: Its first characters, for the report.
        last: True when it is the file's last line (the append was interrupted and nothing came after).
        reason: Why it could not be read.
    """

    line: int
    text: str
    last: bool
    reason: str


@dataclass(frozen=True)
class OutboxLog:
    """The outbox as read at one moment: its records in file order (oldest first) and its damaged lines."""

    records: tuple[OutboxRecord, ...]
    damaged: tuple[DamagedLine, ...] = ()

    @property
    def torn(self) -> DamagedLine | None:
        """The damaged last line, if the last append was interrupted by a crash."""
        return self.damaged[-1] if self.damaged and self.damaged[-1].last else None

    def history(self, key: str | None = None) -> list[OutboxRecord]:
        """Every record (of ``key``, if given), oldest first."""
        return [record for record in self.records if key is None or record.key == key]

    def pending(self) -> list[OutboxRecord]:
        """The ``queued`` records with no ``delivered`` record yet, oldest first."""
        delivered = {record.id for record in self.records if record.event is OutboxEvent.DELIVERED}
        return [record for record in self.records
                if record.event is OutboxEvent.QUEUED and record.id not in delivered]

    def open_incidents(self) -> dict[str, OutboxRecord]:
        """Incident key -> the queued ``trigger`` that opened it, for every key with no later queued ``resolve``.

        A trigger still pending delivery counts: it will be delivered before anything later of its key.
        """
        opened: dict[str, OutboxRecord] = {}
        for record in self.records:
            if record.event is not OutboxEvent.QUEUED:
                continue
            if record.action == "trigger":
                opened.setdefault(record.key, record)
            elif record.action == "resolve":
                opened.pop(record.key, None)
        return opened

    def last_sent(self, key: str, action: str | None = None) -> dt.datetime | None:
        """When the latest alert of ``key`` (of ``action``, if given) was queued for delivery, or None.

        Queued, not delivered: an alert still pending counts as sent for a cooldown, since it will be.
        """
        for record in reversed(self.records):
            if (record.event is OutboxEvent.QUEUED and record.key == key
                    and (action is None or record.action == action)):
                return record.time
        return None

    def attempts(self, alert_id: str) -> int:
        """How many delivery attempts ``alert_id`` has had (failed ones plus the successful one)."""
        return sum(1 for record in self.records
                   if record.id == alert_id and record.event in (OutboxEvent.FAILED, OutboxEvent.DELIVERED))

    def find(self, alert_id: str, event: OutboxEvent | str | None = None) -> list[OutboxRecord]:
        """The records of ``alert_id`` (of ``event``, if given), oldest first."""
        wanted = OutboxEvent(event) if event is not None else None
        return [record for record in self.records
                if record.id == alert_id and (wanted is None or record.event is wanted)]


def _parse_line(number: int, raw: bytes, last: bool) -> OutboxRecord | DamagedLine:
    def damaged(reason: str) -> DamagedLine:
        return DamagedLine(line=number, text=raw[:_SHOWN].decode("utf-8", "replace"), last=last, reason=reason)

    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        return damaged(f"not JSON ({exc})")
    if not isinstance(data, dict):
        return damaged("not a JSON object")
    try:
        event = OutboxEvent(data["event"])
        ident, at, key = data["id"], data["at"], data["key"]
        if not all(isinstance(value, str) for value in (ident, at, key)):
            raise TypeError("id, at and key must be texts")
        _parse_time(at)
    except (KeyError, TypeError, ValueError) as exc:
        return damaged(f"not an outbox record ({type(exc).__name__}: {exc})")
    return OutboxRecord(line=number, event=event, id=ident, at=at, key=key, data=data)


def log_of(location: str, lines: Iterable[tuple[int, bytes, bool]]) -> OutboxLog:
    """The :class:`OutboxLog` of ``lines`` (``(number, raw, last)``, oldest first): blank lines skipped,
    damaged ones reported and logged as warnings naming ``location``."""
    records: list[OutboxRecord] = []
    damaged: list[DamagedLine] = []
    for number, raw, last in lines:
        if not raw.strip():
            continue
        parsed = _parse_line(number, raw, last=last)
        (records if isinstance(parsed, OutboxRecord) else damaged).append(parsed)  # type: ignore[arg-type]
    for line in damaged:
        log.warning("outbox %s: line %d is damaged (%s)%s; it is skipped and every other line read",
                    location, line.line, line.reason,
                    ": the last append was interrupted (crash)" if line.last else "")
    return OutboxLog(records=tuple(records), damaged=tuple(damaged))


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` of ``path`` (created if absent): a lock across the processes of one host.

    Raises:
        MonitoringError: the lock file cannot be opened.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise MonitoringError(f"cannot open the outbox lock {path}: {exc}") from exc
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # also releases the lock


class AlertOutbox(abc.ABC):
    """One route's append-only outbox: what the routes and the status read and write, wherever it is kept.

    Subclasses keep the records (:meth:`read`, :meth:`_write`) and hold the delivery lock
    (:meth:`exclusive`); the record helpers and the queries are the same over every backend.
    """

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the outbox is kept, for messages (never a password)."""

    # -- reading ---------------------------------------------------------------------------------------

    @abc.abstractmethod
    def read(self) -> OutboxLog:
        """Every record, oldest first, and every damaged line (reported, logged, never fatal)."""

    def history(self, key: str | None = None) -> list[OutboxRecord]:
        """Every record (of ``key``, if given), oldest first."""
        return self.read().history(key)

    def pending(self) -> list[OutboxRecord]:
        """The queued alerts not delivered yet, oldest first."""
        return self.read().pending()

    def open_incidents(self) -> dict[str, OutboxRecord]:
        """Incident key -> its opening trigger record, for every key triggered and not resolved since."""
        return self.read().open_incidents()

    def last_sent(self, key: str, action: str | None = None) -> dt.datetime | None:
        """When the latest alert of ``key`` (of ``action``, if given) was queued, or None."""
        return self.read().last_sent(key, action)

    # -- writing ---------------------------------------------------------------------------------------

    def append(self, event: OutboxEvent | str, *, alert_id: str, key: str, at: str | None = None,
               **fields: Any) -> dict[str, Any]:
        """Append one record durably and return it as written (see :meth:`_write` for how).

        Raises:
            MonitoringError: a field is not JSON-serializable (nothing is written), or the outbox cannot
                be written (the error names it).
        """
        record = {"v": OUTBOX_FORMAT_VERSION, "event": str(OutboxEvent(event)), "id": alert_id,
                  "at": at or utc_now_text(), "key": key, **fields}
        try:
            text = json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise MonitoringError(f"outbox record for {key!r} is not JSON-serializable: {exc}") from exc
        self._write(record, text)
        return record

    @abc.abstractmethod
    def _write(self, record: Mapping[str, Any], text: str) -> None:
        """Store one record (``text``: its compact ASCII JSON) durably, after every record before it.

        Raises:
            MonitoringError: the outbox cannot be written (the error names it, never a password).
        """

    @staticmethod
    def new_id() -> str:
        """A fresh alert id (32 hex characters)."""
        return uuid.uuid4().hex

    def record_queued(self, alert: Mapping[str, Any], *, key: str, action: str | None,
                      at: str | None = None) -> str:
        """Record an alert accepted for delivery; returns its new id."""
        alert_id = self.new_id()
        self.append(OutboxEvent.QUEUED, alert_id=alert_id, key=key, at=at, action=action, alert=dict(alert))
        return alert_id

    def record_delivered(self, alert_id: str, *, key: str, endpoint: str, attempt: int,
                         answer: Mapping[str, Any] | None = None, at: str | None = None) -> None:
        """Record that ``endpoint`` accepted ``alert_id`` on ``attempt``."""
        self.append(OutboxEvent.DELIVERED, alert_id=alert_id, key=key, at=at, endpoint=endpoint,
                    attempt=attempt, answer=dict(answer or {}))

    def record_failed(self, alert_id: str, *, key: str, endpoint: str, attempt: int, error: str,
                      status: int | None = None, retryable: bool = True, at: str | None = None) -> None:
        """Record one failed delivery attempt of ``alert_id`` (it stays pending)."""
        self.append(OutboxEvent.FAILED, alert_id=alert_id, key=key, at=at, endpoint=endpoint, attempt=attempt,
                    error=error, status=status, retryable=retryable)

    def record_suppressed(self, alert: Mapping[str, Any], *, key: str, action: str | None, reason: str,
                          duplicate_of: str | None, at: str | None = None) -> str:
        """Record a duplicate that is not sent; returns its id."""
        alert_id = self.new_id()
        self.append(OutboxEvent.SUPPRESSED, alert_id=alert_id, key=key, at=at, action=action, alert=dict(alert),
                    reason=reason, duplicate_of=duplicate_of)
        return alert_id

    def record_skipped(self, alert: Mapping[str, Any], *, key: str, action: str | None, reason: str,
                       at: str | None = None) -> str:
        """Record an alert with nothing to do (a resolve of a key that is not open); returns its id."""
        alert_id = self.new_id()
        self.append(OutboxEvent.SKIPPED, alert_id=alert_id, key=key, at=at, action=action, alert=dict(alert),
                    reason=reason)
        return alert_id

    # -- the delivery lock -----------------------------------------------------------------------------

    @abc.abstractmethod
    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Hold this outbox's delivery lock: one deliverer at a time, across processes.

        A route holds it from reading the outbox to recording the outcome, so an alert another process
        is delivering is never picked up as pending and delivered a second time. It blocks while another
        process delivers (at most that route's bounded retries and timeouts).
        """


class Outbox(AlertOutbox):
    """One route's append-only JSON-lines outbox at ``path`` (see the module documentation for the format).

    Args:
        path: The ``.jsonl`` file; it and its folder are created by the first append.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    @property
    def location(self) -> str:
        return str(self.path)

    def read(self) -> OutboxLog:
        """Every record, oldest first, and every damaged line (reported, logged, never fatal).

        Reads under a shared lock, so a line being appended is never seen half-written.
        """
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return OutboxLog(records=())
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            with os.fdopen(os.dup(descriptor), "rb") as stream:
                content = stream.read()
        finally:
            os.close(descriptor)  # also releases the lock
        lines = content.split(b"\n")
        if lines and lines[-1] == b"":  # the file ends with a newline: no partial line after it
            lines.pop()
        return log_of(self.location, ((index + 1, raw, index == len(lines) - 1) for index, raw in enumerate(lines)))

    def _write(self, record: Mapping[str, Any], text: str) -> None:
        """One write on an ``O_APPEND`` descriptor under an exclusive ``flock``, then ``fsync``."""
        self._append_line(text.encode("ascii") + b"\n")

    def _append_line(self, data: bytes) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise MonitoringError(f"cannot open the outbox {self.path} for appending: {exc}; check the "
                                  "outbox_dir setting and its permissions") from exc
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                data = b"\n" + data  # end a torn last line first, so this record stays a line of its own
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
            if size == 0:  # a new file: make its directory entry durable too
                self._fsync_directory()
        except OSError as exc:
            raise MonitoringError(f"cannot append to the outbox {self.path}: {exc}") from exc
        finally:
            os.close(descriptor)  # also releases the lock

    def _fsync_directory(self) -> None:
        descriptor = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    # -- the delivery lock -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold this outbox's delivery lock (``<name>.jsonl.lock``): one deliverer at a time, across processes.

        A route holds it from reading the outbox to recording the outcome, so an alert another process
        is delivering is never picked up as pending and delivered a second time. It blocks while another
        process delivers (at most that route's bounded retries and timeouts).
        """
        with file_lock(self.lock_path):
            yield
