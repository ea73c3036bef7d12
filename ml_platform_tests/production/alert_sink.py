"""The stack's alert endpoints: PagerDuty's Events API and a Slack incoming webhook, as one local HTTP endpoint.

The pager route posts its events to ``<sink>/v2/enqueue`` with the routing key; the research route posts its
messages to ``<sink>/services/T0/B0/<token>``, the webhook URL being the credential. Both secrets are
distinctive random texts (``s3cr3t-<hex>``), so a scan of everything the stack wrote can look for them. The
first request is refused with a 500, so a failed delivery and its error are recorded too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ml_platform_tests.monitoring.http_stub import HttpStub

__all__ = ["ENQUEUE", "AlertSink"]

ENQUEUE = "/v2/enqueue"


@dataclass(frozen=True)
class AlertSink:
    """The endpoint, and the secrets the stack is started with to reach it."""

    stub: HttpStub
    routing_key: str
    webhook_token: str

    @classmethod
    def start(cls) -> AlertSink:
        stub = HttpStub([500]).start()
        return cls(stub, f"s3cr3t-pager-{uuid.uuid4().hex}", f"s3cr3t-slack-{uuid.uuid4().hex}")

    @property
    def webhook_path(self) -> str:
        return f"/services/T0/B0/{self.webhook_token}"

    @property
    def env(self) -> dict[str, str]:
        """The variables of the stack's alert routes (``Settings.from_env`` reads them)."""
        return {"ML_PLATFORM_PAGERDUTY_EVENTS_URL": self.stub.url_for(ENQUEUE),
                "ML_PLATFORM_PAGERDUTY_ROUTING_KEY": self.routing_key,
                "ML_PLATFORM_SLACK_WEBHOOK_URL": self.stub.url_for(self.webhook_path)}

    def pages(self) -> list[dict[str, object]]:
        """The PagerDuty events received, answered or not."""
        return [r.json for r in self.stub.requests if r.path == ENQUEUE and isinstance(r.json, dict)]

    def messages(self) -> list[str]:
        """The Slack messages received."""
        return [str((r.json or {}).get("text")) for r in self.stub.requests if r.path == self.webhook_path]

    def stop(self) -> None:
        self.stub.stop()
