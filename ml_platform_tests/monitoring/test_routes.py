"""The pager and research routes against a local HTTP endpoint standing in for PagerDuty and Slack.

The real clients (``pagerduty.EventsApiV2Client``, ``slack_sdk.WebhookClient``) send real HTTP to a
loopback server (:mod:`ml_platform_tests.monitoring.http_stub`) whose URL is the route's setting.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from ml_platform.errors import ConfigurationError, DeliveryFailed, MisroutedAlert
from ml_platform.monitoring.alerts import AlphaDriftFinding, InfraCheckKind, InfraIncident, Severity
from ml_platform.monitoring.outbox import Outbox, OutboxEvent
from ml_platform.monitoring.resources import PagerResource, ResearchResource
from ml_platform.monitoring.routes import (
    DEFAULT_EVENTS_URL,
    DeliveryStatus,
    PagerRoute,
    ResearchRoute,
    statistics_table,
)
from ml_platform_tests.harness.secrets import chain_text
from ml_platform_tests.monitoring.http_stub import HttpStub, Reply

ROUTING_KEY = "R0123456789abcdef0123456789abcdef"
ENQUEUE = "/v2/enqueue"
WEBHOOK = "/services/T000/B000/secretwebhooktoken"

StubFactory = Callable[..., HttpStub]


class Clock:
    """A settable clock for cooldowns."""

    def __init__(self) -> None:
        self.now = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def incident(key: str = "freshness:features/returns", **changes: object) -> InfraIncident:
    values: dict = {"key": key, "check": InfraCheckKind.FRESHNESS, "asset": "features/returns",
                    "summary": "features/returns 2024-02-29 is 45 min late", "severity": Severity.CRITICAL,
                    "partition": "2024-02-29", "details": {"expected_by": "2024-02-29T21:15:00+00:00"}}
    return InfraIncident(**{**values, **changes})


def finding(key: str = "alpha:3:ic", **changes: object) -> AlphaDriftFinding:
    values: dict = {"key": key, "model": "alpha", "version": "3", "summary": "rank IC fell from 0.041 to 0.004",
                    "live_window": "2024-01-02..2024-02-29", "validation_window": "2022-01-03..2023-12-29",
                    "statistics": {"rank_ic": {"value": 0.004, "threshold": 0.02, "breached": True},
                                   "psi_signal": {"value": 0.08, "threshold": 0.25, "breached": False}},
                    "report_ref": "https://mlflow.example/#/experiments/1/runs/abc/artifacts/drift/report.md"}
    return AlphaDriftFinding(**{**values, **changes})


def pager(tmp_path: Path, stub: HttpStub | None, **options: object) -> PagerRoute:
    settings: dict = {"routing_key": ROUTING_KEY if stub else "", "timeout_seconds": 2.0, "retries": 1,
                      "backoff_seconds": 0.01, "redelivery_backoff_seconds": 0}  # a flush retries at once
    if stub is not None:
        settings["events_url"] = stub.url_for(ENQUEUE)
    return PagerRoute(tmp_path / "outbox", **{**settings, **options})


def research(tmp_path: Path, stub: HttpStub | None, **options: object) -> ResearchRoute:
    settings: dict = {"slack_webhook_url": stub.url_for(WEBHOOK) if stub else "", "timeout_seconds": 2.0,
                      "retries": 1, "backoff_seconds": 0.01, "redelivery_backoff_seconds": 0}
    return ResearchRoute(tmp_path / "outbox", **{**settings, **options})


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, float]]]:
    """Every HTTP request the PagerDuty client hands its (real) transport: its URL and httpx's timeouts."""
    import httpx2

    seen: list[tuple[str, dict[str, float]]] = []
    handle = httpx2.HTTPTransport.handle_request

    def recording(self: httpx2.HTTPTransport, request: httpx2.Request) -> httpx2.Response:
        seen.append((str(request.url), dict(request.extensions.get("timeout", {}))))
        return handle(self, request)

    monkeypatch.setattr(httpx2.HTTPTransport, "handle_request", recording)
    return seen


def closed_port_url(path: str) -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


