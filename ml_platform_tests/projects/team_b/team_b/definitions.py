"""team_b's Definitions: business-day partitions, the team_b key prefix, a scikit-learn ridge."""

from __future__ import annotations

import os

import dagster as dg
from sklearn.linear_model import Ridge

from ml_platform import (
    Settings,
    SklearnTrainer,
    build_definitions,
    build_feature_assets,
    build_model_assets,
    build_rollback_job,
)
from team_b.features import build_graph

PREFIX = "team_b"
CALENDAR = dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 * * 1-5", start="2020-11-02", fmt="%Y-%m-%d")
MODEL_NAME = "team_b_ridge"


def team_assets(graph=None) -> list[dg.AssetsDefinition]:
    graph = graph or build_graph()
    return [
        *build_feature_assets(graph, partitions_def=CALENDAR, key_prefix=PREFIX),
        *build_model_assets(graph, model_input="model_inputs", label="next_return", label_column="fwd",
                            training_node="train_rows", trainer=SklearnTrainer(Ridge(alpha=1.0)),
                            model_name=MODEL_NAME, partitions_def=CALENDAR, key_prefix=PREFIX),
    ]


def team_definitions(settings: Settings, graph=None) -> dg.Definitions:
    graph = graph or build_graph()
    rollback_job = build_rollback_job(graph, model_input="model_inputs", model_name=MODEL_NAME, key_prefix=PREFIX)
    return build_definitions(settings, assets=team_assets(graph), jobs=[rollback_job])


defs = team_definitions(Settings.from_env(os.environ))
