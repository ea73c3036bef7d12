"""Thin Dagster assets over training, registration, live signals and live PnL.

* ``trained_model``: reads the materialized ``training_set`` (with its manifest), trains on the earlier
  part of the window, validates on the later part, and registers an MLflow model version together with
  its deploy contract and the code snapshot of the feature graph.
* ``live_signals`` (daily): loads the champion **through the contract check** against the feature
  partitions it is about to score; a mismatch fails the step before a single signal exists.
* ``live_pnl`` (daily): signals times realized next-bar returns.
"""


import datetime as dt
import getpass
import warnings
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from ml_platform.environment import git_state
from ml_platform.errors import DataError
from ml_platform.features.assets import DAILY, window_of
from ml_platform.features.graph import FeatureGraph
from ml_platform.features.matrix import KEYS, LABEL_COLUMN
from ml_platform.features.nodes import FEATURE_COLUMNS, MODEL_INPUT_NODE
from ml_platform.features.snapshot import code_hashes, code_snapshot
from ml_platform.models.backtest import daily_pnl
from ml_platform.models.evaluation import train_and_validate
from ml_platform.models.signals import to_signals
from ml_platform.models.training import TrainingConfig
from ml_platform.registry.contract import DeployContract, LiveFeatureStream
from ml_platform.registry.resource import ModelRegistryResource
from ml_platform.registry.schema import FeatureSchema


class TrainingRunConfig(dg.Config):
    """How ``trained_model`` trains and registers."""

    model_name: str | None = Field(
        default=None, description="Registered model name in MLflow; unset: the deployment's model (ML_PLATFORM_MODEL_NAME).")
    alpha: float = Field(default=10.0, description="Ridge penalty on the pooled, standardized features.")
    seed: int = Field(default=0, description="Training seed (recorded; the closed-form ridge uses no randomness).")
    validation_fraction: float = Field(default=0.25, description="Latest share of the window's days held out for validation.")
    embargo_days: int = Field(default=2, description="Days dropped between training and validation parts.")
    min_days: int = Field(default=60, description="Minimum distinct training days.")
    trained_by: str = Field(default="", description="Who trains; defaults to the OS user running the step.")


class SignalsConfig(dg.Config):
    """Which registered model serves the live signals."""

    model_name: str | None = Field(
        default=None, description="Registered model whose champion scores the day; unset: the deployment's model.")


def _single_graph_hash(manifests: Any, what: str) -> str:
    hashes = {m.graph_hash for m in manifests}
    if len(hashes) != 1 or None in hashes:
        raise DataError(
            f"{what} spans partitions computed by different feature code (graph hashes {sorted(map(str, hashes))}); "
            f"rematerialize {MODEL_INPUT_NODE} over the whole window with one version of the code"
        )
    return hashes.pop()


def graph_seeds(graph: FeatureGraph) -> dict[str, int]:
    """Every seed declared in the feature graph, as ``node.param`` (e.g. ``market_bars.seed``)."""
    return {f"{n.key}.{name}": int(n.spec.params[name]) for n in graph for name in n.spec.seed_params}


def build_trained_model(graph: FeatureGraph, default_model: str) -> dg.AssetsDefinition:
    """The training asset for one feature graph (its code snapshot is what gets registered)."""

    @dg.asset(deps=["training_set"], group_name="models", kinds={"mlflow"},
              required_resource_keys={"feature_store", "model_registry"})
    def trained_model(context: dg.AssetExecutionContext, config: TrainingRunConfig) -> dg.MaterializeResult:
        """Train, validate and register a model version with its deploy contract."""
        model_name = config.model_name or default_model
        store = context.resources.feature_store.get_store()
        stored = store.read("training_set", None)
        manifest = stored.manifest
        inputs = [u for u in manifest.upstream if u.key == MODEL_INPUT_NODE]
        if not inputs:
            raise DataError(
                f"the stored training set ({manifest.label}) records no {MODEL_INPUT_NODE} partitions it was built "
                "from, so its feature graph cannot be established; rematerialize training_set with a window"
            )
        feature_graph_hash = _single_graph_hash(
            (store.manifest(MODEL_INPUT_NODE, u.partition) for u in inputs), "the training set")
        if feature_graph_hash != graph[MODEL_INPUT_NODE].graph_hash:
            raise DataError(
                f"the training set's {MODEL_INPUT_NODE} partitions were computed by feature graph {feature_graph_hash}, "
                f"but the code now defines {graph[MODEL_INPUT_NODE].graph_hash}: rematerialize the features and "
                "the training set with the current code before training"
            )
        training_cfg = TrainingConfig(feature_columns=FEATURE_COLUMNS, label_column=LABEL_COLUMN, alpha=config.alpha,
                                      seed=config.seed, min_days=config.min_days)
        outcome = train_and_validate(stored.frame, training_cfg, validation_fraction=config.validation_fraction,
                                     embargo_days=config.embargo_days)
        registry = context.resources.model_registry.get_registry()
        git = git_state()
        env = store.environment
        contract = DeployContract(
            model_name=model_name, model_version=None, feature_graph_hash=feature_graph_hash,
            feature_schema=FeatureSchema.from_polars(stored.frame.select(*KEYS, *FEATURE_COLUMNS)),
            training_window=outcome.training_window, validation_window=outcome.validation_window,
            training_set_data_hash=manifest.data_hash, model_sha256=outcome.model.sha256,
            environment_hash=env.hash, environment_lock=env.to_dict(),
            seeds={**graph_seeds(graph), **dict(manifest.seeds), "training": config.seed},
            git_commit=git.commit, git_dirty=git.dirty, trained_by=config.trained_by or getpass.getuser(),
            created_at=dt.datetime.now(dt.UTC),
        )
        params = {**training_cfg.to_dict(), "validation_fraction": config.validation_fraction,
                  "embargo_days": config.embargo_days, "training_set_window": str(manifest.window),
                  "dagster_run_id": context.run.run_id}
        registered = registry.register(model_name=model_name, model=outcome.model, contract=contract,
                                       params=params, metrics=outcome.metrics(), code_snapshot=code_snapshot(graph),
                                       code_hashes=code_hashes(graph))
        context.log.info(f"registered {model_name} version {registered.version} (run {registered.run_id})")
        return dg.MaterializeResult(metadata={
            "ml_platform/model_name": model_name,
            "ml_platform/model_version": registered.version,
            "ml_platform/mlflow_run_id": registered.run_id,
            "ml_platform/model_uri": registered.model_uri,
            "ml_platform/feature_graph_hash": feature_graph_hash,
            "ml_platform/model_sha256": outcome.model.sha256,
            "ml_platform/training_window": str(outcome.training_window),
            "ml_platform/validation_window": str(outcome.validation_window),
            "ml_platform/tracking_uri": context.resources.model_registry.tracking_uri,
            **{f"validation/{k}": v for k, v in outcome.metrics().items()},
        })

    return trained_model


