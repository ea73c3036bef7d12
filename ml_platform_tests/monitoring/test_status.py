"""What the outboxes say: ``ml-platform monitoring status`` and the infra sensor's honest skip reason.

Real outbox files written by real routes against a dead loopback endpoint (connection refused).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ml_platform.cli import main
from ml_platform.monitoring.outbox import Outbox, OutboxLog
from ml_platform.monitoring.routes import PagerRoute
from ml_platform.monitoring.status import paging_summary, route_status
from ml_platform_tests.monitoring.conftest import OutboxBackend
from ml_platform_tests.monitoring.test_routes import (
    ENQUEUE,
    ROUTING_KEY,
    Clock,
    StubFactory,
    closed_port_url,
    incident,
    pager,
)


def _dead_pager(tmp_path: Path, clock: Clock):  # type: ignore[no-untyped-def]
    return pager(tmp_path, None, routing_key=ROUTING_KEY, events_url=closed_port_url(ENQUEUE), retries=0, clock=clock)


def test_already_paged_is_said_only_of_delivered_incidents(tmp_path: Path, http_stub: StubFactory) -> None:
    clock = Clock()
    stub = http_stub()
    pager(tmp_path, stub, clock=clock).send(incident("freshness:a"))
    _dead_pager(tmp_path, clock).send(incident("freshness:b"))
    log = Outbox(tmp_path / "outbox" / "pager.jsonl").read()

    honest = paging_summary(log, ["freshness:a", "freshness:b"], 5)

    assert "already paged" not in honest
    assert honest.startswith("5 infra checks: 2 failing, 1 paged (delivered), 1 NOT delivered yet: freshness:b")
    assert "ConnectError" in honest and "ml-platform monitoring status" in honest
    assert paging_summary(log, ["freshness:a"], 5) == "5 infra checks: 1 failing, all already paged (delivered)"


def test_status_lists_pending_and_overdue_alerts_and_the_notices_of_the_other_route(tmp_path: Path) -> None:
    clock = Clock()
    route = _dead_pager(tmp_path, clock)
    alert_id = route.send(incident()).alert_id
    clock.advance(1000)
    route.flush()  # past the 900 s bound: reported on the research outbox

    pager_log, research_log = route.outbox.read(), route.other_outbox.read()
    status = route_status("pager", pager_log, research_log, clock(), 900)
    [pending] = status.pending
    assert (pending.id, pending.attempts, pending.age_seconds, pending.overdue) == (alert_id, 2, 1000.0, True)
    assert "ConnectError" in (pending.last_error or "") and status.overdue == (pending,)
    research = route_status("research", research_log, pager_log, clock(), 3600)
    assert research.pending == () and [n.id for n in research.notices] == [alert_id]
    assert not route_status("pager", pager_log, OutboxLog(records=()), clock(), 1001).pending[0].overdue

    result = CliRunner().invoke(main, ["monitoring", "status", "--outbox-dir", str(tmp_path / "outbox")])
    assert result.exit_code == 1, result.output  # an alert is overdue
    assert "pager: 0 delivered, 1 pending, 1 overdue" in result.output
    assert f"OVERDUE freshness:features/returns (trigger, id {alert_id})" in result.output
    assert f"reported here: pager alert freshness:features/returns (id {alert_id}) undelivered" in result.output
    as_json = CliRunner().invoke(main, ["monitoring", "status", "--outbox-dir", str(tmp_path / "outbox"), "--json"])
    assert json.loads(as_json.output)[0]["pending"][0]["id"] == alert_id


def test_status_exits_0_when_nothing_is_overdue(tmp_path: Path, http_stub: StubFactory) -> None:
    pager(tmp_path, http_stub()).send(incident())
    result = CliRunner().invoke(main, ["monitoring", "status", "--outbox-dir", str(tmp_path / "outbox")])
    assert result.exit_code == 0 and "pager: 1 delivered, 0 pending, 0 overdue" in result.output


@pytest.mark.parametrize("name", ["missing", "a_file"])
def test_status_refuses_an_outbox_folder_that_is_not_one(tmp_path: Path, name: str) -> None:
    """A mistyped --outbox-dir would read as "nothing pending": exit 2 naming it, one line, nothing created."""
    (tmp_path / "a_file").write_text("not a folder")
    result = CliRunner().invoke(main, ["monitoring", "status", "--outbox-dir", str(tmp_path / name)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"no outbox folder at {tmp_path / name}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_status_reads_the_outboxes_from_a_database(outbox_backend: OutboxBackend, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if outbox_backend.outbox_url is None:
        pytest.skip("a database outbox only")
    clock = Clock()
    route = PagerRoute(**outbox_backend.route_args, routing_key=ROUTING_KEY, events_url=closed_port_url(ENQUEUE),
                       retries=0, redelivery_backoff_seconds=0, clock=clock)
    alert_id = route.send(incident()).alert_id
    clock.advance(1000)
    route.flush()  # past the 900 s bound: reported on the research outbox, in the same database

    result = CliRunner().invoke(main, ["monitoring", "status", "--outbox-url", outbox_backend.outbox_url])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("outbox database: ")
    assert "pager: 0 delivered, 1 pending, 1 overdue" in result.output
    assert f"reported here: pager alert freshness:features/returns (id {alert_id}) undelivered" in result.output
    monkeypatch.setenv("ML_PLATFORM_OUTBOX_URL", outbox_backend.outbox_url)  # the deployment's setting
    monkeypatch.setenv("ML_PLATFORM_HOME", str(tmp_path / "home"))
    from_env = CliRunner().invoke(main, ["monitoring", "status", "--json"])
    assert from_env.exit_code == 1 and json.loads(from_env.output)[0]["pending"][0]["id"] == alert_id
    assert not (tmp_path / "home").exists()  # nothing read from, or written to, the home folder


def test_status_refuses_a_folder_and_a_database_together_and_a_url_that_is_not_one(tmp_path: Path) -> None:
    both = CliRunner().invoke(main, ["monitoring", "status", "--outbox-dir", str(tmp_path),
                                     "--outbox-url", f"sqlite:///{tmp_path / 'o.db'}"])
    assert both.exit_code == 2 and "not both" in both.stderr
    secret = "pw-never-shown-9931"
    bad = CliRunner().invoke(main, ["monitoring", "status", "--outbox-url", f"mysql://u:{secret}@db/x"])
    assert bad.exit_code == 2 and "--outbox-url" in bad.stderr and secret not in bad.stderr + bad.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []
