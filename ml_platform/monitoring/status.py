"""What the alert outboxes say now: pending alerts, their attempts and age, the overdue ones. Pure.

How it works, and why: docs/architecture.md, "ml_platform/monitoring/status.py".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from ml_platform.monitoring.outbox import OutboxEvent, OutboxLog, OutboxRecord

__all__ = ["PendingAlert", "RouteStatus", "paging_summary", "route_status"]


@dataclass(frozen=True)
class PendingAlert:
    """One alert queued and not delivered.

    Attributes:
        id / key / action: As queued.
        queued_at: When it was queued (ISO-8601 UTC).
        attempts: Failed delivery attempts so far.
        last_error: The last attempt's error (None: never attempted).
        age_seconds: Seconds since it was queued.
        overdue: Pending past the bound, or already reported on the other route's outbox.
    """

    id: str
    key: str
    action: str | None
    queued_at: str
    attempts: int
    last_error: str | None
    age_seconds: float
    overdue: bool


@dataclass(frozen=True)
class RouteStatus:
    """One route's outbox at a moment: delivered count, pending alerts, notices from the other route."""

    route: str
    delivered: int
    pending: tuple[PendingAlert, ...]
    notices: tuple[OutboxRecord, ...]  # ``undelivered`` lines the other route wrote here
    damaged: int

    @property
    def overdue(self) -> tuple[PendingAlert, ...]:
        return tuple(alert for alert in self.pending if alert.overdue)

    def lines(self) -> list[str]:
        """The status as text lines, for the CLI."""
        out = [f"{self.route}: {self.delivered} delivered, {len(self.pending)} pending, {len(self.overdue)} overdue"
               + (f", {self.damaged} damaged line(s) skipped" if self.damaged else "")]
        for alert in self.pending:
            out.append(f"  {'OVERDUE' if alert.overdue else 'pending'} {alert.key} ({alert.action or 'finding'}, id "
                       f"{alert.id}) queued {alert.queued_at}, {alert.age_seconds:.0f}s ago, {alert.attempts} failed "
                       f"attempt(s); last error: {alert.last_error or 'none (not attempted yet)'}")
        for notice in self.notices:
            out.append(f"  reported here: {notice.data.get('route')} alert {notice.key} (id {notice.id}) undelivered "
                       f"since {notice.data.get('queued_at')}: {notice.data.get('error')}")
        return out


def route_status(route: str, logbook: OutboxLog, other: OutboxLog, now: dt.datetime,
                 overdue_seconds: float) -> RouteStatus:
    """The status of ``route`` from its outbox (``logbook``) and the other route's (``other``)."""
    reported = {record.id for record in other.records if record.event is OutboxEvent.UNDELIVERED}
    pending = []
    for record in logbook.pending():
        failed = logbook.find(record.id, OutboxEvent.FAILED)
        age = (now - record.time).total_seconds()
        pending.append(PendingAlert(id=record.id, key=record.key, action=record.action, queued_at=record.at,
                                    attempts=len(failed), last_error=failed[-1].data.get("error") if failed else None,
                                    age_seconds=age, overdue=age >= overdue_seconds or record.id in reported))
    delivered = sum(1 for record in logbook.records if record.event is OutboxEvent.DELIVERED)
    notices = tuple(record for record in logbook.records if record.event is OutboxEvent.UNDELIVERED)
    return RouteStatus(route=route, delivered=delivered, pending=tuple(pending), notices=notices,
                       damaged=len(logbook.damaged))


def paging_summary(logbook: OutboxLog, failing: Sequence[str], checks: int) -> str:
    """Why the infra sensor launches nothing when every failing check has an open incident: paged, or not yet.

    "Already paged" is said only of incidents whose trigger was delivered; the others are named with the
    pager's last error.
    """
    waiting_ids = {record.id for record in logbook.pending()}
    opened = logbook.open_incidents()
    waiting = [key for key in failing if key in opened and opened[key].id in waiting_ids]
    if not waiting:
        return f"{checks} infra checks: {len(failing)} failing, all already paged (delivered)"
    errors = [record.data.get("error") for record in logbook.records
              if record.event is OutboxEvent.FAILED and record.key in waiting]
    return (f"{checks} infra checks: {len(failing)} failing, {len(failing) - len(waiting)} paged (delivered), "
            f"{len(waiting)} NOT delivered yet: {', '.join(waiting)} (last error: {errors[-1] if errors else 'none'}); "
            "each tick retries them; see `ml-platform monitoring status`")