# -- pager: trigger, de-duplication, resolve ----------------------------------------------------------------


def test_a_trigger_reaches_the_events_api_with_its_dedup_key_severity_and_summary(tmp_path: Path,
                                                                                  http_stub: StubFactory) -> None:
    stub = http_stub()
    route = pager(tmp_path, stub)
    alert = incident()

    delivery = route.send(alert)

    assert delivery.status is DeliveryStatus.DELIVERED and delivery.endpoint == "pagerduty"
    assert delivery.attempts == 1 and delivery.answer == {"status": 202, "dedup_key": alert.key}
    [request] = stub.requests
    assert request.method == "POST" and request.path == ENQUEUE
    assert request.headers["Content-Type"] == "application/json"
    body = request.json
    assert body["event_action"] == "trigger" and body["routing_key"] == ROUTING_KEY
    assert body["dedup_key"] == alert.key
    payload = body["payload"]
    assert payload["summary"] == alert.summary and payload["severity"] == "critical"
    assert payload["source"] == "features/returns" and payload["component"] == "features/returns"
    assert payload["class"] == "freshness" and payload["timestamp"] == alert.observed_at
    assert payload["custom_details"] == {"check": "freshness", "asset": "features/returns",
                                         "partition": "2024-02-29", "alert_id": delivery.alert_id,
                                         "details": {"expected_by": "2024-02-29T21:15:00+00:00"}}
    events = [(r.event, r.id) for r in route.outbox.read().records]
    assert events == [(OutboxEvent.QUEUED, delivery.alert_id), (OutboxEvent.DELIVERED, delivery.alert_id)]
    assert ROUTING_KEY not in route.outbox.path.read_text()  # the secret is never written down
    assert ROUTING_KEY not in repr(route)


def test_a_duplicate_within_the_cooldown_is_suppressed_and_after_it_sent_again(tmp_path: Path,
                                                                               http_stub: StubFactory) -> None:
    stub, clock = http_stub(), Clock()
    route = pager(tmp_path, stub, cooldown_seconds=600, clock=clock)
    first = route.send(incident())

    clock.advance(599)
    again = route.send(incident(summary="still late"))
    assert again.status is DeliveryStatus.SUPPRESSED and "cooldown of 600s" in again.error
    assert len(stub.requests) == 1
    [suppressed] = route.outbox.read().find(again.alert_id)
    assert suppressed.event is OutboxEvent.SUPPRESSED and suppressed.data["duplicate_of"] == first.alert_id
    assert suppressed.alert["summary"] == "still late"

    other = route.send(incident("schema:features/returns", check=InfraCheckKind.SCHEMA))  # another key: sent
    assert other.delivered and len(stub.requests) == 2

    clock.advance(2)  # past the cooldown and still open: sent again (PagerDuty adds it to the open incident)
    reminder = route.send(incident())
    assert reminder.delivered and [b["dedup_key"] for b in stub.bodies()][-1] == incident().key


def test_a_resolve_closes_the_open_incident(tmp_path: Path, http_stub: StubFactory) -> None:
    stub, clock = http_stub(), Clock()
    route = pager(tmp_path, stub, cooldown_seconds=3600, clock=clock)
    opened = incident()
    route.send(opened)
    assert set(route.open_incidents()) == {opened.key}

    closed = route.send(opened.resolved("the partition landed at 21:40"))

    assert closed.delivered
    body = stub.requests[-1].json
    assert body == {"event_action": "resolve", "dedup_key": opened.key, "routing_key": ROUTING_KEY}
    assert route.open_incidents() == {}
    clock.advance(1)  # a new failure of the same key opens a new incident at once: no cooldown after a resolve
    assert route.send(opened).delivered and len(stub.requests) == 3


