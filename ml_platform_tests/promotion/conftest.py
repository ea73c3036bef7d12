"""A tiny project for the promotion tests: a three-node graph, a stored training set, real MLflow on SQLite,
two registered ridge versions trained by alice, and the promote_model job in Definitions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from ml_platform import (
    FeatureGraph,
    FrameKeys,
    ModelRegistry,
    PinnedStore,
    Settings,
    feature,
    platform_resources,
)
from ml_platform.champions.catalog import champion_of_record
from ml_platform.champions.location import open_ledger
from ml_platform.environment import capture_environment
from ml_platform.models import ModelInputs, RidgeTrainer
from ml_platform.promotion import PromotionPolicy
from ml_platform.promotion.job import GATE_METADATA, build_promotion_job, promotion_resources
from ml_platform.registry import DeployContract, FeatureSchema
from ml_platform.window import DataWindow
from ml_platform_tests.harness.mlflow_template import seed_tracking_uri

KEYS = FrameKeys("date", ("instrument",))
FEATURES = ("f1", "f2")
LABEL = "fwd"
MODEL = "promo_ridge"
TRAIN = DataWindow.parse("2021-01-04..2021-03-14")
VALID = DataWindow.parse("2021-03-17..2021-04-30")
OTHER_RATIONALES = (
    ("The retrained coefficients track the momentum factor more closely after the January rebalancing; on the "
    "validation dates the challenger earns more per unit of turnover and its rank IC is steadier week to week. "
    "Risk reviewed the exposure report and signed off on the book limits. {extra}"),
    ("This version is a deliberate experiment for regime B: the desk wants to observe its live behaviour for "
    "two weeks with a reduced book, knowing the backtest is weaker. Capital is capped by the risk limits "
    "already agreed in the weekly meeting, and a rollback is planned if the drawdown exceeds the cap. {extra}"),
)
RATIONALE = ("Version {v} replaces the incumbent because its validation Sharpe and rank IC are higher on the "
             "same dates, the drawdown is shallower, and the feature set is unchanged. I reviewed the residuals "
             "per instrument and saw no concentration in a single name; turnover is comparable. {extra}")


@feature(group="features")
def model_inputs() -> pl.DataFrame:  # pragma: no cover - never materialized here
    raise NotImplementedError


@feature(group="labels", label=True)
def next_ret() -> pl.DataFrame:  # pragma: no cover
    raise NotImplementedError


@feature(upstream={"x": "model_inputs", "y": "next_ret"}, partitioned=False, group="training")
def train_rows(x: pl.DataFrame, y: pl.DataFrame) -> pl.DataFrame:  # pragma: no cover
    return x.join(y, on=["date", "instrument"], how="left")


def build_graph() -> FeatureGraph:
    return FeatureGraph([model_inputs, next_ret, train_rows], keys=KEYS)


def training_frame(seed: int = 11) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    days = [dt.date(2021, 1, 4) + dt.timedelta(days=i) for i in range(117)]
    names = [f"N{k:02d}" for k in range(10)]
    n = len(days) * len(names)
    f1, f2 = rng.normal(size=n), rng.normal(size=n)
    return pl.DataFrame({"date": [d for d in days for _ in names], "instrument": names * len(days),
                         "f1": f1, "f2": f2, LABEL: 0.01 * f1 - 0.004 * f2 + 0.004 * rng.normal(size=n)},
                        schema_overrides={"date": pl.Date})


@dataclass
class Project:
    settings: Settings
    registry: ModelRegistry
    store: PinnedStore
    graph: FeatureGraph
    defs: dg.Definitions
    register: Callable[..., str]
    instance: dg.DagsterInstance
    tmp: Path

    def run(self, version: str, *, approver: str = "bob", rationale: str | None = None, **extra: str):
        template = RATIONALE if int(version) == 1 else OTHER_RATIONALES[int(version) % 2]
        text = template.format(v=version, extra=extra.pop("tail", "")) if rationale is None else rationale
        config = {"model": MODEL, "version": version, "approver": approver, "rationale": text, **extra}
        job = self.defs.resolve_job_def("promote_model")
        return job.execute_in_process(run_config={"ops": {"promotion_report": {"config": config}}},
                                      instance=self.instance, raise_on_error=False)

    def head(self):
        return open_ledger(self.registry).head(MODEL)

    def alias(self) -> str | None:
        return champion_of_record(self.registry, MODEL)


def make_project(tmp_path: Path, instance: dg.DagsterInstance, policy: PromotionPolicy | None = None, *,
                 tracking_uri: str | None = None, existing: bool = False,
                 mlflow_template: Path | None = None) -> Project:
    """The project rooted at ``tmp_path / ".ml_platform"``.

    Args:
        tracking_uri: the MLflow tracking URI (the ledger lives in its database); default: the SQLite file
            of the embedded settings. The artefacts and the store stay under ``tmp_path``.
        existing: open a project made earlier under ``tmp_path`` (its training set is stored already:
            nothing is written) instead of making one.
        mlflow_template: a migrated MLflow SQLite database (the ``mlflow_template`` fixture) copied to the
            embedded settings' SQLite file, so MLflow does not migrate a fresh one; default: MLflow does.
    """
    overrides = {} if tracking_uri is None else {"tracking_uri": tracking_uri}
    settings = Settings.local(tmp_path / ".ml_platform", **overrides)
    if mlflow_template is not None and not existing:
        seed_tracking_uri(mlflow_template, settings.tracking_uri)
    registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
    store = PinnedStore(settings.storage)
    graph = build_graph()
    frame = training_frame()
    manifest = store.manifest("train_rows", None) if existing else store.write("train_rows", None, frame)
    env = capture_environment()

    def register(coefs: tuple[float, float] | None = None, *, trained_by: str = "alice",
                 graph_hash: str | None = None) -> str:
        train = frame.filter(pl.col("date").is_between(TRAIN.start, TRAIN.end))
        model = RidgeTrainer(alpha=1.0).fit(train, ModelInputs(KEYS, FEATURES, LABEL))
        if coefs is not None:  # a deliberately different model: same family, other coefficients
            from ml_platform.models import LinearSignalModel
            model = LinearSignalModel(FEATURES, coefs, 0.0, training_window=TRAIN, n_days=70, n_rows=700,
                                      label_column=LABEL, keys=KEYS)
        contract = DeployContract(
            model_name=MODEL, model_version=None,
            feature_graph_hash=graph_hash or graph["model_inputs"].graph_hash,
            feature_schema=FeatureSchema.from_polars(frame.select(*KEYS.columns, *FEATURES)),
            keys=KEYS, training_window=TRAIN, validation_window=VALID,
            training_set_data_hash=manifest.data_hash, model_sha256=model.sha256, model_format=model.format_id,
            environment_hash=env.hash, environment_lock=env.to_dict(), seeds={"training": 0},
            git_commit=None, git_dirty=False, trained_by=trained_by, created_at=dt.datetime.now(dt.UTC))
        return registry.register(model_name=MODEL, model=model, contract=contract, params={"alpha": 1.0},
                                 metrics={}, code_snapshot={"train_rows": "def train_rows(): ..."}).version

    job = build_promotion_job(graph, model_input="model_inputs", label_column=LABEL, training_node="train_rows",
                              model_name=MODEL, policy=policy)
    defs = dg.Definitions(jobs=[job], resources={**platform_resources(settings), **promotion_resources()})
    return Project(settings, registry, store, graph, defs, register, instance, tmp_path)


@pytest.fixture
def project(tmp_path: Path, dagster_instance: dg.DagsterInstance, mlflow_template: Path) -> Project:
    return make_project(tmp_path, dagster_instance, mlflow_template=mlflow_template)


def failed_gate(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    """(gate, message) of the first step failure of a refused promotion run."""
    assert not result.success
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data.user_failure_data
            return str(data.metadata[GATE_METADATA].value), data.description
    raise AssertionError("no step failure")


def ran(result: dg.ExecuteInProcessResult) -> set[str]:
    """The steps of a run that succeeded."""
    return {e.step_key for e in result.all_events if e.is_step_success}
