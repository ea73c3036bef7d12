"""The daily schedule: at the exchange close plus a margin, materialize the day's partition.

Trading-calendar aware: it fires every day at ``close + margin`` in the market's time zone and requests
the partition whose session is today (a daily or business-day partition's first day, a longer
period's last day); on a day that completes no partition (a weekend of a business-day calendar, a
holiday excluded from it, a mid-week day of a weekly one) it skips, saying so. The partition for today must exist at the close, so the calendar needs ``end_offset=1`` (a
partition is otherwise only created when its day is over, at midnight).
"""


import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg

from ml_platform.errors import ConfigurationError, MLPlatformError
from ml_platform.features.calendar import Calendar
from ml_platform.monitoring.infra import MarketSession, session_day

__all__ = ["build_daily_schedule", "partition_of_session"]


def partition_of_session(calendar: Calendar, day: dt.date) -> str | None:
    """The calendar's partition whose session day (:func:`~ml_platform.monitoring.infra.session_day`) is
    ``day``; ``None`` when ``day`` completes no partition (no session, or not a period's last day)."""
    pd = calendar.partitions_def
    noon = dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(pd.timezone or "UTC"))
    window = pd.get_prev_partition_window(noon + dt.timedelta(days=1), respect_bounds=False)
    while window is not None and window.start.date() > day:
        window = pd.get_prev_partition_window(window.start, respect_bounds=False)
    if window is None:
        return None
    key = pd.get_partition_key_range_for_time_window(window, respect_bounds=False).start
    try:
        days = calendar.window_of_key(key)
    except MLPlatformError:
        return None
    return key if session_day(days, calendar.min_days) == day else None


def build_daily_schedule(
    job: Any,
    *,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    session: MarketSession | None = None,
    margin_minutes: int = 30,
    name: str | None = None,
    running: bool = False,
) -> dg.ScheduleDefinition:
    """A schedule running ``job`` for the day's partition at ``session.close + margin_minutes``.

    Args:
        job: the partitioned job (``define_asset_job`` or a job definition) materializing the day (market data, features, live signals, PnL).
        partitions_def: the graph's calendar; it must have ``end_offset >= 1``.
        session: the market close (default 16:00 New York).
        margin_minutes: minutes after the close (0 to 720).
        name: schedule name; default ``<job>_daily``.
        running: start it with the daemon (``dagster dev``) instead of stopped.

    Raises:
        ConfigurationError: the margin is out of range, or the calendar would not hold today's partition
            at the close (``end_offset`` 0).
    """
    session = session or MarketSession()
    if isinstance(margin_minutes, bool) or not isinstance(margin_minutes, int) or not 0 <= margin_minutes <= 720:
        raise ConfigurationError(f"margin_minutes must be an integer from 0 to 720, got {margin_minutes!r}")
    calendar = Calendar(partitions_def)
    if partitions_def.end_offset < 1:
        raise ConfigurationError(
            "the daily schedule materializes today's partition at the close, but this calendar creates a partition "
            "only once its day is over; build it with end_offset=1 (e.g. DailyPartitionsDefinition(start_date=..., "
            "end_offset=1))")
    fire = dt.datetime.combine(dt.date(2000, 1, 3), session.close) + dt.timedelta(minutes=margin_minutes)
    shift = (fire.date() - dt.date(2000, 1, 3)).days  # the margin may carry the run past midnight
    job_name = job.name

    @dg.schedule(name=name or f"{job_name}_daily", job=job, cron_schedule=f"{fire.minute} {fire.hour} * * *",
                 execution_timezone=session.timezone,
                 default_status=dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED,
                 description=f"{job_name} for the day's partition at the close ({session.close:%H:%M} "
                             f"{session.timezone}) + {margin_minutes} min; skips days without a session.")
    def daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        moment = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        day = moment.astimezone(ZoneInfo(session.timezone)).date() - dt.timedelta(days=shift)
        key = partition_of_session(calendar, day)
        if key is None:
            return dg.SkipReason(f"{day} completes no partition (no session: a weekend or holiday, or not the "
                                 "period's last day)")
        return dg.RunRequest(run_key=f"{job_name}-{key}", partition_key=key)

    return daily
