"""Shared pieces of the end-to-end lifecycle tests: a deployment on disk, a variant graph, run inspection.

A :class:`Deployment` is everything a lifecycle test drives: the settings (a throwaway home), the
feature graph, the Definitions built from both, a :class:`~ml_platform.lifecycle.Lifecycle` on a real
Dagster instance, and the pinned store and model registry those runs write to. The helpers read what
the runs left behind (Dagster's event log, the store's manifests, MLflow's artefacts) without
mocking anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import dagster as dg
import polars as pl
from mlflow import MlflowClient
from quant_alpha import compute
from quant_alpha.features import build_graph
from quant_alpha.project import TRAINER, project_definitions

from ml_platform import DataWindow, FeatureGraph, Lifecycle, ModelRegistry, PinnedStore, Settings, Trainer

# MLflow reads these on every tracked call, so setting them when the tests import this module suffices
os.environ.setdefault("DO_NOT_TRACK", "true")

#: Test code that feature functions reach must be hashable, so variant graphs hash this package too.
TEST_PACKAGES = ("quant_alpha", "quant_alpha_tests")


@dataclass(frozen=True)
class TrainedVersion:
    """What one ``trained_model`` run registered."""

    model_name: str
    version: str
    run_id: str
    model_sha256: str


@dataclass(frozen=True)
class Deployment:
    """One embedded deployment under a temporary home, driven through :class:`Lifecycle`.

    Attributes:
        settings: where the store and the MLflow registry live.
        graph: the feature graph the Definitions were built from.
        defs: ``project_definitions(settings, graph)``.
        life: the lifecycle runner on the test's Dagster instance.
        trainer: the model family the Definitions train (the example's ridge, with fewer minimum days).
    """

    settings: Settings
    graph: FeatureGraph
    defs: dg.Definitions
    life: Lifecycle
    trainer: Trainer

    @classmethod
    def create(cls, settings: Settings, instance: dg.DagsterInstance,
               graph: FeatureGraph | None = None, trainer: Trainer | None = None) -> Deployment:
        """Definitions and a lifecycle for ``graph`` (default: the example graph over the real sample)."""
        graph = graph or build_graph("sample")
        trainer = trainer or TRAINER
        defs = project_definitions(settings, graph, trainer=trainer)
        return cls(settings, graph, defs, Lifecycle(defs, graph, instance), trainer)

    def with_graph(self, graph: FeatureGraph) -> Deployment:
        """The same deployment, instance and trainer serving another (variant) feature graph."""
        return Deployment.create(self.settings, self.life.instance, graph, self.trainer)

    @property
    def instance(self) -> dg.DagsterInstance:
        """The Dagster instance every run of this deployment records to."""
        return self.life.instance

    @property
    def store(self) -> PinnedStore:
        """The pinned store the IO manager writes to, under the deployment's environment policy."""
        return PinnedStore(self.settings.storage, policy=self.settings.environment_policy)

    @property
    def registry(self) -> ModelRegistry:
        """The registry the ``model_registry`` resource writes to."""
        return ModelRegistry(self.settings.tracking_uri, artifact_location=self.settings.artifact_location)

    @property
    def mlflow(self) -> MlflowClient:
        """A raw MLflow client on the same store, to look at what the registry wrote."""
        return MlflowClient(tracking_uri=self.settings.tracking_uri, registry_uri=self.settings.tracking_uri)

    def train(self, **config: Any) -> TrainedVersion:
        """Run ``trained_model`` with ``config`` (TrainingRunConfig fields) and return what it registered."""
        result = self.life.train(**config)
        meta = result.asset_materializations_for_node("trained_model")[-1].metadata
        return TrainedVersion(
            model_name=meta["ml_platform/model_name"].value,
            version=meta["ml_platform/model_version"].value,
            run_id=meta["ml_platform/mlflow_run_id"].value,
            model_sha256=meta["ml_platform/model_sha256"].value,
        )

    def rematerialize(self, window: DataWindow, changed_from: str) -> list[dg.ExecuteInProcessResult]:
        """Recompute, over ``window``, only ``changed_from`` and the partitioned nodes downstream of it.

        What a team does after editing one feature: the untouched ancestors keep their partitions
        (their graph hashes did not move), the edited node and its descendants are rewritten, in the
        same ancestor-first runs :meth:`Lifecycle.features` would use.
        """
        changed = {changed_from, *self.graph.descendants(changed_from)}
        results = []
        for span, keys in self.life.plan(window):
            selected = [k for k in keys if k in changed]
            if selected:
                results.append(self.life.materialize(selected, span))
        return results

    def materialize_with_config(self, key: str, config: dict[str, Any]) -> dg.ExecuteInProcessResult:
        """Materialize one asset with raw run config (bypassing Lifecycle's typed arguments)."""
        return self.life.run([key], run_config={"ops": {key: {"config": config}}})

    def artifact_dir(self, run_id: str) -> Path:
        """The local folder holding an MLflow run's artefacts (the embedded default stores files)."""
        uri = self.mlflow.get_run(run_id).info.artifact_uri
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            raise AssertionError(f"run {run_id} stores its artefacts at {uri}, not on the local disk")
        return Path(unquote(parsed.path))


def run_ids(store: PinnedStore, key: str, window: DataWindow) -> dict[str, str | None]:
    """Partition key -> the Dagster run id recorded in that partition's manifest."""
    return {day: store.manifest(key, day).run_id for day in window.partition_keys()}


def data_hashes(store: PinnedStore, key: str, window: DataWindow) -> dict[str, str]:
    """Partition key -> the data hash recorded in that partition's manifest."""
    return {day: store.manifest(key, day).data_hash for day in window.partition_keys()}


def read_window(store: PinnedStore, key: str, window: DataWindow) -> pl.DataFrame:
    """Every partition of ``key`` over ``window``, verified and concatenated."""
    frame, _ = store.read_many(key, window.partition_keys())
    return frame


def last_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """The most recently created run on the instance."""
    runs = instance.get_runs(limit=1)
    if not runs:
        raise AssertionError("the instance holds no runs")
    return runs[0]


def materialized_keys(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    """Asset keys the run recorded a materialization for, from the instance's event log."""
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    return {r.dagster_event.asset_key.to_user_string() for r in records if r.dagster_event is not None}


def momentum_with_shorter_lookback(bars: pl.DataFrame) -> pl.DataFrame:
    """An edited momentum feature: the short lookback shortened from 5 to 4 bars, same columns.

    The output keeps the ``mom_5d`` column name so every downstream node still runs, which is the
    dangerous kind of change: only the code hash tells the live stream apart from the trained one.
    """
    return compute.momentum(bars, lookbacks=(4, 21, 63)).rename({"mom_4d": "mom_5d"})


def variant_graph(graph: FeatureGraph) -> FeatureGraph:
    """``graph`` with the momentum node's function replaced by :func:`momentum_with_shorter_lookback`."""
    hashed_with_tests = FeatureGraph([n.spec for n in graph], project_packages=TEST_PACKAGES)
    return hashed_with_tests.with_function("momentum", momentum_with_shorter_lookback)
