"""The daily schedule fires at the close plus a margin, for the day's partition, and skips days without one."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from ml_platform.errors import ConfigurationError
from ml_platform.features.calendar import Calendar
from ml_platform.monitoring.infra import MarketSession
from ml_platform.monitoring.schedule import build_daily_schedule, partition_of_session

BUSINESS = dg.TimeWindowPartitionsDefinition(start="2024-07-01", fmt="%Y-%m-%d", cron_schedule="0 0 * * 1-5",
                                             end_offset=1, exclusions=[dt.datetime(2024, 7, 4)])
NY = ZoneInfo("America/New_York")


@dg.asset(partitions_def=BUSINESS)
def prices() -> int:
    return 1


JOB = dg.define_asset_job("daily_job", selection=[prices], partitions_def=BUSINESS)


def evaluate(schedule: dg.ScheduleDefinition, when: dt.datetime):  # type: ignore[no-untyped-def]
    defs = dg.Definitions(assets=[prices], jobs=[JOB], schedules=[schedule])
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when,
                                            repository_def=defs.get_repository_def())
        return defs.get_schedule_def(schedule.name).evaluate_tick(context)


def test_fires_at_the_close_plus_margin_in_the_market_time_zone() -> None:
    schedule = build_daily_schedule(JOB, partitions_def=BUSINESS, session=MarketSession(dt.time(16), "America/New_York"),
                                    margin_minutes=45)
    assert schedule.cron_schedule == "45 16 * * *"
    assert schedule.execution_timezone == "America/New_York"
    assert schedule.name == "daily_job_daily"
    data = evaluate(schedule, dt.datetime(2024, 7, 2, 16, 45, tzinfo=NY))
    assert [r.partition_key for r in data.run_requests] == ["2024-07-02"]
    assert data.run_requests[0].run_key == "daily_job-2024-07-02"


@pytest.mark.parametrize("day", [dt.date(2024, 7, 4), dt.date(2024, 7, 6), dt.date(2024, 7, 7)],
                         ids=["holiday", "saturday", "sunday"])
def test_skips_days_without_a_session(day: dt.date) -> None:
    schedule = build_daily_schedule(JOB, partitions_def=BUSINESS)
    data = evaluate(schedule, dt.datetime.combine(day, dt.time(16, 30), tzinfo=NY))
    assert not data.run_requests
    assert f"{day} completes no partition" in data.skip_message


def test_a_margin_past_midnight_requests_the_previous_day() -> None:
    late = MarketSession(dt.time(23, 30), "Asia/Tokyo")
    schedule = build_daily_schedule(JOB, partitions_def=BUSINESS, session=late, margin_minutes=60)
    assert schedule.cron_schedule == "30 0 * * *"
    data = evaluate(schedule, dt.datetime(2024, 7, 3, 0, 30, tzinfo=ZoneInfo("Asia/Tokyo")))
    assert [r.partition_key for r in data.run_requests] == ["2024-07-02"]


def test_weekly_partitions_fire_only_on_the_period_end() -> None:
    weekly = dg.WeeklyPartitionsDefinition(start_date="2024-07-01", day_offset=1, end_offset=1)  # Monday..Sunday
    calendar = Calendar(weekly)
    assert partition_of_session(calendar, dt.date(2024, 7, 7)) == "2024-07-01"
    assert partition_of_session(calendar, dt.date(2024, 7, 3)) is None


def test_bad_arguments_are_refused_at_definition_time() -> None:
    with pytest.raises(ConfigurationError, match="end_offset=1"):
        build_daily_schedule(JOB, partitions_def=dg.DailyPartitionsDefinition(start_date="2024-07-01"))
    with pytest.raises(ConfigurationError, match="margin_minutes"):
        build_daily_schedule(JOB, partitions_def=BUSINESS, margin_minutes=-5)
