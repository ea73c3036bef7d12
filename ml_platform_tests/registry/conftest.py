"""Fixtures of the registry tests: a model, its deploy contract, a live stream, a real MLflow registry.

The registry is MLflow on a SQLite file with local artefacts under a session temp folder: one store
for the whole session, a copy of the session's migrated template (creating MLflow's schema costs
seconds), so each test registers under its own model name and never depends on another test's versions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

os.environ.setdefault("DO_NOT_TRACK", "true")

from ml_platform.models import SignalModel
from ml_platform.registry import LiveFeatureStream
from ml_platform.registry.entities import RegisteredVersion
from ml_platform.registry.store import ModelRegistry
from ml_platform.testing.factories import (
    CODE_SNAPSHOT,
    DATA_HASH,
    FEATURES,
    GRAPH_HASH,
    KEYS,
    OTHER_GRAPH_HASH,
    feature_frame,
    feature_schema,
    make_contract,
    make_model,
    make_sklearn_model,
)
from ml_platform_tests.harness.mlflow_template import copy_mlflow_template

__all__ = ["CODE_SNAPSHOT", "DATA_HASH", "FEATURES", "GRAPH_HASH", "KEYS", "OTHER_GRAPH_HASH", "artifact_file",
           "feature_frame", "feature_schema", "live", "make_contract", "make_model", "make_sklearn_model",
           "mlflow_client", "register", "registry", "registry_dir"]

def mlflow_client(registry: ModelRegistry) -> MlflowClient:
    """A plain MLflow client on the registry's store, to inspect what the registry wrote."""
    return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.registry_uri)


def artifact_file(registry: ModelRegistry, run_id: str, relative: str) -> Path:
    """The local file behind a run artefact (the tests' artefact store is a local folder)."""
    root = mlflow_client(registry).get_run(run_id).info.artifact_uri
    assert root.startswith("file://"), root
    return Path(root[len("file://"):]) / relative


@pytest.fixture
def live() -> LiveFeatureStream:
    return LiveFeatureStream(GRAPH_HASH, feature_schema(), KEYS)


@pytest.fixture(scope="session")
def registry_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def registry(registry_dir: Path, mlflow_template: Path) -> ModelRegistry:
    """One real MLflow registry (SQLite + local artefacts) shared by the session's registry tests."""
    database = copy_mlflow_template(mlflow_template, registry_dir / "mlflow.db")
    return ModelRegistry(f"sqlite:///{database}", artifact_location=str(registry_dir / "artifacts"))


@pytest.fixture(scope="session")
def register(registry: ModelRegistry) -> Callable[..., RegisteredVersion]:
    """Register ``model`` (default ``make_model(shift)``) under ``name`` with a matching contract."""

    def _register(name: str, shift: float = 0.0, model: SignalModel | None = None, **params: object) -> RegisteredVersion:
        model = model if model is not None else make_model(shift)
        return registry.register(
            model_name=name, model=model, contract=make_contract(name, model),
            params={"alpha": 1.0, "features": list(FEATURES), **params},
            metrics={"sharpe": 1.25, "ic_mean": 0.031},
            code_snapshot=CODE_SNAPSHOT,
            code_hashes={"features/mom_5d": {"code_hash": "sha256:" + "1" * 64, "graph_hash": "sha256:" + "2" * 64}},
        )

    return _register
