"""The alert outbox: line format, queries, concurrent appends from several processes, torn last lines.

The behaviour tests take ``outbox_backend`` (conftest.py) and run on every backend: the JSON-lines file, a
SQLite table and a PostgreSQL table; the tests of the file format (bytes, torn lines) use the file alone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from ml_platform.errors import MonitoringError
from ml_platform.monitoring.outbox import (
    OUTBOX_FORMAT_VERSION,
    Outbox,
    OutboxEvent,
    default_outbox_dir,
)
from ml_platform_tests.monitoring.conftest import OutboxBackend

T0 = "2024-03-01T09:00:00.000000+00:00"
T1 = "2024-03-01T09:05:00.000000+00:00"
T2 = "2024-03-01T09:10:00.000000+00:00"


def _alert(key: str, action: str | None = "trigger") -> dict:
    return {"type": "InfraIncident", "key": key, "action": action, "summary": f"{key} is late"}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_event_is_one_json_line_with_the_documented_fields(tmp_path: Path) -> None:
    outbox = Outbox(default_outbox_dir(tmp_path) / "pager.jsonl")
    first = outbox.record_queued(_alert("freshness:a"), key="freshness:a", action="trigger", at=T0)
    outbox.record_failed(first, key="freshness:a", endpoint="pagerduty", attempt=1, error="HTTP 500", status=500)
    outbox.record_delivered(first, key="freshness:a", endpoint="pagerduty", attempt=2,
                            answer={"status": 202, "dedup_key": "freshness:a"})
    outbox.record_suppressed(_alert("freshness:a"), key="freshness:a", action="trigger", reason="cooldown",
                             duplicate_of=first)
    outbox.record_skipped(_alert("schema:b", "resolve"), key="schema:b", action="resolve", reason="not open")

    assert outbox.path == tmp_path / "monitoring" / "outbox" / "pager.jsonl"
    lines = _lines(outbox.path)
    assert [line["event"] for line in lines] == ["queued", "failed", "delivered", "suppressed", "skipped"]
    common = {"v", "event", "id", "at", "key"}
    assert all(common <= set(line) and line["v"] == OUTBOX_FORMAT_VERSION for line in lines)
    assert set(lines[0]) == common | {"action", "alert"}
    assert set(lines[1]) == common | {"endpoint", "attempt", "error", "status", "retryable"}
    assert set(lines[2]) == common | {"endpoint", "attempt", "answer"}
    assert set(lines[3]) == common | {"action", "alert", "reason", "duplicate_of"}
    assert set(lines[4]) == common | {"action", "alert", "reason"}
    assert lines[0]["at"] == T0 and lines[0]["alert"] == _alert("freshness:a")
    assert lines[2]["answer"] == {"status": 202, "dedup_key": "freshness:a"} and lines[3]["duplicate_of"] == first
    assert len({lines[0]["id"], lines[3]["id"], lines[4]["id"]}) == 3 and len(first) == 32


def test_queries_pending_open_incidents_last_sent_and_attempts(outbox_backend: OutboxBackend) -> None:
    outbox = outbox_backend.open("pager")
    assert outbox.read().records == () and outbox.pending() == [] and outbox.last_sent("x") is None

    a = outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T0)
    b = outbox.record_queued(_alert("k:b"), key="k:b", action="trigger", at=T1)
    outbox.record_failed(b, key="k:b", endpoint="pagerduty", attempt=1, error="timeout")
    outbox.record_delivered(a, key="k:a", endpoint="pagerduty", attempt=1)
    c = outbox.record_queued(_alert("k:a", "resolve"), key="k:a", action="resolve", at=T2)

    log = outbox.read()
    assert [r.id for r in log.pending()] == [b, c]  # oldest first
    assert set(log.open_incidents()) == {"k:b"}  # k:a was resolved (its resolve is queued)
    assert log.open_incidents()["k:b"].id == b
    assert log.last_sent("k:a").isoformat(timespec="microseconds") == T2
    assert log.last_sent("k:a", action="trigger").isoformat(timespec="microseconds") == T0
    assert log.attempts(a) == 1 and log.attempts(b) == 1 and log.attempts(c) == 0
    assert [r.event for r in log.history("k:a")] == [OutboxEvent.QUEUED, OutboxEvent.DELIVERED, OutboxEvent.QUEUED]
    assert [r.event for r in log.find(b)] == [OutboxEvent.QUEUED, OutboxEvent.FAILED]
    assert outbox.history() == list(log.records) and outbox.open_incidents().keys() == {"k:b"}


def test_a_record_that_cannot_be_serialized_writes_nothing(outbox_backend: OutboxBackend) -> None:
    outbox = outbox_backend.open("pager")
    outbox.record_queued(_alert("k:a"), key="k:a", action="trigger")
    before = outbox.read()
    with pytest.raises(MonitoringError, match="not JSON-serializable"):
        outbox.record_queued({"bad": object()}, key="k:b", action="trigger")
    with pytest.raises(MonitoringError, match="not JSON-serializable"):
        outbox.record_failed("x", key="k:b", endpoint="pagerduty", attempt=1, error="e", status=float("nan"))
    assert outbox.read() == before and len(before.records) == 1


def test_a_torn_last_line_is_reported_and_every_other_line_read(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path / "pager.jsonl")
    ids = [outbox.record_queued(_alert(f"k:{n}"), key=f"k:{n}", action="trigger") for n in range(3)]
    outbox.record_delivered(ids[0], key="k:0", endpoint="outbox", attempt=1)
    whole = _lines(outbox.path)[-1]
    with outbox.path.open("ab") as stream:  # a crash in the middle of an append: half a line, no newline
        stream.write(json.dumps(whole).encode()[:40])

    with caplog.at_level(logging.WARNING, logger="ml_platform.monitoring.outbox"):
        log = outbox.read()
    assert len(log.records) == 4 and [r.id for r in log.pending()] == ids[1:]
    assert log.torn is not None and log.torn.last and log.torn.line == 5 and "not JSON" in log.torn.reason
    assert "line 5 is damaged" in caplog.text and "interrupted" in caplog.text

    later = outbox.record_queued(_alert("k:9"), key="k:9", action="trigger")  # the next append ends the torn line
    log = outbox.read()
    assert [r.id for r in log.pending()] == [*ids[1:], later]
    assert log.torn is None and [(d.line, d.last) for d in log.damaged] == [(5, False)]
    assert outbox.path.read_bytes().endswith(b"\n")


def test_a_complete_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "pager.jsonl")
    first = outbox.record_queued(_alert("k:a"), key="k:a", action="trigger")
    outbox.path.write_bytes(outbox.path.read_bytes().rstrip(b"\n"))  # the crash hit between the JSON and "\n"
    second = outbox.record_queued(_alert("k:b"), key="k:b", action="trigger")
    log = outbox.read()
    assert [r.id for r in log.records] == [first, second] and log.damaged == ()


def _append_many(path: str, writer: int, count: int, start: multiprocessing.synchronize.Event) -> None:
    outbox = Outbox(path)
    start.wait(30)
    for n in range(count):
        outbox.record_queued({"writer": writer, "n": n, "padding": "x" * (97 * (n % 7))},
                             key=f"w{writer}:{n}", action="trigger")


def test_concurrent_appends_from_several_processes_lose_no_line(tmp_path: Path) -> None:
    path = tmp_path / "research.jsonl"
    writers, count = 4, 60
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [context.Process(target=_append_many, args=(str(path), writer, count, start))
                 for writer in range(writers)]
    for process in processes:
        process.start()
    start.set()
    _append_many(str(path), writers, count, start)  # this process writes too
    for process in processes:
        process.join(120)
        assert process.exitcode == 0

    log = Outbox(path).read()
    assert log.damaged == ()
    seen = [(r.alert["writer"], r.alert["n"]) for r in log.records]
    assert len(seen) == (writers + 1) * count
    assert set(seen) == {(w, n) for w in range(writers + 1) for n in range(count)}
    for writer in range(writers + 1):  # each writer's lines stay in its own order
        assert [n for w, n in seen if w == writer] == list(range(count))


def test_the_delivery_lock_admits_one_holder_at_a_time(outbox_backend: OutboxBackend) -> None:
    outbox = outbox_backend.open("pager")
    order: list[str] = []
    held = threading.Event()

    def second() -> None:
        held.wait(5)
        with outbox_backend.open("pager").exclusive():
            order.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    with outbox.exclusive():
        held.set()
        time.sleep(0.3)
        order.append("first")
    thread.join(5)
    assert order == ["first", "second"]
    if isinstance(outbox, Outbox):
        assert outbox.lock_path.name == "pager.jsonl.lock"


def test_every_event_records_exactly_what_it_was_given(outbox_backend: OutboxBackend, tmp_path: Path) -> None:
    outbox = outbox_backend.open("pager")
    if isinstance(outbox, Outbox):
        assert repr(outbox) == f"Outbox({str(tmp_path / 'outbox' / 'pager.jsonl')!r})"
    first = outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T0)
    outbox.record_failed(first, key="k:a", endpoint="pagerduty", attempt=1, error="HTTP 400", status=400,
                         retryable=False, at=T1)
    outbox.record_failed(first, key="k:a", endpoint="pagerduty", attempt=2, error="timeout", at=T1)
    outbox.record_delivered(first, key="k:a", endpoint="slack", attempt=3, answer={"status": 200}, at=T2)
    outbox.record_delivered(first, key="k:a", endpoint="outbox", attempt=4, at=T2)
    dup = outbox.record_suppressed(_alert("k:a"), key="k:a", action="trigger", reason="cooldown 30 min",
                                   duplicate_of=first, at=T2)
    skipped = outbox.record_skipped(_alert("k:b", "resolve"), key="k:b", action="resolve", reason="not open", at=T2)
    common = {"v": 1}
    written = _lines(outbox.path) if isinstance(outbox, Outbox) else [dict(r.data) for r in outbox.read().records]
    assert written == [
        {**common, "event": "queued", "id": first, "at": T0, "key": "k:a", "action": "trigger",
         "alert": _alert("k:a")},
        {**common, "event": "failed", "id": first, "at": T1, "key": "k:a", "endpoint": "pagerduty", "attempt": 1,
         "error": "HTTP 400", "status": 400, "retryable": False},
        {**common, "event": "failed", "id": first, "at": T1, "key": "k:a", "endpoint": "pagerduty", "attempt": 2,
         "error": "timeout", "status": None, "retryable": True},
        {**common, "event": "delivered", "id": first, "at": T2, "key": "k:a", "endpoint": "slack", "attempt": 3,
         "answer": {"status": 200}},
        {**common, "event": "delivered", "id": first, "at": T2, "key": "k:a", "endpoint": "outbox", "attempt": 4,
         "answer": {}},
        {**common, "event": "suppressed", "id": dup, "at": T2, "key": "k:a", "action": "trigger",
         "alert": _alert("k:a"), "reason": "cooldown 30 min", "duplicate_of": first},
        {**common, "event": "skipped", "id": skipped, "at": T2, "key": "k:b", "action": "resolve",
         "alert": _alert("k:b", "resolve"), "reason": "not open"},
    ]
    assert len({first, dup, skipped}) == 3 and all(len(i) == 32 and int(i, 16) >= 0 for i in (first, dup, skipped))
    log = outbox.read()
    assert [r.line for r in log.records] == [1, 2, 3, 4, 5, 6, 7]
    assert log.records[0].action == "trigger" and log.records[0].alert == _alert("k:a")
    assert log.records[1].action is None and log.records[1].alert is None
    assert log.records[0].time.isoformat(timespec="microseconds") == T0
    assert log.attempts(first) == 4 and log.pending() == []


def test_find_filters_by_alert_and_event(outbox_backend: OutboxBackend) -> None:
    outbox = outbox_backend.open("pager")
    a = outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T0)
    b = outbox.record_queued(_alert("k:b"), key="k:b", action="trigger", at=T0)
    outbox.record_failed(a, key="k:a", endpoint="pagerduty", attempt=1, error="timeout", at=T1)
    outbox.record_delivered(a, key="k:a", endpoint="pagerduty", attempt=2, at=T2)
    log = outbox.read()
    assert [r.event for r in log.find(a)] == [OutboxEvent.QUEUED, OutboxEvent.FAILED, OutboxEvent.DELIVERED]
    assert [r.at for r in log.find(a, OutboxEvent.FAILED)] == [T1]
    assert [r.at for r in log.find(a, "delivered")] == [T2]
    assert [r.id for r in log.find(b, "queued")] == [b] and log.find(b, "delivered") == []
    assert log.find("0" * 32) == []
    assert [r.key for r in outbox.history("k:b")] == ["k:b"] and len(outbox.history()) == 4


def test_incidents_open_at_their_first_trigger_and_close_at_a_later_resolve(outbox_backend: OutboxBackend) -> None:
    outbox = outbox_backend.open("pager")
    outbox.record_queued(_alert("k:x", "resolve"), key="k:x", action="resolve", at=T0)  # never opened
    first = outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T0)
    outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T1)  # a re-trigger keeps the opener
    outbox.record_suppressed(_alert("k:b"), key="k:b", action="trigger", reason="cooldown", duplicate_of=None)
    outbox.record_queued({"type": "AlphaDriftFinding"}, key="m:1:drift", action=None, at=T1)
    opened = outbox.open_incidents()
    assert list(opened) == ["k:a"] and opened["k:a"].id == first
    outbox.record_queued(_alert("k:a", "resolve"), key="k:a", action="resolve", at=T2)
    assert outbox.open_incidents() == {}
    again = outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T2)
    assert outbox.open_incidents()["k:a"].id == again


def test_last_sent_is_the_newest_queued_alert_of_the_key_and_action(outbox_backend: OutboxBackend) -> None:
    outbox = outbox_backend.open("pager")
    outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T0)
    outbox.record_queued(_alert("k:a", "resolve"), key="k:a", action="resolve", at=T1)
    outbox.record_queued(_alert("k:b"), key="k:b", action="trigger", at=T2)
    outbox.record_suppressed(_alert("k:a"), key="k:a", action="trigger", reason="cooldown", duplicate_of=None,
                             at=T2)
    assert outbox.last_sent("k:a").isoformat(timespec="microseconds") == T1
    assert outbox.last_sent("k:a", "trigger").isoformat(timespec="microseconds") == T0
    assert outbox.last_sent("k:a", "resolve").isoformat(timespec="microseconds") == T1
    assert outbox.last_sent("k:b", "resolve") is None and outbox.last_sent("k:c") is None
    naive = outbox_backend.open("naive")
    naive.record_queued(_alert("k:a"), key="k:a", action="trigger", at="2024-03-01T09:00:00")
    assert naive.last_sent("k:a").tzinfo is not None and naive.last_sent("k:a").hour == 9


def test_damaged_lines_are_named_with_their_reason_and_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path / "pager.jsonl")
    first = outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T0)
    good = outbox.path.read_bytes()
    bad_lines = [b"[1, 2]", b'{"event": "queued", "id": 5, "at": "' + T0.encode() + b'", "key": "k"}',
                 b'{"event": "queued", "at": "' + T0.encode() + b'", "key": "k"}',
                 b'{"event": "lost", "id": "x", "at": "' + T0.encode() + b'", "key": "k"}',
                 b'{"event": "queued", "id": "x", "at": "noon", "key": "k"}', b"\xff\xfe" + b"z" * 300]
    outbox.path.write_bytes(good + b"\n" + b"\n".join(bad_lines) + b"\n" + good)
    with caplog.at_level(logging.WARNING, logger="ml_platform.monitoring.outbox"):
        log = outbox.read()
    assert [r.id for r in log.records] == [first, first] and [r.line for r in log.records] == [1, 9]
    reasons = [d.reason for d in log.damaged]
    assert reasons[0] == "not a JSON object"
    assert reasons[1] == "not an outbox record (TypeError: id, at and key must be texts)"
    assert reasons[2] == "not an outbox record (KeyError: 'id')"
    assert reasons[3].startswith("not an outbox record (ValueError: 'lost' is not a valid OutboxEvent")
    assert reasons[4].startswith("not an outbox record (ValueError: Invalid isoformat string: 'noon'")
    assert reasons[5].startswith("not JSON (")
    assert [d.line for d in log.damaged] == [3, 4, 5, 6, 7, 8] and not any(d.last for d in log.damaged)
    assert log.damaged[0].text == "[1, 2]" and log.damaged[5].text == "\ufffd\ufffd" + "z" * 198
    assert log.torn is None
    assert (f"outbox {outbox.path}: line 3 is damaged (not a JSON object); it is skipped and every other line "
            "read\n") in caplog.text + "\n"


def test_a_damaged_last_line_is_the_interrupted_append_even_with_its_newline(tmp_path: Path,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path / "pager.jsonl")
    outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T0)
    with outbox.path.open("ab") as stream:
        stream.write(b'{"event": "queu\n')
    with caplog.at_level(logging.WARNING, logger="ml_platform.monitoring.outbox"):
        log = outbox.read()
    assert log.torn is not None and log.torn.line == 2 and log.torn.last
    assert (f"outbox {outbox.path}: line 2 is damaged ({log.torn.reason}): the last append was interrupted (crash); "
            "it is skipped and every other line read") in caplog.text


def test_blank_lines_are_skipped_and_every_line_after_them_read(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "pager.jsonl")
    first = outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at=T0)
    with outbox.path.open("ab") as stream:
        stream.write(b"\n   \n")
    second = outbox.record_queued(_alert("k:b"), key="k:b", action="trigger", at=T1)
    log = outbox.read()
    assert [(r.id, r.line) for r in log.records] == [(first, 1), (second, 4)] and log.damaged == ()


def test_lines_are_compact_ascii_json_in_a_file_only_its_owner_writes(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        outbox = Outbox(tmp_path / "new" / "pager.jsonl")
        ident = outbox.record_queued({"summary": "prix évalué"}, key="k:é", action="trigger", at=T0)
    finally:
        os.umask(previous)
    raw = outbox.path.read_bytes()
    assert raw == (b'{"v":1,"event":"queued","id":"' + ident.encode() + b'","at":"' + T0.encode()
                   + b'","key":"k:\\u00e9","action":"trigger","alert":{"summary":"prix \\u00e9valu\\u00e9"}}\n')
    assert outbox.read().records[0].key == "k:é"
    assert stat.S_IMODE(outbox.path.stat().st_mode) == 0o644


def test_an_outbox_that_cannot_be_opened_or_written_says_which_and_why(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(MonitoringError, match=f"cannot open the outbox {blocker / 'pager.jsonl'} for appending: "
                                              ".*; check the outbox_dir setting and its permissions"):
        Outbox(blocker / "pager.jsonl").record_queued(_alert("k:a"), key="k:a", action="trigger")
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full on this machine")
    with pytest.raises(MonitoringError, match="cannot append to the outbox /dev/full: .*No space left on device"):
        Outbox(full).record_queued(_alert("k:a"), key="k:a", action="trigger")


def test_a_time_with_an_offset_is_read_as_that_instant(outbox_backend: OutboxBackend) -> None:
    outbox = outbox_backend.open("pager")
    outbox.record_queued(_alert("k:a"), key="k:a", action="trigger", at="2024-03-01T10:00:00+01:00")
    sent = outbox.last_sent("k:a")
    assert sent is not None and sent.isoformat() == "2024-03-01T10:00:00+01:00"
    assert sent.astimezone(dt.UTC).hour == 9


def test_an_undelivered_notice_is_read_back_and_is_neither_pending_open_nor_an_attempt(
        outbox_backend: OutboxBackend) -> None:
    outbox = outbox_backend.open("research")
    outbox.append(OutboxEvent.UNDELIVERED, alert_id="a" * 32, key="freshness:x", at=T1, route="pager",
                  action="trigger", alert=_alert("freshness:x"), attempts=5, error="ConnectError")
    [notice] = outbox.read().records
    assert notice.event is OutboxEvent.UNDELIVERED and str(notice.event) == "undelivered"
    assert (notice.id, notice.key, notice.data["route"], notice.data["attempts"]) == ("a" * 32, "freshness:x", "pager", 5)
    assert outbox.pending() == [] and outbox.open_incidents() == {} and outbox.read().attempts("a" * 32) == 0
    assert outbox.last_sent("freshness:x") is None