def test_a_resolve_of_a_key_that_is_not_open_is_recorded_and_not_sent(tmp_path: Path,
                                                                      http_stub: StubFactory) -> None:
    stub = http_stub()
    route = pager(tmp_path, stub)

    delivery = route.send(incident().resolved("recovered"))

    assert delivery.status is DeliveryStatus.SKIPPED and "no open incident" in delivery.error
    assert stub.requests == [] and route.pending() == []
    [record] = route.outbox.read().records
    assert record.event is OutboxEvent.SKIPPED and record.action == "resolve"
    route.send(incident())
    route.send(incident().resolved("recovered"))
    assert route.send(incident().resolved("recovered again")).status is DeliveryStatus.SKIPPED  # already closed
    assert [b["event_action"] for b in stub.bodies()] == ["trigger", "resolve"]


# -- failures: retried, kept, flushed once ----------------------------------------------------------------------


def test_a_failing_endpoint_is_retried_and_the_alert_kept_then_flushed_exactly_once(tmp_path: Path,
                                                                                    http_stub: StubFactory) -> None:
    stub = http_stub([500, 503])  # both attempts of the send fail, then the endpoint recovers
    route = pager(tmp_path, stub, retries=1)
    alert = incident()

    delivery = route.send(alert)

    assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 2 and "503" in delivery.error
    with pytest.raises(DeliveryFailed, match="stays in the outbox"):
        delivery.raise_if_pending()
    [pending] = route.pending()
    assert pending.id == delivery.alert_id and pending.alert == alert.to_dict()
    failed = route.outbox.read().find(delivery.alert_id, OutboxEvent.FAILED)
    assert [(f.data["attempt"], f.data["status"], f.data["retryable"]) for f in failed] == [(1, 500, True),
                                                                                           (2, 503, True)]
    assert route.open_incidents().keys() == {alert.key}  # pending, yet open

    [flushed] = route.flush()  # the endpoint has recovered
    assert flushed.alert_id == delivery.alert_id and flushed.delivered and flushed.attempts == 3
    assert route.flush() == [] and route.pending() == []
    assert route.send(alert).status is DeliveryStatus.SUPPRESSED  # and it is not sent again
    assert len(stub.accepted(ENQUEUE)) == 1 and len(stub.requests) == 3
    delivered = route.outbox.read().find(delivery.alert_id, OutboxEvent.DELIVERED)
    assert [d.data["attempt"] for d in delivered] == [3]


def test_flush_redelivers_what_a_dead_endpoint_left_pending(tmp_path: Path, http_stub: StubFactory,
                                                            transport: list[tuple[str, dict[str, float]]]) -> None:
    sleeps: list[float] = []
    dead = pager(tmp_path, None, routing_key=ROUTING_KEY, events_url=closed_port_url(ENQUEUE), retries=2,
                 sleep=sleeps.append)
    delivery = dead.send(incident())
    assert delivery.pending and delivery.attempts == 3 and "ConnectError" in delivery.error
    # bounded: one connection per attempt (no library retry loop), and only the route's short backoff
    assert len(transport) == 3 and sleeps == [0.01, 0.02], (transport, sleeps)

    stub = http_stub()
    restored = pager(tmp_path, stub)
    [flushed] = restored.flush()
    assert flushed.alert_id == delivery.alert_id and flushed.delivered and flushed.attempts == 4
    assert len(stub.requests) == 1 and restored.flush() == []


def test_a_timeout_keeps_the_alert_pending_within_the_time_limit(tmp_path: Path, http_stub: StubFactory,
                                                                 transport: list[tuple[str, dict[str, float]]]) -> None:
    stub = http_stub([Reply(202, delay=120.0)])  # answers long after any timeout
    route = pager(tmp_path, stub, timeout_seconds=0.3, retries=0)
    delivery = route.send(incident())
    assert delivery.pending and "Timeout" in delivery.error
    # the client gave up by its own limit: one request, sent with the route's 0.3 s as every httpx timeout
    assert transport == [(stub.url_for(ENQUEUE), dict.fromkeys(("connect", "read", "write", "pool"), 0.3))]
    # the endpoint may have accepted it after the client gave up: the flush sends it again, and PagerDuty
    # de-duplicates by dedup_key (the documented at-least-once case)
    assert route.flush()[0].delivered
    assert {b["dedup_key"] for b in stub.bodies()} == {incident().key}


def test_a_429_is_one_request_per_attempt_the_route_owns_the_retries(tmp_path: Path,
                                                                     http_stub: StubFactory) -> None:
    stub = http_stub([429, 429, 429])
    delivery = pager(tmp_path, stub, retries=1).send(incident())
    assert delivery.pending and delivery.attempts == 2 and len(stub.requests) == 2


def test_a_refusal_is_not_retried_in_the_pass_but_kept(tmp_path: Path, http_stub: StubFactory) -> None:
    stub = http_stub([Reply(400, body={"status": "invalid event", "errors": ["bad"]})])
    route = pager(tmp_path, stub, retries=3)
    refused = route.send(incident())
    assert refused.pending and refused.attempts == 1 and len(stub.requests) == 1
    [failed] = route.outbox.read().find(refused.alert_id, OutboxEvent.FAILED)
    assert failed.data["retryable"] is False and failed.data["status"] == 400
    other = route.send(incident("schema:features/returns"))  # a refusal of one alert does not hold the others
    assert other.delivered


def test_later_alerts_of_a_key_wait_behind_its_pending_trigger(tmp_path: Path, http_stub: StubFactory) -> None:
    stub = http_stub([500, 500])
    route = pager(tmp_path, stub, retries=1)
    trigger = route.send(incident())
    assert trigger.pending

    resolve = route.send(incident().resolved("recovered"))  # its flush delivers the trigger first

    assert resolve.delivered and route.pending() == []
    assert [r.json["event_action"] for r in stub.accepted()] == ["trigger", "resolve"]


def test_a_resolve_never_overtakes_its_undelivered_trigger(tmp_path: Path, http_stub: StubFactory) -> None:
    stub = http_stub([400, 400])  # the trigger is refused twice; the resolve would be accepted
    route = pager(tmp_path, stub, retries=0)
    trigger = route.send(incident())
    resolve = route.send(incident().resolved("recovered"))

    assert trigger.pending and resolve.pending and "same key" in resolve.error
    assert [r.json["event_action"] for r in stub.requests] == ["trigger", "trigger"]  # retried, never resolved first
    assert [r.id for r in route.pending()] == [trigger.alert_id, resolve.alert_id]
    stub.answer_always(202)
    assert [d.delivered for d in route.flush()] == [True, True]
    assert [r.json["event_action"] for r in stub.accepted()] == ["trigger", "resolve"]


# -- restarts and concurrent daemons ------------------------------------------------------------------------------


def test_a_daemon_restart_neither_resends_delivered_alerts_nor_loses_pending_ones(tmp_path: Path,
                                                                                  http_stub: StubFactory) -> None:
    stub, clock = http_stub([202, 500, 500]), Clock()
    before = pager(tmp_path, stub, retries=1, clock=clock)
    delivered = before.send(incident("freshness:a"))
    kept = before.send(incident("freshness:b"))
    assert delivered.delivered and kept.pending
    del before  # the daemon stops

    after = pager(tmp_path, stub, retries=1, clock=clock)  # a new process would build exactly this
    assert after.send(incident("freshness:a")).status is DeliveryStatus.SUPPRESSED  # cooldown state survived
    assert after.pending() == []  # the suppressed send flushed "freshness:b"
    assert after.flush() == []
    accepted = [r.json["dedup_key"] for r in stub.accepted()]
    assert sorted(accepted) == ["freshness:a", "freshness:b"]  # each exactly once
    assert set(after.open_incidents()) == {"freshness:a", "freshness:b"}


def _flush_in_process(outbox_dir: str, events_url: str, start: multiprocessing.synchronize.Event) -> None:
    route = PagerRoute(outbox_dir, routing_key=ROUTING_KEY, events_url=events_url, timeout_seconds=5, retries=0,
                       redelivery_backoff_seconds=0)
    start.wait(30)
    route.flush()