# BackfillPolicy.single_run is beta; we rely on it knowingly (one run per backfilled range)
warnings.filterwarnings("ignore", message=".*backfill_policy.*", category=dg.BetaWarning)


def build_live_signals(default_model: str) -> dg.AssetsDefinition:
    """The daily signal asset serving ``default_model``'s champion unless a run names another model."""

    @dg.asset(deps=[MODEL_INPUT_NODE], partitions_def=DAILY, group_name="live", kinds={"polars"},
              backfill_policy=dg.BackfillPolicy.single_run(), required_resource_keys={"feature_store", "model_registry"})
    def live_signals(context: dg.AssetExecutionContext, config: SignalsConfig) -> dg.Output[pl.DataFrame]:
        """The champion's signals for the day, produced only after its contract matched the day's features."""
        model_name = config.model_name or default_model
        window = window_of(context)
        store = context.resources.feature_store.get_store()
        frame, manifests = store.read_many(MODEL_INPUT_NODE, window.partition_keys())
        graph_hash = _single_graph_hash(manifests, f"the live window {window}")
        live = LiveFeatureStream(feature_graph_hash=graph_hash, feature_schema=FeatureSchema.from_polars(frame))
        registry: ModelRegistryResource = context.resources.model_registry
        champion = registry.load_champion(model_name, live)   # raises ContractViolation: no signal at all
        scored = champion.model.predict(frame.select(*KEYS, *FEATURE_COLUMNS)) if frame.height else \
            pl.DataFrame(schema={"date": pl.Date, "instrument": pl.String, "score": pl.Float64})
        signals = to_signals(scored).with_columns(
            pl.lit(model_name).alias("model_name"), pl.lit(champion.version).alias("model_version"))
        return dg.Output(signals, metadata={
            "ml_platform/model_name": model_name,
            "ml_platform/model_version": champion.version,
            "ml_platform/feature_graph_hash": graph_hash,
            "ml_platform/window": str(window),
            "ml_platform/environment_differences": list(champion.check.environment_differences),
            "dagster/row_count": signals.height,
        })

    return live_signals


@dg.asset(ins={"signals": dg.AssetIn("live_signals"), "labels": dg.AssetIn("forward_return")},
          partitions_def=DAILY, group_name="live", kinds={"polars"}, backfill_policy=dg.BackfillPolicy.single_run())
def live_pnl(context: dg.AssetExecutionContext, signals: pl.DataFrame, labels: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """Daily PnL of the live signals against the realized next-bar return (null label: not yet known)."""
    pnl = daily_pnl(signals, labels.select(*KEYS, LABEL_COLUMN), label_column=LABEL_COLUMN) if signals.height else \
        pl.DataFrame(schema={"date": pl.Date, "pnl": pl.Float64, "gross": pl.Float64, "n_names": pl.Int64})
    return dg.Output(pnl, metadata={"ml_platform/window": str(window_of(context)),
                                    "ml_platform/total_pnl": float(pnl["pnl"].sum() or 0.0),
                                    "dagster/row_count": pnl.height})


def build_model_assets(graph: FeatureGraph, model_name: str) -> list[dg.AssetsDefinition]:
    """Training, live signals and live PnL assets for one feature graph and the deployment's model."""
    return [build_trained_model(graph, model_name), build_live_signals(model_name), live_pnl]
