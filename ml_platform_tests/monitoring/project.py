"""A monitoring test project that is not the example (public API only): business days with a holiday, ``day``/``name`` keys,
the ``desk`` prefix, a synthetic market generated per day (seeded) whose signal stops working on
``SHIFT_DAY`` (a regime change), a ridge model, and monitoring wired to a pager and a research route."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dagster as dg
import numpy as np
import polars as pl

from ml_platform import (
    DataWindow,
    DriftPolicy,
    FeatureGraph,
    FrameKeys,
    InfraSLO,
    MarketSession,
    RidgeTrainer,
    Settings,
    build_daily_schedule,
    build_definitions,
    build_feature_assets,
    build_model_assets,
    build_monitoring,
    feature,
)

KEYS = FrameKeys("day", ("name",))
PREFIX = "desk"
MODEL = "desk_ridge"
NAMES = tuple(f"N{i:02d}" for i in range(30))
SHIFT_DAY = "2023-09-01"  # from this day the signal's payoff flips sign and its noise doubles
HOLIDAY = dt.datetime(2023, 9, 4)  # Labor Day: no partition
CALENDAR = dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 * * 1-5", start="2023-01-02", fmt="%Y-%m-%d",
                                             end_offset=1, exclusions=[HOLIDAY])
SESSION = MarketSession(dt.time(16, 0), "America/New_York")
SLO = InfraSLO(freshness_minutes=60, max_run_seconds=600)
DAILY_JOB = "desk_daily"


def _day_rows(day: dt.date, shift: dt.date) -> dict[str, list]:
    rng = np.random.default_rng([20230101, day.toordinal()])
    signal = rng.normal(size=len(NAMES))
    other = rng.normal(size=len(NAMES))
    noise = rng.normal(size=len(NAMES))
    after = day >= shift
    beta, scale = (-0.006, 0.02) if after else (0.006, 0.01)
    return {"day": [day] * len(NAMES), "name": list(NAMES), "sig": signal.tolist(), "other": other.tolist(),
            "ret": (beta * signal + scale * noise).tolist()}


@feature(params={"shift_day": SHIFT_DAY}, group="market")
def bars(window: DataWindow, shift_day: str) -> pl.DataFrame:
    """The desk's synthetic market: a signal and the next day's return per name, seeded per day."""
    shift = dt.date.fromisoformat(shift_day)
    days = [window.start + dt.timedelta(days=i) for i in range((window.end - window.start).days + 1)]
    rows: dict[str, list] = {"day": [], "name": [], "sig": [], "other": [], "ret": []}
    for day in days:
        if day.weekday() < 5:
            for column, values in _day_rows(day, shift).items():
                rows[column].extend(values)
    return pl.DataFrame(rows, schema={"day": pl.Date, "name": pl.String, "sig": pl.Float64, "other": pl.Float64,
                                      "ret": pl.Float64})


@feature(upstream={"b": "bars"}, group="features")
def inputs(b: pl.DataFrame) -> pl.DataFrame:
    """What the model scores."""
    return b.select("day", "name", "sig", "other")


@feature(upstream={"b": "bars"}, group="features", key="inputs")
def inputs_wide(b: pl.DataFrame) -> pl.DataFrame:
    """A later edit of ``inputs`` that adds a column: deployed without retraining, it breaks the contract."""
    return b.select("day", "name", "sig", "other", (pl.col("sig") - pl.col("other")).alias("spread"))


@feature(upstream={"b": "bars"}, label=True, group="labels")
def fwd_ret(b: pl.DataFrame) -> pl.DataFrame:
    """The realized next-day return."""
    return b.select("day", "name", pl.col("ret").alias("fwd"))


@feature(upstream={"x": "inputs", "y": "fwd_ret"}, partitioned=False, group="training")
def rows(x: pl.DataFrame, y: pl.DataFrame) -> pl.DataFrame:
    """Inputs and label over a window."""
    return x.join(y, on=["day", "name"], how="left")


def build_graph(*, wide: bool = False) -> FeatureGraph:
    return FeatureGraph([bars, inputs_wide if wide else inputs, fwd_ret, rows], keys=KEYS)


def desk_definitions(settings: Settings, clock: Callable[[], dt.datetime], *, graph: FeatureGraph | None = None,
                     drift_policy: DriftPolicy | None = None, scheduled: bool = False) -> dg.Definitions:
    """The desk's Definitions; ``scheduled`` adds the daily job and schedule, and watches its runs."""
    graph = graph or build_graph()
    assets = [*build_feature_assets(graph, partitions_def=CALENDAR, key_prefix=PREFIX),
              *build_model_assets(graph, model_input="inputs", label="fwd_ret", label_column="fwd",
                                  training_node="rows", trainer=RidgeTrainer(alpha=1.0, min_days=20), model_name=MODEL,
                                  partitions_def=CALENDAR, key_prefix=PREFIX)]
    monitoring = build_monitoring(graph, partitions_def=CALENDAR, model_input="inputs", label="fwd_ret",
                                  label_column="fwd", training_node="rows", model_name=MODEL, session=SESSION,
                                  slo=SLO, drift_policy=drift_policy, key_prefix=PREFIX, clock=clock,
                                  scheduled_job=DAILY_JOB if scheduled else None)
    jobs, schedules = list(monitoring.jobs), []
    if scheduled:
        daily = dg.define_asset_job(DAILY_JOB, selection=dg.AssetSelection.key_prefixes([PREFIX]) - dg.AssetSelection.assets(
            dg.AssetKey([PREFIX, "rows"]), dg.AssetKey([PREFIX, "trained_model"])))
        jobs.append(daily)
        schedules.append(build_daily_schedule(daily, partitions_def=CALENDAR, session=SESSION, margin_minutes=15))
    return build_definitions(settings, assets=assets, jobs=jobs, schedules=schedules, sensors=list(monitoring.sensors),
                             asset_checks=list(monitoring.asset_checks))
