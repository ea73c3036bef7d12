"""Build the Definitions of one deployment from its settings; no side effects at import.

:mod:`ml_platform.definitions` (loaded by workspace.yaml) calls this with settings read from the
environment; the demo and the tests call it with their own. The same code serves the embedded default
and production: only the settings differ.
"""

from __future__ import annotations

import dagster as dg

from ml_platform.features.assets import build_feature_assets
from ml_platform.features.graph import FeatureGraph
from ml_platform.features.nodes import build_graph
from ml_platform.io import PinnedIOManager, PinnedStoreResource
from ml_platform.models.assets import build_model_assets
from ml_platform.registry.resource import ModelRegistryResource
from ml_platform.settings import Settings

FEATURE_GROUPS = ("market", "features", "labels")


def build_definitions(settings: Settings, graph: FeatureGraph | None = None) -> dg.Definitions:
    """Assets, jobs, schedules and resources for one deployment.

    Args:
        settings: where things live and how strict the environment checks are.
        graph: the feature graph (defaults to the platform's own; the demo passes a variant to show a
            code change being caught).
    """
    graph = graph or build_graph(settings.market_source)
    feature_assets = build_feature_assets(graph)
    features_job = dg.define_asset_job(
        "features_job",
        selection=dg.AssetSelection.groups(*FEATURE_GROUPS),
        description="Market data, point-in-time features and labels for a day (or a backfilled range).",
    )
    training_job = dg.define_asset_job(
        "training_job",
        selection=dg.AssetSelection.assets("training_set", "trained_model"),
        description="Assemble the training set over a window, train, validate and register a model version.",
    )
    signals_job = dg.define_asset_job(
        "live_signals_job",
        selection=dg.AssetSelection.assets("live_signals", "live_pnl"),
        description="Score the day's features with the champion (contract-checked at load) and book its PnL.",
    )
    store_config = {"base_dir": settings.storage, "environment_policy": settings.environment_policy}
    return dg.Definitions(
        assets=[*feature_assets, *build_model_assets(graph, settings.model_name)],
        jobs=[features_job, training_job, signals_job],
        schedules=[dg.build_schedule_from_partitioned_job(features_job, hour_of_day=22, minute_of_hour=30)],
        resources={
            "io_manager": PinnedIOManager(**store_config),
            "feature_store": PinnedStoreResource(**store_config),
            "model_registry": ModelRegistryResource(
                tracking_uri=settings.tracking_uri,
                artifact_location=settings.artifact_location,
                environment_policy=settings.environment_policy,
            ),
        },
    )
