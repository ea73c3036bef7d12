"""The example project's Dagster wiring: calendar, feature and model assets, jobs, the daily schedule and
monitoring (infra checks paging on-call, alpha drift reporting to research).

Everything comes from the public ``ml_platform`` API, exactly as another team would write it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import dagster as dg

from ml_platform import (
    DriftPolicy,
    FeatureGraph,
    InfraSLO,
    MarketSession,
    RidgeTrainer,
    Settings,
    Trainer,
    build_daily_schedule,
    build_definitions,
    build_feature_assets,
    build_model_assets,
    build_monitoring,
    build_promotion_job,
    build_rollback_job,
)
from quant_alpha.features import LABEL_NODE, MODEL_INPUT_NODE, TRAINING_NODE, build_graph
from quant_alpha.market.generator import DEFAULT_ORIGIN
from quant_alpha.matrix import LABEL_COLUMN

#: One partition per calendar day from the synthetic generator's first day (the real sample starts on
#: 2000-03-01: asking it for earlier days fails with an error naming its coverage). ``end_offset=1``: the
#: day's partition exists from midnight, so the schedule can materialize it at the close.
CALENDAR = dg.DailyPartitionsDefinition(start_date=DEFAULT_ORIGIN.isoformat(), end_offset=1)
MODEL_NAME = "alpha_ridge"
TRAINER = RidgeTrainer(alpha=10.0)
FEATURE_GROUPS = ("market", "features", "labels")
#: US equities: the close the freshness deadlines and the daily schedule count from.
SESSION = MarketSession(dt.time(16, 0), "America/New_York")
#: On-call service levels: the day's partitions within 2 hours of the close, no run longer than 30 minutes.
SLO = InfraSLO(freshness_minutes=120, max_run_seconds=1800.0)
#: The model's drift thresholds (code, reviewed like code): a rolling 63-day window, judged from 20 days.
DRIFT_POLICY = DriftPolicy(window_days=63, min_days=20, min_validation_days=40)
DAILY_JOB = "daily_job"


def project_assets(graph: FeatureGraph, model_name: str = MODEL_NAME,
                   trainer: Trainer = TRAINER) -> list[dg.AssetsDefinition]:
    """The feature assets of ``graph`` and the model assets of ``trainer`` (the cross-sectional ridge)."""
    return [
        *build_feature_assets(graph, partitions_def=CALENDAR),
        *build_model_assets(graph, model_input=MODEL_INPUT_NODE, label=LABEL_NODE, label_column=LABEL_COLUMN,
                            training_node=TRAINING_NODE, trainer=trainer, model_name=model_name,
                            partitions_def=CALENDAR),
    ]


def project_definitions(settings: Settings, graph: FeatureGraph | None = None,
                        model_name: str = MODEL_NAME, trainer: Trainer = TRAINER, *,
                        clock: Callable[[], dt.datetime] | None = None,
                        watch_schedule: bool = True) -> dg.Definitions:
    """Assets, jobs, the daily schedule, monitoring and the platform's resources for one deployment.

    ``clock`` is the time the infra sensor judges at (default: now). ``watch_schedule``: page when the
    scheduled ``daily_job`` run of the expected day is missing or failed. The demo replays 2012 with its
    own clock and drives the days itself instead of through the schedule, so it turns that check off.
    """
    graph = graph or build_graph()
    features_job = dg.define_asset_job(
        "features_job", selection=dg.AssetSelection.groups(*FEATURE_GROUPS).without_checks(),
        description="Market data, point-in-time features and labels for a day (or a backfilled range).")
    training_job = dg.define_asset_job(
        "training_job", selection=dg.AssetSelection.assets(TRAINING_NODE, "trained_model").without_checks(),
        description="Assemble the training set over a window, train, validate and register a model version.")
    signals_job = dg.define_asset_job(
        "live_signals_job", selection=dg.AssetSelection.assets("live_signals", "live_pnl").without_checks(),
        description="Score the day's features with the champion (contract-checked at load) and book its PnL.")
    promote_job = build_promotion_job(graph, model_input=MODEL_INPUT_NODE, label=LABEL_NODE,
                                      label_column=LABEL_COLUMN, training_node=TRAINING_NODE, model_name=model_name)
    rollback_job = build_rollback_job(graph, model_input=MODEL_INPUT_NODE, model_name=model_name)
    daily_job = dg.define_asset_job(
        DAILY_JOB, selection=(dg.AssetSelection.groups(*FEATURE_GROUPS)
                              | dg.AssetSelection.assets("live_signals", "live_pnl")).without_checks(),
        description="The day at the close: market data, features, labels, the champion's signals and its PnL.")
    # Jobs select assets .without_checks(): the infra checks run in infra_freshness_job only, never inside
    # a materialization (they would judge a day while it is being written, and page from it).
    monitoring = build_monitoring(
        graph, partitions_def=CALENDAR, model_input=MODEL_INPUT_NODE, label=LABEL_NODE, label_column=LABEL_COLUMN,
        training_node=TRAINING_NODE, model_name=model_name, session=SESSION, slo=SLO, drift_policy=DRIFT_POLICY,
        scheduled_job=DAILY_JOB if watch_schedule else None, running=True, clock=clock)
    return build_definitions(
        settings, assets=project_assets(graph, model_name, trainer),
        jobs=[features_job, training_job, signals_job, daily_job, promote_job, rollback_job, *monitoring.jobs],
        schedules=[build_daily_schedule(daily_job, partitions_def=CALENDAR, session=SESSION, margin_minutes=30,
                                        running=True)],
        sensors=list(monitoring.sensors), asset_checks=list(monitoring.asset_checks),
    )
