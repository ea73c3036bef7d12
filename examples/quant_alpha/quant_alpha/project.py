"""The example project's Dagster wiring: calendar, feature and model assets, jobs and the daily schedule.

Everything comes from the public ``ml_platform`` API, exactly as another team would write it.
"""

from __future__ import annotations

import dagster as dg

from ml_platform import (
    FeatureGraph,
    RidgeTrainer,
    Settings,
    Trainer,
    build_definitions,
    build_feature_assets,
    build_model_assets,
    build_promotion_job,
    build_rollback_job,
)
from quant_alpha.features import LABEL_NODE, MODEL_INPUT_NODE, TRAINING_NODE, build_graph
from quant_alpha.market.generator import DEFAULT_ORIGIN
from quant_alpha.matrix import LABEL_COLUMN

#: One partition per calendar day from the synthetic generator's first day (the real sample starts on
#: 2000-03-01: asking it for earlier days fails with an error naming its coverage).
CALENDAR = dg.DailyPartitionsDefinition(start_date=DEFAULT_ORIGIN.isoformat())
MODEL_NAME = "alpha_ridge"
TRAINER = RidgeTrainer(alpha=10.0)
FEATURE_GROUPS = ("market", "features", "labels")


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
                        model_name: str = MODEL_NAME, trainer: Trainer = TRAINER) -> dg.Definitions:
    """Assets, jobs, the daily schedule and the platform's resources for one deployment."""
    graph = graph or build_graph()
    features_job = dg.define_asset_job(
        "features_job", selection=dg.AssetSelection.groups(*FEATURE_GROUPS),
        description="Market data, point-in-time features and labels for a day (or a backfilled range).")
    training_job = dg.define_asset_job(
        "training_job", selection=dg.AssetSelection.assets(TRAINING_NODE, "trained_model"),
        description="Assemble the training set over a window, train, validate and register a model version.")
    signals_job = dg.define_asset_job(
        "live_signals_job", selection=dg.AssetSelection.assets("live_signals", "live_pnl"),
        description="Score the day's features with the champion (contract-checked at load) and book its PnL.")
    promote_job = build_promotion_job(graph, model_input=MODEL_INPUT_NODE, label=LABEL_NODE,
                                      label_column=LABEL_COLUMN, training_node=TRAINING_NODE, model_name=model_name)
    rollback_job = build_rollback_job(graph, model_input=MODEL_INPUT_NODE, model_name=model_name)
    return build_definitions(
        settings, assets=project_assets(graph, model_name, trainer),
        jobs=[features_job, training_job, signals_job, promote_job, rollback_job],
        schedules=[dg.build_schedule_from_partitioned_job(features_job, hour_of_day=22, minute_of_hour=30)],
    )
