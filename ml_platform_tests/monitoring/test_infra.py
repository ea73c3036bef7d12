"""The pure infra checks: which partition is due, freshness, schema, latency, scheduled runs."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from ml_platform.errors import ConfigurationError
from ml_platform.features.calendar import Calendar
from ml_platform.monitoring import infra
from ml_platform.monitoring.alerts import IncidentAction, InfraCheckKind
from ml_platform.monitoring.observe import recent_partitions

NY = infra.MarketSession(dt.time(16, 0), "America/New_York")
SLO = infra.InfraSLO(freshness_minutes=60, max_run_seconds=600)
# Business days with a holiday: Monday 2024-07-01 .. Friday 2024-07-12, 2024-07-04 (Thursday) excluded.
BUSINESS = dg.TimeWindowPartitionsDefinition(start="2024-07-01", fmt="%Y-%m-%d", cron_schedule="0 0 * * 1-5",
                                             end_offset=1, exclusions=[dt.datetime(2024, 7, 4)])


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def due(now: dt.datetime) -> infra.ExpectedPartition | None:
    return infra.expected_partition(recent_partitions(Calendar(BUSINESS), now), NY, SLO, now)


def test_a_day_is_due_at_the_close_plus_the_slo_in_the_market_time_zone() -> None:
    # 2024-07-02 16:00 New York (EDT, UTC-4) = 20:00 UTC; + 60 min = 21:00 UTC
    assert due(utc(2024, 7, 2, 20, 59)).key == "2024-07-01"
    expected = due(utc(2024, 7, 2, 21, 0))
    assert expected.key == "2024-07-02"
    assert expected.due_at == utc(2024, 7, 2, 21, 0)


@pytest.mark.parametrize("now", [utc(2024, 7, 6, 12), utc(2024, 7, 7, 23), utc(2024, 7, 8, 20, 30)],
                         ids=["saturday", "sunday", "monday-before-deadline"])
def test_on_a_weekend_the_friday_partition_stays_the_expected_one(now: dt.datetime) -> None:
    assert due(now).key == "2024-07-05"


def test_a_holiday_expects_nothing_new() -> None:
    # Thursday 2024-07-04 is excluded: after its close the expected partition is still Wednesday's
    assert due(utc(2024, 7, 4, 23)).key == "2024-07-03"
    assert due(utc(2024, 7, 5, 21, 0)).key == "2024-07-05"


def test_freshness_passes_on_a_weekend_when_friday_is_stored_and_pages_when_it_is_missing() -> None:
    now = utc(2024, 7, 6, 12)
    assert infra.check_freshness("f/a", due(now), ["2024-07-05"], now).passed
    missing = infra.check_freshness("f/a", due(now), ["2024-07-03"], now)
    assert not missing.passed
    assert missing.partition == "2024-07-05"
    assert missing.details["minutes_late"] == int((now - utc(2024, 7, 5, 21)).total_seconds() // 60)
    assert "2024-07-05 is missing" in missing.summary


def test_an_old_backfilled_day_does_not_make_a_missing_expected_day_fresh() -> None:
    now = utc(2024, 7, 10, 22)
    outcome = infra.check_freshness("f/a", due(now), ["2024-07-01", "2024-07-02", "2024-07-09"], now)
    assert not outcome.passed and outcome.partition == "2024-07-10"


def test_nothing_due_is_a_skip_not_a_page() -> None:
    outcome = infra.check_freshness("f/a", None, [], utc(2024, 7, 1, 1))
    assert outcome.passed and outcome.skipped == "no partition is due yet"


def test_schema_check() -> None:
    ok = infra.check_schema("m/in", "2024-07-02", [], model="m", version="3")
    assert ok.passed
    bad = infra.check_schema("m/in", "2024-07-02", ["column x: type f64 -> i64"], model="m", version="3")
    assert not bad.passed and "column x" in bad.summary and "v3" in bad.summary
    assert infra.check_schema("m/in", None, [], model="m", version="3").skipped == "no partition stored yet"
    assert infra.check_schema("m/in", "2024-07-02", ["x"], model=None, version=None).passed


def test_latency_check() -> None:
    expected = due(utc(2024, 7, 2, 22))
    fast = infra.RunFacts("r1", "SUCCESS", "2024-07-02", 1000.0, 1300.0)
    slow = infra.RunFacts("r2", "SUCCESS", "2024-07-02", 1000.0, 1601.0)
    assert infra.check_latency("f/a", expected, fast, SLO).passed
    late = infra.check_latency("f/a", expected, slow, SLO)
    assert not late.passed and "601 s" in late.summary and late.details["run_id"] == "r2"
    assert infra.check_latency("f/a", expected, None, SLO).skipped


def test_scheduled_run_check() -> None:
    now = utc(2024, 7, 2, 22)
    expected = due(now)
    ok = infra.RunFacts("a", "SUCCESS", "2024-07-02", 1.0, 2.0)
    failed = infra.RunFacts("b", "FAILURE", "2024-07-02", 3.0, 4.0)
    running = infra.RunFacts("c", "STARTED", "2024-07-02", 5.0, None)
    assert infra.check_scheduled_run("daily", expected, [ok], SLO, now).passed
    assert not infra.check_scheduled_run("daily", expected, [ok, failed], SLO, now).passed  # the newest run counts
    retried = infra.RunFacts("e", "SUCCESS", "2024-07-02", 7.0, 8.0)  # a re-run after the failure
    assert infra.check_scheduled_run("daily", expected, [retried, failed, ok], SLO, now).passed
    assert not infra.check_scheduled_run("daily", expected, [], SLO, now).passed
    assert not infra.check_scheduled_run("daily", expected, [running], SLO, now).passed  # past the deadline
    graceful = infra.InfraSLO(freshness_minutes=60, schedule_grace_minutes=120)
    assert infra.check_scheduled_run("daily", expected, [running], graceful, now).skipped
    ranged = infra.RunFacts("d", "SUCCESS", "2024-07-01..2024-07-03", 1.0, 2.0)
    assert infra.check_scheduled_run("daily", expected, [ranged], SLO, now).passed


def test_incident_of_a_failure_and_its_resolve_share_the_key() -> None:
    now = utc(2024, 7, 6, 12)
    outcome = infra.check_freshness("team/f_a", due(now), [], now)
    incident = infra.incident_of(outcome, observed_at=now)
    assert incident.key == "freshness:team/f_a" and incident.check == InfraCheckKind.FRESHNESS
    assert incident.route == "pager"
    resolved = incident.resolved("filled")
    assert resolved.key == incident.key and resolved.action == IncidentAction.RESOLVE
    with pytest.raises(ConfigurationError, match="only a failing infra check"):
        infra.incident_of(infra.check_freshness("f", due(now), ["2024-07-05"], now))


@pytest.mark.parametrize("kwargs, match", [
    ({"freshness_minutes": -1}, "freshness_minutes"),
    ({"freshness_minutes": 1.5}, "freshness_minutes"),
    ({"max_run_seconds": 0}, "max_run_seconds"),
    ({"max_run_seconds": True}, "max_run_seconds"),
    ({"schedule_grace_minutes": 10**6}, "schedule_grace_minutes"),
])
def test_slo_out_of_range_is_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        infra.InfraSLO(**kwargs)


def test_session_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="IANA"):
        infra.MarketSession(dt.time(16), "Mars/Olympus")
    with pytest.raises(ConfigurationError, match="naive"):
        infra.MarketSession(dt.time(16, tzinfo=dt.UTC))
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        infra.expected_partition([("2024-07-01", dt.date(2024, 7, 1))], NY, SLO,
                             dt.datetime(2024, 7, 2))