def test_two_daemons_flushing_at_once_deliver_each_pending_alert_once(tmp_path: Path,
                                                                      http_stub: StubFactory) -> None:
    keys = [f"freshness:features/f{n}" for n in range(6)]
    dead = pager(tmp_path, None, routing_key=ROUTING_KEY, events_url=closed_port_url(ENQUEUE), retries=0)
    for key in keys:
        dead.send(incident(key))
    assert len(dead.pending()) == len(keys)

    stub = http_stub([Reply(202, delay=0.05)], default=Reply(202, delay=0.05))
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [context.Process(target=_flush_in_process,
                                 args=(str(tmp_path / "outbox"), stub.url_for(ENQUEUE), start)) for _ in range(2)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0

    assert sorted(r.json["dedup_key"] for r in stub.requests) == sorted(keys)
    assert dead.pending() == []


# -- type safety ------------------------------------------------------------------------------------------------


def test_misrouting_either_way_raises_and_writes_nothing(tmp_path: Path, http_stub: StubFactory) -> None:
    stub = http_stub()
    pager_route, research_route = pager(tmp_path, stub), research(tmp_path, stub)

    with pytest.raises(MisroutedAlert) as to_pager:
        pager_route.send(finding())  # type: ignore[arg-type]
    with pytest.raises(MisroutedAlert) as to_research:
        research_route.send(incident())  # type: ignore[arg-type]
    with pytest.raises(MisroutedAlert):
        pager_route.send({"type": "InfraIncident"})  # type: ignore[arg-type]

    message = str(to_pager.value)
    assert "PagerRoute accepts only InfraIncident" in message and "AlphaDriftFinding" in message
    assert "ResearchRoute" in message and "never pages" in message
    message = str(to_research.value)
    assert "ResearchRoute accepts only AlphaDriftFinding" in message and "InfraIncident" in message
    assert "PagerRoute" in message
    assert isinstance(to_pager.value, TypeError) and to_pager.value.code == "MISROUTED_ALERT"
    assert not (tmp_path / "outbox").exists() and stub.requests == []


def test_a_misrouted_record_in_the_outbox_is_never_delivered(tmp_path: Path, http_stub: StubFactory) -> None:
    stub = http_stub()
    route = pager(tmp_path, stub)
    alien = Outbox(route.outbox.path).record_queued(finding().to_dict(), key="alpha:3:ic", action=None)
    [delivery] = route.flush()
    assert delivery.alert_id == alien and delivery.pending and "cannot be read back" in delivery.error
    assert stub.requests == []


# -- the embedded default: the outbox is the route -------------------------------------------------------------


def test_with_no_endpoint_the_alert_is_recorded_to_the_outbox_only(tmp_path: Path, http_stub: StubFactory) -> None:
    stub = http_stub()  # running, and must receive nothing
    pager_route, research_route = pager(tmp_path, None), research(tmp_path, None)
    assert pager_route.endpoint == "outbox" and research_route.endpoint == "outbox"

    paged = pager_route.send(incident())
    noted = research_route.send(finding())
    duplicate = pager_route.send(incident())
    resolved = pager_route.send(incident().resolved("recovered"))

    assert paged.delivered and paged.endpoint == "outbox" and noted.delivered and resolved.delivered
    assert duplicate.status is DeliveryStatus.SUPPRESSED  # de-duplication works on the outbox alone
    assert stub.requests == []
    pager_lines = pager_route.outbox.read().records
    assert [(r.event, r.data.get("endpoint")) for r in pager_lines] == [
        ("queued", None), ("delivered", "outbox"), ("suppressed", None), ("queued", None), ("delivered", "outbox")]
    assert research_route.outbox.path == tmp_path / "outbox" / "research.jsonl"
    assert [r.event for r in research_route.outbox.read().records] == ["queued", "delivered"]


# -- research: the Slack webhook ----------------------------------------------------------------------------------


def test_the_slack_message_carries_the_summary_statistics_and_report_link(tmp_path: Path,
                                                                          http_stub: StubFactory) -> None:
    stub = http_stub(default=200)
    alert = finding()
    delivery = research(tmp_path, stub).send(alert)

    assert delivery.delivered and delivery.endpoint == "slack" and delivery.answer == {"status": 200, "body": "ok"}
    [request] = stub.requests
    assert request.path == WEBHOOK and request.headers["Content-Type"].startswith("application/json")
    text = request.json["text"]
    assert alert.summary in text and f"<{alert.report_ref}|research report>" in text
    assert "model `alpha` version `3`" in text and "2024-01-02..2024-02-29" in text
    assert "rank_ic" in text and "0.004" in text and "breached" in text
    assert request.json["unfurl_links"] is False
    assert WEBHOOK not in Path(tmp_path / "outbox" / "research.jsonl").read_text()  # the webhook is the secret


def test_the_research_route_de_duplicates_per_finding_key_and_keeps_failures(tmp_path: Path,
                                                                             http_stub: StubFactory) -> None:
    stub, clock = http_stub([500, 500]), Clock()
    route = research(tmp_path, stub, cooldown_seconds=86400, clock=clock, retries=1)

    first = route.send(finding())
    assert first.pending and "HTTP 500" in first.error
    assert route.send(finding()).status is DeliveryStatus.SUPPRESSED  # queued counts as sent for the cooldown
    assert route.pending() == []  # ... and that send flushed the first one
    other = route.send(finding("alpha:3:psi", report_ref="runs:/abc/drift/report.md"))
    assert other.delivered and "`runs:/abc/drift/report.md`" in stub.requests[-1].json["text"]
    clock.advance(86401)
    assert route.send(finding()).delivered
    texts = [r.json["text"] for r in stub.accepted()]
    assert len(texts) == 3 and sum(finding().summary in t for t in texts) == 3


def test_statistics_table_is_aligned_text() -> None:
    table = statistics_table({"psi": 0.31, "rank_ic": {"value": 0.004, "threshold": 0.02, "breached": True,
                                                       "p_value": 0.01}})
    assert table.splitlines() == [
        "statistic  value  threshold  breached  p_value",
        "psi        0.31",
        "rank_ic    0.004  0.02       true      0.01",
    ]
    assert statistics_table({}) == "(no statistics)"


# -- settings -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("options", "match"), [
    ({"cooldown_seconds": -1}, "cooldown_seconds must be >= 0"),
    ({"timeout_seconds": 0}, r"timeout_seconds must be in \(0, 60\]"),
    ({"timeout_seconds": 61}, r"timeout_seconds must be in \(0, 60\]"),
    ({"retries": 11}, r"retries must be an integer in 0\.\.10"),
    ({"retries": -1}, r"retries must be an integer in 0\.\.10"),
    ({"backoff_seconds": float("nan")}, "backoff_seconds must be a finite number"),
    ({"events_url": "http://events.example.com/v2/enqueue"}, "events_url must be an https:// URL"),
])
def test_out_of_range_settings_are_refused_by_name(tmp_path: Path, options: dict, match: str) -> None:
    with pytest.raises(ConfigurationError, match=f"PagerRoute.{match}"):
        PagerRoute(tmp_path, **options)
    with pytest.raises(ConfigurationError, match=f"PagerResource.{match}"):
        PagerResource(outbox_dir=str(tmp_path), **options)


