"""The Dagster resources of the two alert routes: thin, validated factories of the pure routes.

How it works, and why: docs/architecture.md, "ml_platform/monitoring/resources.py".
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from ml_platform.errors import ConfigurationError
from ml_platform.monitoring.outbox import default_outbox_dir
from ml_platform.monitoring.outbox_sql import check_outbox_url
from ml_platform.monitoring.routes import (
    DEFAULT_BACKOFF_SECONDS,
    DEFAULT_EVENTS_URL,
    DEFAULT_PAGER_COOLDOWN_SECONDS,
    DEFAULT_REDELIVERY_BACKOFF_SECONDS,
    DEFAULT_RESEARCH_COOLDOWN_SECONDS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_BACKOFF_SECONDS,
    MAX_RETRIES,
    MAX_TIMEOUT_SECONDS,
    PagerRoute,
    ResearchRoute,
    check_endpoint_url,
    check_route_settings,
)

__all__ = ["PagerResource", "ResearchResource"]

_DEFAULT_OUTBOX_DIR = str(default_outbox_dir(".ml_platform"))


def _literal(value: Any) -> bool:
    """A text given in code (not a ``dg.EnvVar``, resolved at run time)."""
    return not isinstance(value, dg.EnvVar)


def _check(owner: type, data: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Range-check the literal numeric settings now, at definition time (the route checks them again when
    built, so values resolved at run time are checked too). Other types are left to pydantic."""
    values = {name: data.get(name, default) for name, default in defaults.items()}
    if all(type(value) in (int, float) for value in values.values()):  # not bool, not dg.EnvVar.int(...)
        check_route_settings(owner.__name__, **values)


def _check_outbox(owner: type, data: dict[str, Any]) -> None:
    """Exactly one outbox: ``outbox_dir`` (a folder) or ``outbox_url`` (a database); a literal URL is parsed now."""
    url = data.get("outbox_url", "")
    if url and data.get("outbox_dir"):
        raise ConfigurationError(f"{owner.__name__}: give outbox_dir (a folder of JSON-lines files) or outbox_url "
                                 "(the database of the outboxes), not both")
    if isinstance(url, str) and _literal(url) and url.strip():
        check_outbox_url(url, f"{owner.__name__}.outbox_url")


class _RouteResource(dg.ConfigurableResource):
    outbox_dir: str = Field(
        default=_DEFAULT_OUTBOX_DIR,
        description="Folder of the alert outbox (JSON lines, one file per route); on the embedded default "
        "<home>/monitoring/outbox. Every alert is recorded there before it is sent. Not used when "
        "outbox_url is set (give one of the two).",
    )
    outbox_url: str = Field(
        default="",
        description="Instead of outbox_dir: the SQLAlchemy URL of the database keeping the outboxes (PostgreSQL "
        "in production, e.g. postgresql+psycopg://user@host:5432/db with the password in PGPASSWORD; pass "
        "dg.EnvVar('ML_PLATFORM_OUTBOX_URL') if it holds one). Empty: the files under outbox_dir.",
    )

    def _outbox(self) -> dict[str, Any]:
        """The route's outbox arguments: the database when ``outbox_url`` is set, else the folder."""
        if self.outbox_url.strip():
            return {"outbox_dir": None, "outbox_url": self.outbox_url.strip()}
        return {"outbox_dir": self.outbox_dir}
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        description=f"Limit of one delivery attempt, in (0, {MAX_TIMEOUT_SECONDS:g}]; a flush against a dead "
        "endpoint makes at most (retries + 1) + 7 attempts: keep that times the timeout below the sensor's "
        "evaluation limit (60 s by default).",
    )
    retries: int = Field(
        default=DEFAULT_RETRIES,
        description=f"Extra attempts per delivery, 0..{MAX_RETRIES}; an alert that still fails stays pending "
        "in the outbox and a later flush retries it (see redelivery_backoff_seconds).",
    )
    backoff_seconds: float = Field(
        default=DEFAULT_BACKOFF_SECONDS,
        description=f"Wait before the first retry, doubled for each further one (at most 10 s); 0..{MAX_BACKOFF_SECONDS:g}.",
    )
    redelivery_backoff_seconds: float = Field(
        default=DEFAULT_REDELIVERY_BACKOFF_SECONDS,
        description="Per pending alert, across flushes: after n failed attempts it is tried again once "
        "redelivery_backoff_seconds * 2**(n-1) have passed (at most 600 s); 0..600.",
    )
    overdue_seconds: float | None = Field(
        default=None,
        description="An alert still undelivered this long after it was queued is reported on the other route's "
        "outbox and by `ml-platform monitoring status` (default: 900 s pager, 3600 s research); 60..604800.",
    )
    require_endpoint: bool = Field(
        default=False,
        description="Refuse to build a route without an endpoint (set it in production, so a missing secret "
        "is an error instead of alerts silently kept in the local outbox).",
    )


