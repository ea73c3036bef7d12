"""The routes over every outbox backend (files, SQLite, PostgreSQL): redelivery, concurrent daemons, secrets.

The real PagerDuty and Slack clients send real HTTP to the loopback stub (``http_stub``) that fails, then
accepts; the outbox is the backend under test (``outbox_backend``, conftest.py).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from ml_platform.errors import DeliveryFailed
from ml_platform.monitoring.outbox import Outbox, OutboxEvent
from ml_platform.monitoring.outbox_sql import OUTBOX_TABLE
from ml_platform.monitoring.routes import DeliveryStatus, PagerRoute, ResearchRoute
from ml_platform_tests.monitoring.conftest import OutboxBackend
from ml_platform_tests.monitoring.http_stub import Reply
from ml_platform_tests.monitoring.test_routes import (
    ENQUEUE,
    ROUTING_KEY,
    StubFactory,
    closed_port_url,
    finding,
    incident,
)

# Distinctive secrets: none of them may appear in an outbox, a log record or an error text.
PD_KEY = "PDKEY0distinctive0routing0key0f00d"
WEBHOOK_TOKEN = "whkDistinctiveToken5f3a9c0b"
WEBHOOK_PATH = f"/services/TSEKRET01/BSEKRET02/{WEBHOOK_TOKEN}"
DB_PASSWORD = "dbPassw0rdDistinctive7731"


def _route_args(backend: OutboxBackend) -> dict:
    return {**backend.route_args, "timeout_seconds": 2.0, "backoff_seconds": 0.01, "redelivery_backoff_seconds": 0}


def test_a_failed_page_is_kept_and_a_later_flush_delivers_it_once(outbox_backend: OutboxBackend,
                                                                  http_stub: StubFactory) -> None:
    stub = http_stub([500, 503])  # the send's two attempts fail, then the endpoint recovers
    route = PagerRoute(**_route_args(outbox_backend), routing_key=ROUTING_KEY, events_url=stub.url_for(ENQUEUE),
                       retries=1)
    delivery = route.send(incident())
    assert delivery.pending and delivery.attempts == 2 and "503" in delivery.error
    [pending] = route.pending()
    assert pending.id == delivery.alert_id and route.open_incidents().keys() == {incident().key}

    restarted = PagerRoute(**_route_args(outbox_backend), routing_key=ROUTING_KEY,  # a new daemon process
                           events_url=stub.url_for(ENQUEUE), retries=1)
    [flushed] = restarted.flush()
    assert flushed.alert_id == delivery.alert_id and flushed.delivered and flushed.attempts == 3
    assert restarted.flush() == [] and restarted.pending() == []
    assert restarted.send(incident()).status is DeliveryStatus.SUPPRESSED  # the open incident is not paged again
    assert len(stub.accepted(ENQUEUE)) == 1 and len(stub.requests) == 3
    log = restarted.outbox.read()
    assert [r.event for r in log.find(delivery.alert_id)] == [OutboxEvent.QUEUED, OutboxEvent.FAILED,
                                                              OutboxEvent.FAILED, OutboxEvent.DELIVERED]
    assert [r.data["attempt"] for r in log.find(delivery.alert_id, "failed")] == [1, 2]


def _flush_in_process(outbox_dir: str | None, outbox_url: str | None, events_url: str,
                      start: multiprocessing.synchronize.Event) -> None:
    route = PagerRoute(outbox_dir, outbox_url=outbox_url, routing_key=ROUTING_KEY, events_url=events_url,
                       timeout_seconds=5, retries=0, redelivery_backoff_seconds=0)
    start.wait(30)
    route.flush()


def test_two_daemons_flushing_at_once_deliver_each_pending_alert_once(outbox_backend: OutboxBackend,
                                                                      http_stub: StubFactory) -> None:
    keys = [f"freshness:features/f{n}" for n in range(5)]
    dead = PagerRoute(**_route_args(outbox_backend), routing_key=ROUTING_KEY, events_url=closed_port_url(ENQUEUE),
                      retries=0)
    for key in keys:
        dead.send(incident(key))
    assert len(dead.pending()) == len(keys)

    stub = http_stub([Reply(202, delay=0.05)], default=Reply(202, delay=0.05))
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    where = (str(outbox_backend.outbox_dir) if outbox_backend.outbox_dir else None, outbox_backend.outbox_url)
    processes = [context.Process(target=_flush_in_process, args=(*where, stub.url_for(ENQUEUE), start))
                 for _ in range(2)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    assert sorted(r.json["dedup_key"] for r in stub.requests) == sorted(keys)
    assert dead.pending() == []


def _with_password(backend: OutboxBackend) -> OutboxBackend:
    """The backend, its database URL carrying a password (the harness's server trusts loopback: it is ignored)."""
    if backend.outbox_url is None or not backend.outbox_url.startswith("postgresql"):
        return backend
    url = make_url(backend.outbox_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    return OutboxBackend(backend.name, None, url)


def _stored_text(backend: OutboxBackend) -> str:
    """Everything the backend stored: the raw files, or every column of every outbox row."""
    if backend.outbox_dir is not None:
        return "\n".join(path.read_text() for path in sorted(Path(backend.outbox_dir).glob("*")) if path.is_file())
    engine = sqlalchemy.create_engine(backend.outbox_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(f"SELECT * FROM {OUTBOX_TABLE} ORDER BY route, seq")).all()
    finally:
        engine.dispose()
    return "\n".join(json.dumps([str(value) for value in row]) for row in rows)


def test_no_secret_reaches_an_outbox_a_log_or_an_error(outbox_backend: OutboxBackend, http_stub: StubFactory,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    backend = _with_password(outbox_backend)
    # A hostile endpoint echoes the secrets in its refusals; then it accepts.
    pd_stub = http_stub([Reply(500, body={"status": "error", "message": f"bad key {PD_KEY}", "errors": [PD_KEY]})])
    slack_stub = http_stub([Reply(500, body=f"no_service for {WEBHOOK_PATH} ({WEBHOOK_TOKEN})")], default=200)
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        pager = PagerRoute(**_route_args(backend), routing_key=PD_KEY, events_url=pd_stub.url_for(ENQUEUE),
                           retries=0)
        research = ResearchRoute(**_route_args(backend), slack_webhook_url=slack_stub.url_for(WEBHOOK_PATH),
                                 retries=0)
        dead = ResearchRoute(**_route_args(backend), slack_webhook_url=closed_port_url(WEBHOOK_PATH), retries=0)
        failed = [pager.send(incident()), research.send(finding())]
        failed.append(dead.send(finding("alpha:3:psi")))
        for delivery in failed:
            assert delivery.pending, delivery
            texts.append(delivery.error or "")
            with pytest.raises(DeliveryFailed) as caught:
                delivery.raise_if_pending()
            texts.append(str(caught.value))
        delivered = [*pager.flush(), *research.flush()]
        assert all(delivery.delivered for delivery in delivered) and len(delivered) == 3
        texts += [repr(pager), repr(research), repr(dead), repr(pager.outbox), pager.outbox.location]
    assert pd_stub.requests[-1].json["routing_key"] == PD_KEY  # the endpoints did get the secrets
    assert slack_stub.requests[-1].path == WEBHOOK_PATH
    stored = _stored_text(backend)
    records = [json.dumps(dict(r.data)) for r in [*pager.outbox.read().records, *research.outbox.read().records]]
    assert "bad key <routing key>" in stored and "<webhook path>" in stored  # the refusals are kept, redacted
    assert any("slack_sdk" in record.name for record in caplog.records)  # the client logged, through our filter
    haystacks = {"outbox": stored, "records": "\n".join(records), "logs": caplog.text,
                 "log messages": "\n".join(r.getMessage() for r in caplog.records), "errors": "\n".join(texts)}
    for secret in (PD_KEY, WEBHOOK_TOKEN, WEBHOOK_PATH, DB_PASSWORD):
        for where, text in haystacks.items():
            assert secret not in text, f"{secret!r} appears in the {where}"
    if isinstance(pager.outbox, Outbox):
        assert pager.outbox.path.parent == Path(backend.outbox_dir)
