"""The pure infra checks: which partition is due, freshness, schema, latency, scheduled runs, ledger anchor."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pytest

from ml_platform.champions.chain import ChainProblem, ChainReport
from ml_platform.errors import ConfigurationError
from ml_platform.features.calendar import Calendar
from ml_platform.monitoring import infra
from ml_platform.monitoring.alerts import AlphaDriftFinding, IncidentAction, InfraCheckKind, InfraIncident
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


# -- each outcome whole: what on-call reads (summary, partition, details) and the incident key -----------------

FRIDAY = infra.ExpectedPartition("2024-07-05", dt.date(2024, 7, 5), utc(2024, 7, 5, 21))


def test_the_slo_and_the_session_accept_their_range_ends() -> None:
    edges = infra.InfraSLO(freshness_minutes=0, max_run_seconds=86_400, schedule_grace_minutes=7 * 24 * 60)
    assert edges.to_dict() == {"freshness_minutes": 0, "max_run_seconds": 86_400.0,
                               "schedule_grace_minutes": 10_080}
    assert isinstance(edges.to_dict()["max_run_seconds"], float)
    assert infra.InfraSLO(freshness_minutes=10_080, max_run_seconds=0.5).max_run_seconds == 0.5
    for bad in ({"freshness_minutes": 10_081}, {"schedule_grace_minutes": -1}, {"max_run_seconds": 86_400.5},
                {"max_run_seconds": -1.0}, {"max_run_seconds": "60"}, {"schedule_grace_minutes": True}):
        with pytest.raises(ConfigurationError, match=r"InfraSLO\.\w+ must be "):
            infra.InfraSLO(**bad)
    with pytest.raises(ConfigurationError, match="an integer number of minutes from 0 to 10080"):
        infra.InfraSLO(freshness_minutes=-1)
    with pytest.raises(ConfigurationError, match="IANA time zone such as 'America/New_York', got None"):
        infra.MarketSession(dt.time(16), None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="naive datetime.time"):
        infra.MarketSession("16:00")  # type: ignore[arg-type]
    tokyo = infra.MarketSession(dt.time(15, 0), "Asia/Tokyo")
    assert tokyo.close_of(dt.date(2024, 7, 5)) == utc(2024, 7, 5, 6)


def test_the_newest_due_partition_is_expected_from_the_exact_deadline_on() -> None:
    calendar = [("2024-07-03", dt.date(2024, 7, 3)), ("2024-07-05", dt.date(2024, 7, 5))]
    assert infra.expected_partition(calendar, NY, SLO, utc(2024, 7, 5, 21)) == FRIDAY
    before = infra.expected_partition(calendar, NY, SLO, utc(2024, 7, 5, 20, 59, 59))
    assert before == infra.ExpectedPartition("2024-07-03", dt.date(2024, 7, 3), utc(2024, 7, 3, 21))
    assert infra.expected_partition(calendar, NY, SLO, utc(2024, 7, 3, 20)) is None
    assert infra.expected_partition([], NY, SLO, utc(2024, 7, 3, 20)) is None
    paris = dt.timezone(dt.timedelta(hours=2))
    assert infra.expected_partition(calendar, NY, SLO, dt.datetime(2024, 7, 5, 23, tzinfo=paris)) == FRIDAY


def test_a_partition_of_one_session_completes_on_its_first_day_a_longer_one_on_its_last() -> None:
    week = infra.DataWindow(dt.date(2024, 7, 1), dt.date(2024, 7, 5))
    assert infra.session_day(week, 1) == dt.date(2024, 7, 1)
    assert infra.session_day(week, 5) == dt.date(2024, 7, 5) and infra.session_day(week, 2) == dt.date(2024, 7, 5)


def test_freshness_outcomes_whole() -> None:
    now = utc(2024, 7, 6, 12, 0, 59)
    details = {"expected_partition": "2024-07-05", "due_at": "2024-07-05T21:00:00+00:00"}
    assert infra.check_freshness("f/a", FRIDAY, iter(["2024-07-04", "2024-07-05"]), now) == infra.InfraOutcome(
        infra.InfraCheckKind.FRESHNESS, "f/a", True, "f/a partition 2024-07-05 is present", "2024-07-05", details)
    missing = infra.check_freshness("f/a", FRIDAY, ["2024-07-04"], now)
    assert missing == infra.InfraOutcome(
        infra.InfraCheckKind.FRESHNESS, "f/a", False,
        "f/a partition 2024-07-05 is missing, 900 min past its deadline 2024-07-05 21:00 UTC", "2024-07-05",
        {**details, "minutes_late": 900})
    assert missing.key == "freshness:f/a" and missing.skipped is None
    assert infra.check_freshness("f/a", None, [], now) == infra.InfraOutcome(
        infra.InfraCheckKind.FRESHNESS, "f/a", True, "not judged: no partition is due yet",
        skipped="no partition is due yet")
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        infra.check_freshness("f/a", FRIDAY, [], dt.datetime(2024, 7, 6))


def test_schema_outcomes_whole() -> None:
    ok = infra.check_schema("m/in", "2024-07-02", (), model="m", version="3")
    assert ok == infra.InfraOutcome(infra.InfraCheckKind.SCHEMA, "m/in", True, "m/in partition 2024-07-02 matches the "
                                "contract of m v3", "2024-07-02",
                                {"model": "m", "version": "3", "partition": "2024-07-02", "differences": []})
    bad = infra.check_schema("m/in", "2024-07-02", ("column x: f64 -> i64", "column y missing"), model="m", version="3")
    assert bad == infra.InfraOutcome(
        infra.InfraCheckKind.SCHEMA, "m/in", False,
        "m/in partition 2024-07-02 does not match the contract of champion m v3 (2 difference(s): column x: f64 -> "
        "i64); its live signals will be refused", "2024-07-02",
        {"model": "m", "version": "3", "partition": "2024-07-02",
         "differences": ["column x: f64 -> i64", "column y missing"]})
    no_champion = infra.InfraOutcome(infra.InfraCheckKind.SCHEMA, "m/in", True,
                                 "not judged: no champion of record to compare with",
                                 skipped="no champion of record to compare with")
    assert infra.check_schema("m/in", "2024-07-02", ["x"], model=None, version="3") == no_champion
    assert infra.check_schema("m/in", "2024-07-02", ["x"], model="m", version=None) == no_champion
    assert infra.check_schema("m/in", None, ["x"], model="m", version="3") == infra.InfraOutcome(
        infra.InfraCheckKind.SCHEMA, "m/in", True, "not judged: no partition stored yet", skipped="no partition stored yet")


def test_latency_outcomes_whole_and_the_slo_met_exactly() -> None:
    run = infra.RunFacts("r1", "SUCCESS", "2024-07-05", 1000.0, 1600.0)
    assert run.seconds == 600.0
    details = {"run_id": "r1", "run_seconds": 600.0, "max_run_seconds": 600, "partition": "2024-07-05"}
    assert infra.check_latency("f/a", FRIDAY, run, SLO) == infra.InfraOutcome(
        infra.InfraCheckKind.LATENCY, "f/a", True, "f/a 2024-07-05 materialized in 600 s", "2024-07-05", details)
    slow = infra.RunFacts("r2", "SUCCESS", "2024-07-05", 1000.0, 1600.00049)
    assert infra.check_latency("f/a", FRIDAY, slow, SLO) == infra.InfraOutcome(
        infra.InfraCheckKind.LATENCY, "f/a", False, "f/a 2024-07-05 took 600 s to materialize (SLO 600 s) in run r2",
        "2024-07-05", {**details, "run_id": "r2", "run_seconds": 600.0})
    precise = infra.check_latency("f/a", FRIDAY, infra.RunFacts("r3", "SUCCESS", None, 0.0, 12.34567), SLO)
    assert precise.details["run_seconds"] == 12.346
    assert infra.check_latency("f/a", None, run, SLO) == infra.InfraOutcome(
        infra.InfraCheckKind.LATENCY, "f/a", True, "not judged: no partition is due yet", skipped="no partition is due yet")
    unfinished = infra.RunFacts("r4", "STARTED", "2024-07-05", 1000.0, None)
    assert unfinished.seconds is None and infra.RunFacts("r5", "QUEUED").seconds is None
    assert infra.check_latency("f/a", FRIDAY, unfinished, SLO) == infra.InfraOutcome(
        infra.InfraCheckKind.LATENCY, "f/a", True, "not judged: no finished run materialized 2024-07-05",
        skipped="no finished run materialized 2024-07-05")


def run_of(run_id: str, status: str, partition: str | None, started: float | None = None) -> infra.RunFacts:
    return infra.RunFacts(run_id, status, partition, started, None)


def test_a_run_covers_its_partition_or_the_range_it_names_both_ends_included() -> None:
    now = utc(2024, 7, 6, 12)
    for partition in ("2024-07-05", "2024-07-05..2024-07-09", "2024-07-01..2024-07-05", "2024-07-04..2024-07-06"):
        assert infra.check_scheduled_run("daily", FRIDAY, [run_of("a", "SUCCESS", partition)], SLO, now).passed, partition
    for partition in (None, "2024-07-06..2024-07-09", "2024-07-01..2024-07-04", "2024-07-04", "2024-07-05x",
                      "2024-07-01..2024-07-03..2024-07-09"):
        outcome = infra.check_scheduled_run("daily", FRIDAY, [run_of("a", "SUCCESS", partition)], SLO, now)
        assert not outcome.passed and outcome.details["runs"] == [], partition


def test_scheduled_run_outcomes_whole() -> None:
    now = utc(2024, 7, 6, 12)
    base = {"job": "daily", "partition": "2024-07-05", "grace_until": "2024-07-05T21:00:00+00:00"}
    ok = infra.check_scheduled_run("daily", FRIDAY, [run_of("a", "SUCCESS", "2024-07-05", 5.0)], SLO, now)
    assert ok == infra.InfraOutcome(infra.InfraCheckKind.SCHEDULED_RUN, "job/daily", True,
                                "run a of daily for 2024-07-05 succeeded", "2024-07-05",
                                {**base, "runs": ["a"], "status": "SUCCESS"})
    assert ok.key == "scheduled_run:job/daily"
    for status in ("FAILURE", "CANCELED"):
        ended = infra.check_scheduled_run("daily", FRIDAY, [run_of("b", status, "2024-07-05", 5.0)], SLO, now)
        assert ended == infra.InfraOutcome(infra.InfraCheckKind.SCHEDULED_RUN, "job/daily", False,
                                       f"run b of daily for 2024-07-05 ended {status}", "2024-07-05",
                                       {**base, "runs": ["b"], "status": status})
    none = infra.check_scheduled_run("daily", FRIDAY, [run_of("z", "SUCCESS", "2024-07-04")], SLO, now)
    assert none == infra.InfraOutcome(infra.InfraCheckKind.SCHEDULED_RUN, "job/daily", False,
                                  "no run of daily for partition 2024-07-05: the schedule did not launch it (is the "
                                  "schedule running and the daemon up?)", "2024-07-05", {**base, "runs": []})
    stuck = infra.check_scheduled_run("daily", FRIDAY, [run_of("c", "STARTED", "2024-07-05", 5.0)], SLO, now)
    assert stuck == infra.InfraOutcome(infra.InfraCheckKind.SCHEDULED_RUN, "job/daily", False,
                                   "run c of daily for 2024-07-05 is still STARTED past its deadline", "2024-07-05",
                                   {**base, "runs": ["c"], "status": "STARTED"})
    assert infra.check_scheduled_run("daily", None, [], SLO, now) == infra.InfraOutcome(
        infra.InfraCheckKind.SCHEDULED_RUN, "job/daily", True, "not judged: no partition is due yet",
        skipped="no partition is due yet")


def test_before_the_grace_deadline_a_missing_or_running_run_is_not_judged_and_at_it_pages() -> None:
    slo = infra.InfraSLO(freshness_minutes=60, schedule_grace_minutes=30)
    deadline = utc(2024, 7, 5, 21, 30)
    just_before = deadline - dt.timedelta(microseconds=1)
    waiting = infra.check_scheduled_run("daily", FRIDAY, [], slo, just_before)
    assert waiting == infra.InfraOutcome(infra.InfraCheckKind.SCHEDULED_RUN, "job/daily", True,
                                     "not judged: the run for 2024-07-05 may still start",
                                     skipped="the run for 2024-07-05 may still start")
    assert not infra.check_scheduled_run("daily", FRIDAY, [], slo, deadline).passed
    running = [run_of("c", "QUEUED", "2024-07-05", 5.0)]
    assert infra.check_scheduled_run("daily", FRIDAY, running, slo, just_before) == infra.InfraOutcome(
        infra.InfraCheckKind.SCHEDULED_RUN, "job/daily", True, "not judged: run c for 2024-07-05 is QUEUED",
        skipped="run c for 2024-07-05 is QUEUED")
    late = infra.check_scheduled_run("daily", FRIDAY, running, slo, deadline)
    assert not late.passed and late.details["grace_until"] == "2024-07-05T21:30:00+00:00"
    # Dagster's status names are upper case: any other status is a run not finished yet
    assert infra.check_scheduled_run("daily", FRIDAY, [run_of("f", "failure", "2024-07-05", 1.0)], slo,
                                 just_before).skipped == "run f for 2024-07-05 is failure"


def test_the_newest_run_by_start_time_decides_and_an_unstarted_run_counts_as_oldest() -> None:
    now = utc(2024, 7, 6, 12)
    failed = run_of("old", "FAILURE", "2024-07-05", 10.0)
    retried = run_of("new", "SUCCESS", "2024-07-05", 20.0)
    assert infra.check_scheduled_run("daily", FRIDAY, [retried, failed], SLO, now).details["runs"] == ["old", "new"]
    unstarted = run_of("queued", "QUEUED", "2024-07-05", None)
    outcome = infra.check_scheduled_run("daily", FRIDAY, [retried, unstarted], SLO, now)
    assert outcome.passed and outcome.details["runs"] == ["queued", "new"]
    early = run_of("early", "SUCCESS", "2024-07-05", 0.5)
    assert infra.check_scheduled_run("daily", FRIDAY, [early, unstarted], SLO, now).details["runs"] == ["queued",
                                                                                                   "early"]


def test_an_incident_carries_the_outcome_and_the_time_it_was_observed() -> None:
    now = utc(2024, 7, 6, 12)
    outcome = infra.check_freshness("team/f_a", FRIDAY, [], now)
    incident = infra.incident_of(outcome, observed_at=now, severity=infra.Severity.WARNING)
    assert (incident.key, incident.asset, incident.summary, incident.partition) == (
        "freshness:team/f_a", "team/f_a", outcome.summary, "2024-07-05")
    assert incident.details == outcome.details and incident.observed_at == "2024-07-06T12:00:00.000000+00:00"
    assert incident.severity == infra.Severity.WARNING
    assert infra.incident_of(outcome).severity == infra.Severity.ERROR


def test_deadlines_are_in_utc_whatever_the_machines_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert NY.close_of(dt.date(2024, 7, 5)).isoformat() == "2024-07-05T20:00:00+00:00"
        calendar = [("2024-07-05", dt.date(2024, 7, 5))]
        expected = infra.expected_partition(calendar, NY, SLO, dt.datetime(2024, 7, 6, 6, tzinfo=dt.UTC))
        assert expected is not None and expected.due_at.isoformat() == "2024-07-05T21:00:00+00:00"
        outcome = infra.check_freshness("f/a", expected, [], dt.datetime(2024, 7, 6, 6, tzinfo=dt.UTC))
        assert outcome.details["due_at"] == "2024-07-05T21:00:00+00:00"
        assert infra._aware(dt.datetime(2024, 7, 6, 15, tzinfo=dt.timezone(dt.timedelta(hours=9)))).isoformat() == \
            "2024-07-06T06:00:00+00:00"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_ledger_head_its_anchor_contradicts_pages_and_an_unfinished_move_does_not() -> None:
    head = "sha256:" + "a" * 64
    anchored = ChainReport("alpha", 3, 3, head, None, anchor=f"3:{head}", anchor_state="matches", walked=False)
    outcome = infra.check_ledger_anchor(anchored)
    assert (outcome.check, outcome.asset, outcome.passed, outcome.key) == (
        InfraCheckKind.LEDGER_ANCHOR, "ledger/alpha", True, "ledger_anchor:ledger/alpha")
    assert outcome.summary == anchored.describe() and outcome.details["anchor_state"] == "matches"
    behind = infra.check_ledger_anchor(ChainReport("alpha", 3, 3, head, None, anchor=f"2:{head}",
                                                   anchor_state="behind", walked=False))
    assert behind.passed and "reconcile" in behind.summary
    cut = ChainReport("alpha", 2, 2, head, ChainProblem(3, "cut_tail", "entries 3..3 were cut off the tail"),
                      anchor=f"3:{head}", anchor_state="cut_tail", walked=False)
    paged = infra.check_ledger_anchor(cut)
    assert not paged.passed and paged.details["problem"] == {"seq": 3, "kind": "cut_tail",
                                                             "detail": "entries 3..3 were cut off the tail"}
    assert paged.summary == (f"{cut.describe()}; serving refuses it: run `ml-platform audit verify alpha`")
    assert infra.incident_of(paged).key == "ledger_anchor:ledger/alpha"


def test_an_alert_quoting_a_url_with_its_password_never_carries_the_password() -> None:
    """Whatever an outcome quotes (a ledger or MLflow error), the alert queued and sent carries it masked."""
    error = "could not reach postgresql+psycopg://ml:hunter2@db:5432/mlflow (connection refused)"
    outcome = infra.InfraOutcome(InfraCheckKind.LEDGER_ANCHOR, "ledger/alpha", False, f"ledger unreadable: {error}",
                                 details={"error": error, "tries": [{"url": "redis://:hunter2@broker:6379/0"}]})
    incident = infra.incident_of(outcome, observed_at=dt.datetime(2024, 7, 8, tzinfo=dt.UTC))
    resolve = incident.resolved(f"recovered: {error}")
    finding = AlphaDriftFinding(key="alpha:1:sharpe", model="alpha", version="1", summary=f"report at {error}",
                                live_window="a..b", validation_window="c..d", statistics={"note": error})
    for alert in (incident, resolve, finding, InfraIncident.from_dict(incident.to_dict())):
        assert "hunter2" not in json.dumps(alert.to_dict()), alert
    assert incident.details["error"] == "could not reach postgresql+psycopg://ml:***@db:5432/mlflow (connection refused)"