class PagerResource(_RouteResource):
    """The pager route (infra incidents, PagerDuty Events API v2) as a Dagster resource.

    Without a ``routing_key`` (the embedded default) the route's outbox is the destination.
    """

    events_url: str = Field(
        default=DEFAULT_EVENTS_URL,
        description="PagerDuty Events API v2 enqueue URL (EU: https://events.eu.pagerduty.com/v2/enqueue); "
        "https://, or http:// on a loopback host for a local stand-in.",
    )
    routing_key: str = Field(
        default="",
        description="The Events API v2 integration (routing) key; pass dg.EnvVar('PAGERDUTY_ROUTING_KEY'). "
        "Empty: no endpoint, the outbox only.",
    )
    cooldown_seconds: float = Field(
        default=DEFAULT_PAGER_COOLDOWN_SECONDS,
        description="A trigger of an incident that is still open and was triggered less than this ago is "
        "suppressed (recorded, not sent); >= 0.",
    )

    def __init__(self, **data: Any) -> None:
        _check(type(self), data, {"cooldown_seconds": DEFAULT_PAGER_COOLDOWN_SECONDS,
                                  "timeout_seconds": DEFAULT_TIMEOUT_SECONDS, "retries": DEFAULT_RETRIES,
                                  "backoff_seconds": DEFAULT_BACKOFF_SECONDS})
        _check_outbox(type(self), data)
        url = data.get("events_url", DEFAULT_EVENTS_URL)
        if isinstance(url, str) and _literal(url):
            check_endpoint_url(type(self).__name__, "events_url", url)
        super().__init__(**data)

    def get_route(self) -> PagerRoute:
        """The :class:`~ml_platform.monitoring.routes.PagerRoute` on these settings.

        Raises:
            ConfigurationError: a setting is out of range, or ``require_endpoint`` is set and there is no
                routing key.
        """
        if self.require_endpoint and not self.routing_key.strip():
            raise ConfigurationError(
                "PagerResource.require_endpoint is set but routing_key is empty: set it, e.g. "
                "routing_key=dg.EnvVar('PAGERDUTY_ROUTING_KEY'), or unset require_endpoint to page into the outbox only"
            )
        return PagerRoute(**self._outbox(), routing_key=self.routing_key, events_url=self.events_url,
                          cooldown_seconds=self.cooldown_seconds, timeout_seconds=self.timeout_seconds,
                          retries=self.retries, backoff_seconds=self.backoff_seconds,
                          redelivery_backoff_seconds=self.redelivery_backoff_seconds,
                          overdue_seconds=self.overdue_seconds)


class ResearchResource(_RouteResource):
    """The research route (alpha drift findings, a Slack incoming webhook) as a Dagster resource.

    Without a ``slack_webhook_url`` (the embedded default) the route's outbox is the destination. The
    research report itself is stored in MLflow by the caller; the message links it.
    """

    slack_webhook_url: str = Field(
        default="",
        description="The Slack incoming-webhook URL (a secret: pass dg.EnvVar('SLACK_RESEARCH_WEBHOOK_URL')); "
        "empty: no endpoint, the outbox only.",
    )
    cooldown_seconds: float = Field(
        default=DEFAULT_RESEARCH_COOLDOWN_SECONDS,
        description="A finding whose key was sent less than this ago is suppressed (recorded, not sent); >= 0.",
    )

    def __init__(self, **data: Any) -> None:
        _check(type(self), data, {"cooldown_seconds": DEFAULT_RESEARCH_COOLDOWN_SECONDS,
                                  "timeout_seconds": DEFAULT_TIMEOUT_SECONDS, "retries": DEFAULT_RETRIES,
                                  "backoff_seconds": DEFAULT_BACKOFF_SECONDS})
        _check_outbox(type(self), data)
        url = data.get("slack_webhook_url", "")
        if isinstance(url, str) and _literal(url) and url.strip():
            check_endpoint_url(type(self).__name__, "slack_webhook_url", url.strip())
        super().__init__(**data)

    def get_route(self) -> ResearchRoute:
        """The :class:`~ml_platform.monitoring.routes.ResearchRoute` on these settings.

        Raises:
            ConfigurationError: a setting is out of range, or ``require_endpoint`` is set and there is no
                webhook URL.
        """
        if self.require_endpoint and not self.slack_webhook_url.strip():
            raise ConfigurationError(
                "ResearchResource.require_endpoint is set but slack_webhook_url is empty: set it, e.g. "
                "slack_webhook_url=dg.EnvVar('SLACK_RESEARCH_WEBHOOK_URL'), or unset require_endpoint"
            )
        return ResearchRoute(**self._outbox(), slack_webhook_url=self.slack_webhook_url,
                             cooldown_seconds=self.cooldown_seconds, timeout_seconds=self.timeout_seconds,
                             retries=self.retries, backoff_seconds=self.backoff_seconds,
                             redelivery_backoff_seconds=self.redelivery_backoff_seconds,
                             overdue_seconds=self.overdue_seconds)
