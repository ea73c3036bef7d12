"""The outbox in a database: its table and schema version, its URL checks, and the delivery lock across processes.

The behaviour every backend shares is tested in test_outbox.py (over ``outbox_backend``); this module tests
what only a database outbox has, and the read-modify-append of a deliverer under ``exclusive()`` from
several processes on every backend.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from ml_platform.errors import ConfigurationError, MonitoringError
from ml_platform.monitoring.outbox import Outbox, OutboxEvent
from ml_platform.monitoring.outbox_sql import (
    OUTBOX_SCHEMA_VERSION,
    OUTBOX_TABLE,
    SqlOutbox,
    check_outbox_url,
    open_outbox,
)
from ml_platform_tests.monitoring.conftest import OutboxBackend

SECRET = "s3cr3t-Pa55w0rd-of-the-outbox"


@contextlib.contextmanager
def socket_free_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound and released, so a connection to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield port


def _deliver_in_turn(outbox_dir: str | None, outbox_url: str | None, writer: int, count: int,
                     start: multiprocessing.synchronize.Event) -> None:
    """What a deliverer does under the lock, ``count`` times: read the outbox, then append what it decided."""
    outbox = open_outbox("pager", outbox_dir=outbox_dir, outbox_url=outbox_url)
    start.wait(30)
    for n in range(count):
        with outbox.exclusive():
            turn = sum(1 for record in outbox.read().records if record.key == "turn")
            outbox.append(OutboxEvent.QUEUED, alert_id=f"{writer}-{n}", key="turn", turn=turn + 1, writer=writer)


def test_deliverers_in_several_processes_never_interleave_a_read_and_its_append(
        outbox_backend: OutboxBackend) -> None:
    writers, count = 3, 15
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    where = (str(outbox_backend.outbox_dir) if outbox_backend.outbox_dir else None, outbox_backend.outbox_url)
    processes = [context.Process(target=_deliver_in_turn, args=(*where, writer, count, start))
                 for writer in range(writers)]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(180)
        assert process.exitcode == 0

    log = outbox_backend.open("pager").read()
    assert log.damaged == ()
    # every turn was counted from an outbox no other process appended to in between: 1, 2, 3... with no repeat
    assert [record.data["turn"] for record in log.records] == list(range(1, writers * count + 1))
    assert {record.id for record in log.records} == {f"{w}-{n}" for w in range(writers) for n in range(count)}
    for writer in range(writers):
        assert [r.id for r in log.records if r.data["writer"] == writer] == [f"{writer}-{n}" for n in range(count)]


def _sql(outbox_backend: OutboxBackend) -> str:
    if outbox_backend.outbox_url is None:
        pytest.skip("a database outbox only")
    return outbox_backend.outbox_url


def test_the_table_holds_one_row_per_record_in_seq_order_per_route(outbox_backend: OutboxBackend) -> None:
    url = _sql(outbox_backend)
    pager, research = SqlOutbox(url, "pager"), SqlOutbox(url, "research")
    first = pager.record_queued({"k": 1}, key="k:a", action="trigger", at="2024-03-01T09:00:00+00:00")
    research.record_queued({"k": 2}, key="m:1", action=None)
    pager.record_delivered(first, key="k:a", endpoint="pagerduty", attempt=1)
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(
                f"SELECT route, seq, event, alert_id, alert_key, at, line FROM {OUTBOX_TABLE} ORDER BY route, seq"
            )).all()
            version = conn.execute(sqlalchemy.text("SELECT max(version) FROM ml_platform_outbox_schema")).scalar()
    finally:
        engine.dispose()
    assert version == OUTBOX_SCHEMA_VERSION == 1
    assert [(r.route, r.seq, r.event, r.alert_key) for r in rows] == [
        ("pager", 1, "queued", "k:a"), ("pager", 2, "delivered", "k:a"), ("research", 1, "queued", "m:1")]
    assert rows[0].alert_id == first and rows[0].at == "2024-03-01T09:00:00+00:00"
    assert [json.loads(r.line) for r in rows[:2]] == [dict(record.data) for record in pager.read().records]
    assert [record.line for record in pager.read().records] == [1, 2]
    assert pager.read().records[0].alert == {"k": 1}
    assert len(research.read().records) == 1 and SqlOutbox(url, "other").read().records == ()


def test_a_damaged_row_is_reported_like_a_damaged_line(outbox_backend: OutboxBackend,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    url = _sql(outbox_backend)
    outbox = SqlOutbox(url, "pager")
    first = outbox.record_queued({"k": 1}, key="k:a", action="trigger")
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(
                f"INSERT INTO {OUTBOX_TABLE} (route, seq, at, event, alert_id, alert_key, line) "
                "VALUES ('pager', 2, 'x', 'queued', 'x', 'k', '{\"event\": \"queu')"))
    finally:
        engine.dispose()
    second = outbox.record_queued({"k": 2}, key="k:b", action="trigger")
    with caplog.at_level(logging.WARNING, logger="ml_platform.monitoring.outbox"):
        log = outbox.read()
    assert [(r.id, r.line) for r in log.records] == [(first, 1), (second, 3)]
    assert [(d.line, d.last) for d in log.damaged] == [(2, False)] and log.torn is None
    assert f"outbox {outbox.location}: line 2 is damaged (not JSON" in caplog.text


def test_outbox_urls_are_checked_and_never_shown_with_their_password(tmp_path: Path) -> None:
    parsed = check_outbox_url(f"postgresql+psycopg://desk:{SECRET}@db.internal:5432/alerts")
    assert parsed.get_backend_name() == "postgresql"
    outbox = SqlOutbox(f"postgresql+psycopg://desk:{SECRET}@db.internal:5432/alerts", "pager")
    assert SECRET not in repr(outbox) and SECRET not in outbox.location and "***" in outbox.location
    refusals = {
        f"://desk:{SECRET}@nowhere": "not a SQLAlchemy URL",
        f"mysql://desk:{SECRET}@db/alerts": "kept in PostgreSQL",
        "sqlite://": "in-memory SQLite outbox would lose every alert",
        "": "is empty",
    }
    for url, why in refusals.items():
        with pytest.raises(ConfigurationError, match=why) as caught:
            check_outbox_url(url, "PagerResource.outbox_url")
        assert SECRET not in str(caught.value) and "PagerResource.outbox_url" in str(caught.value)
    with pytest.raises(ConfigurationError, match="not both"):
        open_outbox("pager", outbox_dir=tmp_path, outbox_url=f"sqlite:///{tmp_path / 'o.db'}")
    with pytest.raises(ConfigurationError, match="give outbox_dir"):
        open_outbox("pager")


def test_an_unreachable_database_is_named_without_its_password() -> None:
    with socket_free_port() as port:
        outbox = SqlOutbox(f"postgresql+psycopg://desk:{SECRET}@127.0.0.1:{port}/alerts", "pager")
        for action in (outbox.read, lambda: outbox.record_queued({}, key="k", action=None)):
            with pytest.raises(MonitoringError, match="cannot (read|append to) the outbox postgresql") as caught:
                action()
            assert SECRET not in str(caught.value) and "127.0.0.1" in str(caught.value)
            assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_table_of_that_name_not_made_by_ml_platform_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'foreign.db'}"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE TABLE {OUTBOX_TABLE} (x INTEGER)"))
    engine.dispose()
    with pytest.raises(MonitoringError, match="was not created by ml_platform"):
        SqlOutbox(url, "pager").read()


def test_the_same_appends_read_back_as_the_same_log_as_the_file_outbox(outbox_backend: OutboxBackend,
                                                                       tmp_path: Path) -> None:
    url = _sql(outbox_backend)
    outboxes = [Outbox(tmp_path / "reference" / "pager.jsonl"), SqlOutbox(url, "pager")]
    steps = [("queued", "a", "k:a", "trigger", "2024-03-01T09:00:00.000000+00:00"),
             ("queued", "b", "k:b", "trigger", "2024-03-01T09:01:00.000000+00:00"),
             ("failed", "b", "k:b", None, "2024-03-01T09:02:00.000000+00:00"),
             ("delivered", "a", "k:a", None, "2024-03-01T09:03:00.000000+00:00"),
             ("queued", "c", "k:a", "resolve", "2024-03-01T09:04:00.000000+00:00"),
             ("undelivered", "z", "k:z", None, "2024-03-01T09:05:00.000000+00:00")]
    for outbox in outboxes:
        for event, ident, key, action, at in steps:
            outbox.append(event, alert_id=ident, key=key, at=at, action=action, alert={"key": key, "é": 1.5})
    file_log, sql_log = (outbox.read() for outbox in outboxes)
    assert sql_log == file_log and len(sql_log.records) == len(steps)
    assert [r.id for r in sql_log.pending()] == [r.id for r in file_log.pending()] == ["b", "c"]
    assert sql_log.open_incidents() == file_log.open_incidents() and list(sql_log.open_incidents()) == ["k:b"]
    assert sql_log.attempts("b") == file_log.attempts("b") == 1
    assert sql_log.last_sent("k:a") == file_log.last_sent("k:a")