def test_endpoint_urls_must_be_https_except_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="ResearchRoute.slack_webhook_url must be an https:// URL"):
        ResearchRoute(tmp_path, slack_webhook_url="http://hooks.slack.com/services/x")
    with pytest.raises(ConfigurationError, match="ResearchResource.slack_webhook_url"):
        ResearchResource(slack_webhook_url="ftp://hooks.slack.com/services/x")
    assert ResearchRoute(tmp_path, slack_webhook_url="https://hooks.slack.com/services/x").endpoint == "slack"
    assert PagerRoute(tmp_path, routing_key=ROUTING_KEY, events_url="http://localhost:9/v2/enqueue").configured
    assert PagerRoute(tmp_path, routing_key=ROUTING_KEY).events_url == DEFAULT_EVENTS_URL


def test_a_webhook_url_that_does_not_parse_is_refused_without_quoting_it(tmp_path: Path) -> None:
    webhook = "https://[hooks.slack.com/services/T0/B0/s3cr3tw3bh00k"  # an unclosed IPv6 bracket
    with pytest.raises(ConfigurationError, match="slack_webhook_url is not a URL") as caught:
        ResearchRoute(tmp_path, slack_webhook_url=webhook)
    assert "s3cr3tw3bh00k" not in chain_text(caught.value)


