"""Fixtures of the registry tests: a model, its deploy contract, a live stream, a real MLflow registry.

The registry is MLflow on a SQLite file with local artefacts under a session temp folder: one store
for the whole session, a copy of the session's migrated template (creating MLflow's schema costs
seconds), so each test registers under its own model name and never depends on another test's versions.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient
from sklearn.ensemble import RandomForestRegressor

os.environ.setdefault("DO_NOT_TRACK", "true")

from ml_platform.environment import capture_environment
from ml_platform.keys import FrameKeys
from ml_platform.models import LinearSignalModel, ModelInputs, SignalModel, SklearnSignalModel, SklearnTrainer
from ml_platform.registry import DeployContract, FeatureSchema, LiveFeatureStream
from ml_platform.registry.entities import RegisteredVersion
from ml_platform.registry.store import ModelRegistry
from ml_platform.window import DataWindow
from ml_platform_tests.harness.mlflow_template import copy_mlflow_template

KEYS = FrameKeys("date", ("instrument",))
FEATURES = ("mom_5d", "mom_21d", "vol_21d")
GRAPH_HASH = "sha256:" + hashlib.sha256(b"features/training_input@v1").hexdigest()
OTHER_GRAPH_HASH = "sha256:" + hashlib.sha256(b"features/training_input@v2").hexdigest()
DATA_HASH = "xxh3_128:" + hashlib.sha256(b"training set").hexdigest()[:32]
CODE_SNAPSHOT = {
    "features/mom_5d": "def mom_5d(close):\n    return close.pct_change(5)\n",
    "features/vol_21d": "def vol_21d(ret):\n    return ret.rolling_std(21)\n",
}


def feature_frame() -> pl.DataFrame:
    """A small live cross-section: three days, four names, a null, distinct values."""
    days = [dt.date(2020, 1, 2), dt.date(2020, 1, 3), dt.date(2020, 1, 6)]
    names = ["AAA", "BBB", "CCC", "DDD"]
    rows = [(d, n) for d in days for n in names]
    k = len(rows)
    return pl.DataFrame({
        "date": [r[0] for r in rows],
        "instrument": [r[1] for r in rows],
        "mom_5d": [0.01 * ((i * 7) % 11 - 5) for i in range(k)],
        "mom_21d": [None if i == 5 else 0.02 * ((i * 5) % 13 - 6) for i in range(k)],
        "vol_21d": [0.1 + 0.01 * ((i * 3) % 7) for i in range(k)],
    })


def feature_schema() -> FeatureSchema:
    return FeatureSchema.from_polars(feature_frame(), non_null=("date", "instrument"))


def make_model(shift: float = 0.0) -> LinearSignalModel:
    return LinearSignalModel(
        FEATURES, (0.5 + shift, 0.25, -0.3), 0.0, training_window=DataWindow.parse("2019-01-02..2019-12-31"),
        n_days=250, n_rows=1000, label_column="fwd_ret_1d", keys=KEYS,
    )


@functools.cache
def make_sklearn_model(seed: int = 0) -> SklearnSignalModel:
    """A small random forest fitted on 30 synthetic days of the conftest's features (seconds at most, cached)."""
    rng = np.random.default_rng(seed)
    days = [dt.date(2019, 1, 2) + dt.timedelta(days=i) for i in range(30) for _ in range(8)]
    n = len(days)
    frame = pl.DataFrame({"date": days, "instrument": [f"I{k}" for _ in range(30) for k in range(8)],
                          **{f: rng.normal(size=n) for f in FEATURES}})
    frame = frame.with_columns(fwd_ret_1d=0.01 * pl.col("mom_5d") - 0.005 * pl.col("vol_21d") ** 2)
    trainer = SklearnTrainer(RandomForestRegressor(n_estimators=4, max_depth=3), min_days=20)
    return trainer.fit(frame, ModelInputs(KEYS, FEATURES, "fwd_ret_1d", seed=seed))


def make_contract(model_name: str, model: SignalModel, **overrides: object) -> DeployContract:
    env = capture_environment()
    values: dict[str, object] = {
        "model_name": model_name,
        "model_version": None,
        "feature_graph_hash": GRAPH_HASH,
        "feature_schema": feature_schema(),
        "keys": model.keys,
        "training_window": DataWindow.parse("2019-01-02..2019-12-31"),
        "validation_window": DataWindow.parse("2020-01-02..2020-03-31"),
        "training_set_data_hash": DATA_HASH,
        "model_sha256": model.sha256,
        "model_format": model.format_id,
        "environment_hash": env.hash,
        "environment_lock": env.to_dict(),
        "seeds": {"train": 1234, "split": 7},
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": False,
        "trained_by": "alice@research",
        "created_at": dt.datetime(2020, 4, 1, 9, 30, tzinfo=dt.UTC),
    }
    values.update(overrides)
    return DeployContract(**values)  # type: ignore[arg-type]


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