def test_the_resources_build_the_routes_with_secrets_from_the_environment(tmp_path: Path, http_stub: StubFactory,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    stub = http_stub(default=200)
    monkeypatch.setenv("TEST_PD_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", stub.url_for(WEBHOOK))
    resources = {
        "pager": PagerResource(routing_key=dg.EnvVar("TEST_PD_ROUTING_KEY"), events_url=stub.url_for(ENQUEUE),
                               outbox_dir=str(tmp_path), retries=0, require_endpoint=True),
        "research": ResearchResource(slack_webhook_url=dg.EnvVar("TEST_SLACK_WEBHOOK"), outbox_dir=str(tmp_path)),
    }
    with dg.build_resources(resources) as built:
        pager_route, research_route = built.pager.get_route(), built.research.get_route()
    assert isinstance(pager_route, PagerRoute) and pager_route.endpoint == "pagerduty"
    assert isinstance(research_route, ResearchRoute) and research_route.endpoint == "slack"
    assert pager_route.retries == 0 and pager_route.cooldown_seconds == 3600
    assert research_route.cooldown_seconds == 86400
    assert pager_route.send(incident()).delivered and research_route.send(finding()).delivered
    assert stub.requests[0].json["routing_key"] == ROUTING_KEY and stub.requests[1].path == WEBHOOK

    default = PagerResource(outbox_dir=str(tmp_path)).get_route()
    assert default.endpoint == "outbox" and default.events_url == DEFAULT_EVENTS_URL
    with pytest.raises(ConfigurationError, match="require_endpoint is set but routing_key is empty"):
        PagerResource(outbox_dir=str(tmp_path), require_endpoint=True).get_route()
    with pytest.raises(ConfigurationError, match="require_endpoint is set but slack_webhook_url is empty"):
        ResearchResource(outbox_dir=str(tmp_path), require_endpoint=True).get_route()


def test_the_outbox_and_routes_import_neither_dagster_nor_mlflow() -> None:
    code = ("import sys, ml_platform.monitoring.outbox, ml_platform.monitoring.routes; "
            "print(sorted(m for m in ('dagster', 'mlflow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


# -- a dead endpoint: every pending alert tried, per-alert backoff, bounded, overdue reported --------------------------


def _failed_counts(route: PagerRoute, ids: list[str]) -> list[int]:
    log = route.outbox.read()
    return [len(log.find(alert_id, OutboxEvent.FAILED)) for alert_id in ids]


def test_a_flush_tries_every_pending_alert_not_only_the_oldest(tmp_path: Path) -> None:
    clock = Clock()
    route = pager(tmp_path, None, routing_key=ROUTING_KEY, events_url=closed_port_url(ENQUEUE), retries=1,
                  redelivery_backoff_seconds=60, clock=clock)
    ids = [route.send(incident(f"freshness:f{n}")).alert_id for n in range(3)]
    assert _failed_counts(route, ids) == [2, 2, 2]  # each send tried its own alert, though the endpoint was down

    clock.advance(600)
    flushed = route.flush()

    # the oldest gets its retries, the others one attempt each: none waits behind another key's alert
    assert [d.alert_id for d in flushed] == ids and not any(d.delivered for d in flushed)
    assert _failed_counts(route, ids) == [4, 3, 3]
    assert all("ConnectError" in d.error for d in flushed)


def test_each_pending_alert_backs_off_on_its_own_failures(tmp_path: Path, http_stub: StubFactory) -> None:
    clock = Clock()
    dead = pager(tmp_path, None, routing_key=ROUTING_KEY, events_url=closed_port_url(ENQUEUE), retries=1,
                 redelivery_backoff_seconds=60, clock=clock)
    ids = [dead.send(incident(f"freshness:f{n}")).alert_id for n in range(2)]
    clock.advance(120)  # the wait after 2 failures: 60 * 2
    dead.flush()
    assert _failed_counts(dead, ids) == [4, 3]  # f0 now waits 60 * 8 = 480 s, f1 60 * 4 = 240 s

    stub = http_stub()
    back = pager(tmp_path, stub, redelivery_backoff_seconds=60, clock=clock)
    clock.advance(239)
    waiting = back.flush()
    assert stub.requests == [] and all(d.pending and "tried again" in d.error for d in waiting)
    assert "240s after its last failed attempt" in waiting[1].error and "480s" in waiting[0].error
    clock.advance(1)
    assert [d.delivered for d in back.flush()] == [False, True]  # f1 is due, f0 is not
    clock.advance(240)
    assert [d.delivered for d in back.flush()] == [True]
    assert [r.json["dedup_key"] for r in stub.requests] == ["freshness:f1", "freshness:f0"]


def test_a_flush_stops_after_its_bound_of_failed_attempts_and_the_next_starts_with_the_rest(tmp_path: Path) -> None:
    route = pager(tmp_path, None, routing_key=ROUTING_KEY, events_url=closed_port_url(ENQUEUE), retries=1)
    ids = [route.outbox.record_queued(incident(f"freshness:f{n:02d}").to_dict(), key=f"freshness:f{n:02d}",
                                      action="trigger") for n in range(12)]

    first = route.flush()
    # 2 attempts for the first (its retry), 1 for each next one, until 8 attempts failed in this flush
    assert _failed_counts(route, ids) == [2, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert all("bound of 8 failed attempts" in d.error for d in first[7:])
    route.flush()  # the never-tried ones first, then the least recently tried
    assert _failed_counts(route, ids) == [3, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]


def test_an_alert_undelivered_past_its_bound_is_reported_once_on_the_other_routes_outbox(tmp_path: Path) -> None:
    clock = Clock()
    route = pager(tmp_path, None, routing_key=ROUTING_KEY, events_url=closed_port_url(ENQUEUE), retries=0,
                  overdue_seconds=900, clock=clock)
    alert_id = route.send(incident()).alert_id
    research_outbox = Outbox(tmp_path / "outbox" / "research.jsonl")
    clock.advance(899)
    [early] = route.flush()
    assert not early.overdue and research_outbox.read().records == ()

    clock.advance(1)
    [late] = route.flush()
    clock.advance(300)
    [later] = route.flush()

    assert late.overdue and later.overdue and late.pending
    [notice] = research_outbox.read().records  # reported once, however many flushes follow
    assert notice.event is OutboxEvent.UNDELIVERED and notice.id == alert_id and notice.key == incident().key
    assert notice.data["route"] == "pager" and notice.data["attempts"] == 3 and "ConnectError" in notice.data["error"]
    assert notice.data["queued_at"] == "2024-03-01T09:00:00.000000+00:00"
    assert research_outbox.pending() == []  # a notice, never sent as a finding: alpha and infra stay apart
    assert research(tmp_path, None).flush() == []


def test_overdue_and_redelivery_settings_are_range_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"PagerRoute.overdue_seconds must be a number in \[60, 604800\]"):
        pager(tmp_path, None, overdue_seconds=59)
    with pytest.raises(ConfigurationError, match=r"PagerRoute.overdue_seconds .* got 0"):
        pager(tmp_path, None, overdue_seconds=0)  # never silently the default
    with pytest.raises(ConfigurationError, match=r"ResearchRoute.redelivery_backoff_seconds .* \[0, 600\]"):
        research(tmp_path, None, redelivery_backoff_seconds=601)
    assert pager(tmp_path, None).overdue_seconds == 900 and research(tmp_path, None).overdue_seconds == 3600
    assert PagerRoute(tmp_path).redelivery_backoff_seconds == 15
    built = PagerResource(outbox_dir=str(tmp_path), redelivery_backoff_seconds=5, overdue_seconds=120).get_route()
    assert (built.redelivery_backoff_seconds, built.overdue_seconds) == (5, 120)
    assert ResearchResource(outbox_dir=str(tmp_path)).get_route().overdue_seconds == 3600
