"""Thin Dagster assets over training, registration, live signals and live PnL, for any graph and model.

How it works, and why: docs/architecture.md, "ml_platform/model_assets.py".
"""


import datetime as dt
import getpass
import warnings
from collections.abc import Iterable, Sequence

import dagster as dg
import polars as pl
from pydantic import Field

from ml_platform import metadata
from ml_platform.champions.resource import ModelRegistryResource
from ml_platform.dagster_boundary import platform_failures
from ml_platform.environment import GitState, capture_environment, recorded_git, working_tree_diff
from ml_platform.errors import ConfigurationError, DataError, GraphError, ProvenanceError
from ml_platform.features.assets import FeatureAssetsTranslator, window_of
from ml_platform.features.calendar import Calendar
from ml_platform.features.graph import FeatureGraph
from ml_platform.features.snapshot import code_hashes, code_snapshot
from ml_platform.io.manifest import Manifest
from ml_platform.models.backtest import daily_pnl
from ml_platform.models.evaluation import train_and_validate
from ml_platform.models.protocol import ModelInputs, Trainer
from ml_platform.models.signals import to_signals
from ml_platform.redact import redacted_url
from ml_platform.registry.contract import DeployContract, LiveFeatureStream
from ml_platform.registry.schema import FeatureSchema
from ml_platform.settings import environment_secrets

__all__ = ["LIVE_PNL", "LIVE_SIGNALS", "TRAINED_MODEL", "SignalsConfig", "TrainingRunConfig", "build_model_assets"]

TRAINED_MODEL = "trained_model"
LIVE_SIGNALS = "live_signals"
LIVE_PNL = "live_pnl"


class TrainingRunConfig(dg.Config):
    """How ``trained_model`` trains and registers (the model family and its hyper-parameters are code)."""

    model_name: str | None = Field(
        default=None, description="Registered model name in MLflow; unset: the model name the assets were built for.")
    seed: int = Field(default=0, description="Training seed, recorded; passed to the trainer.")
    validation_fraction: float = Field(default=0.25, gt=0.0, lt=1.0,
                                       description="Latest share of the window's days held out for validation.")
    embargo_days: int = Field(default=2, ge=0, description="Days dropped between training and validation parts.")
    trained_by: str = Field(default="", description="Who trains; defaults to the OS user running the step.")


class SignalsConfig(dg.Config):
    """Which registered model serves the live signals."""

    model_name: str | None = Field(
        default=None, description="Registered model whose champion scores; unset: the model the assets were built for.")


def _single_graph_hash(manifests: Iterable[Manifest], what: str, node: str) -> str:
    hashes = {m.graph_hash for m in manifests}
    if len(hashes) != 1 or None in hashes:
        raise DataError(
            f"{what} spans partitions computed by different feature code (graph hashes {sorted(map(str, hashes))}); "
            f"rematerialize {node} over the whole window with one version of the code"
        )
    return hashes.pop()  # type: ignore[return-value]


def graph_seeds(graph: FeatureGraph) -> dict[str, int]:
    """Every seed declared in the feature graph, as ``node.param`` (e.g. ``market_bars.seed``)."""
    return {f"{n.key}.{name}": int(n.spec.params[name]) for n in graph for name in n.spec.seed_params}


class _Wiring:
    """The user's nodes and model family, checked once at definition time."""

    def __init__(self, graph: FeatureGraph, *, model_input: str, label: str, label_column: str, training_node: str,
                 trainer: Trainer, model_name: str, feature_columns: Sequence[str] | None,
                 translator: FeatureAssetsTranslator, calendar: Calendar) -> None:
        for role, key in (("model_input", model_input), ("label", label), ("training_node", training_node)):
            if key not in graph:
                raise GraphError(f"build_model_assets: {role}={key!r} is not a node of the graph; "
                                 f"its nodes are {sorted(n.key for n in graph)}")
        if graph[training_node].spec.partitioned:
            raise GraphError(f"build_model_assets: training_node {training_node!r} is partitioned; it must be a "
                             "windowed node (@feature(partitioned=False)) that reads a window of features and labels")
        for role, key in (("model_input", model_input), ("label", label)):
            if not graph[key].spec.partitioned:
                raise GraphError(f"build_model_assets: {role} {key!r} must be a partitioned node")
        missing = {model_input, label} - set(graph[training_node].spec.upstream_keys)
        if missing:
            raise GraphError(f"build_model_assets: training_node {training_node!r} does not read {sorted(missing)}; "
                             "the training set must be built from the model input and the label")
        if not isinstance(trainer, Trainer):
            raise ConfigurationError(f"trainer must implement ml_platform.Trainer (format_id, fit, params), "
                                     f"got {type(trainer).__name__}")
        if not isinstance(label_column, str) or not label_column or label_column in graph.keys.columns:
            raise ConfigurationError(f"label_column must name the label node's value column, got {label_column!r}")
        if feature_columns is not None:
            feature_columns = tuple(feature_columns)
            if not feature_columns or label_column in feature_columns or set(feature_columns) & set(graph.keys.columns):
                raise ConfigurationError(f"feature_columns {feature_columns!r} must be non-empty and name neither "
                                         f"a key column ({graph.keys}) nor the label {label_column!r}")
        self.graph, self.trainer, self.model_name = graph, trainer, model_name
        self.model_input, self.label, self.label_column, self.training_node = model_input, label, label_column, training_node
        self.feature_columns = feature_columns
        self.translator, self.calendar = translator, calendar
        self.keys = graph.keys

    def asset_key(self, name: str) -> dg.AssetKey:
        return dg.AssetKey([*self.translator.key_prefix, name])

    def node_key(self, node: str) -> dg.AssetKey:
        return self.translator.get_asset_key(self.graph[node])

    def store_key(self, node: str) -> str:
        return self.translator.store_key(self.graph[node])

    def columns_of(self, frame: pl.DataFrame) -> tuple[str, ...]:
        if self.feature_columns is not None:
            return self.feature_columns
        return tuple(c for c in frame.columns if c not in self.keys.columns and c != self.label_column)


def _trained_model(w: _Wiring) -> dg.AssetsDefinition:
    @dg.asset(key=w.asset_key(TRAINED_MODEL), deps=[w.node_key(w.training_node)], group_name=w.translator.group_name
              or "models", kinds={"mlflow"}, required_resource_keys={"feature_store", "model_registry"},
              description="Train, validate and register a model version with its deploy contract.")
    @platform_failures
    def trained_model(context: dg.AssetExecutionContext, config: TrainingRunConfig) -> dg.MaterializeResult:
        model_name = config.model_name or w.model_name
        store = context.resources.feature_store.get_store()
        stored = store.read(w.store_key(w.training_node), None)
        manifest = stored.manifest
        input_key = w.store_key(w.model_input)
        inputs = [u for u in manifest.upstream if u.key == input_key]
        if not inputs:
            raise DataError(
                f"the stored training set ({manifest.label}) records no {input_key} partitions it was built "
                f"from, so its feature graph cannot be established; rematerialize {w.training_node} with a window"
            )
        feature_graph_hash = _single_graph_hash(
            (store.manifest(input_key, u.partition) for u in inputs), "the training set", w.model_input)
        current = w.graph[w.model_input].graph_hash
        if feature_graph_hash != current:
            raise DataError(
                f"the training set's {w.model_input} partitions were computed by feature graph {feature_graph_hash}, "
                f"but the code now defines {current}: rematerialize the features and the training set with the "
                "current code before training"
            )
        frame = stored.frame
        missing = [c for c in (*w.keys.columns, w.label_column) if c not in frame.columns]
        if missing:
            raise DataError(f"the training set lacks {missing} (it has {frame.columns}); the graph's keys are "
                            f"({w.keys}) and the label column is {w.label_column!r}")
        columns = w.columns_of(frame)
        model_inputs = ModelInputs(keys=w.keys, feature_columns=columns, label_column=w.label_column, seed=config.seed)
        outcome = train_and_validate(frame, w.trainer, model_inputs, validation_fraction=config.validation_fraction,
                                     embargo_days=config.embargo_days)
        root = w.graph.project_root
        # read now, not cached: the commit, the dirty flag and the diff must describe the same tree
        tree = working_tree_diff(root) if root is not None else None
        holding = tree.files_holding(environment_secrets()) if tree is not None and tree.dirty else []
        if holding:  # the diff is stored in MLflow beside the model: a secret must not travel with it
            raise ConfigurationError(
                f"the uncommitted changes of {root} hold a secret of this process's environment (a password, key "
                f"or token) in {holding}: add those files to .gitignore or remove them, then train again")
        # no checkout (an image): the image's build provenance names the commit; a checkout must agree with it
        git = recorded_git(GitState(tree.commit, tree.dirty) if tree else GitState(None, False), store.provenance,
                           require_commit=store.require_commit,
                           where=str(root) if root is not None else "(the graph names no project root)")
        if tree is None and git.dirty:
            raise ProvenanceError(
                f"the image was built from a tree with uncommitted changes at {git.commit} (ML_PLATFORM_GIT_DIRTY=1) "
                "and holds no diff of them: a model trained in it could never be reproduced. Build the image from "
                "a clean commit, or train from a checkout (its diff is recorded)")
        env = capture_environment(root)
        contract = DeployContract(
            model_name=model_name, model_version=None, feature_graph_hash=feature_graph_hash,
            feature_schema=FeatureSchema.from_polars(frame.select(*w.keys.columns, *columns)),
            training_window=outcome.training_window, validation_window=outcome.validation_window,
            training_set_data_hash=manifest.data_hash, model_sha256=outcome.model.sha256,
            model_format=outcome.model.format_id, keys=w.keys,
            environment_hash=env.hash, environment_lock=env.to_dict(),
            seeds={**graph_seeds(w.graph), **dict(manifest.seeds), "training": config.seed},
            git_commit=git.commit, git_dirty=git.dirty, trained_by=config.trained_by or getpass.getuser(),
            created_at=dt.datetime.now(dt.UTC),
        )
        params = {**w.trainer.params(), "model_format": outcome.model.format_id, "feature_columns": list(columns),
                  "label_column": w.label_column, "seed": config.seed,
                  "validation_fraction": config.validation_fraction, "embargo_days": config.embargo_days,
                  "training_set_window": str(manifest.window), "dagster_run_id": context.run.run_id}
        registry = context.resources.model_registry.get_registry()
        registered = registry.register(model_name=model_name, model=outcome.model, contract=contract, params=params,
                                       metrics=outcome.metrics(), code_snapshot=code_snapshot(w.graph),
                                       code_hashes=code_hashes(w.graph),
                                       git_diff=tree.patch if tree is not None and tree.dirty else None,
                                       training_set_manifest_hash=manifest.manifest_hash,
                                       image_digest=store.provenance.image_digest)
        context.log.info(f"registered {model_name} version {registered.version} (run {registered.run_id})")
        return dg.MaterializeResult(metadata={
            metadata.MODEL_NAME: model_name,
            metadata.MODEL_VERSION: registered.version,
            metadata.MODEL_FORMAT: outcome.model.format_id,
            metadata.MLFLOW_RUN_ID: registered.run_id,
            metadata.MODEL_URI: registered.model_uri,
            metadata.FEATURE_GRAPH_HASH: feature_graph_hash,
            metadata.MODEL_SHA256: outcome.model.sha256,
            metadata.TRAINING_WINDOW: str(outcome.training_window),
            metadata.VALIDATION_WINDOW: str(outcome.validation_window),
            metadata.TRACKING_URI: redacted_url(context.resources.model_registry.tracking_uri),
            **{f"{metadata.VALIDATION_PREFIX}{k}": v for k, v in outcome.metrics().items()},
        })

    return trained_model


def _live_signals(w: _Wiring) -> dg.AssetsDefinition:
    keys = w.keys

    @dg.asset(key=w.asset_key(LIVE_SIGNALS), deps=[w.node_key(w.model_input)], partitions_def=w.calendar.partitions_def,
              group_name=w.translator.group_name or "live", kinds={"polars"},
              backfill_policy=dg.BackfillPolicy.single_run(), required_resource_keys={"feature_store", "model_registry"},
              description="The champion's signals, produced only after its contract matched the features it scores.")
    @platform_failures
    def live_signals(context: dg.AssetExecutionContext, config: SignalsConfig) -> dg.Output[pl.DataFrame]:
        model_name = config.model_name or w.model_name
        window = window_of(context, w.calendar)
        store = context.resources.feature_store.get_store()
        partitions = context.partition_keys
        frame, manifests = store.read_many(w.store_key(w.model_input), partitions, window=window)
        graph_hash = _single_graph_hash(manifests, f"the live window {window}", w.model_input)
        live = LiveFeatureStream(feature_graph_hash=graph_hash, feature_schema=FeatureSchema.from_polars(frame),
                                 keys=keys)
        registry: ModelRegistryResource = context.resources.model_registry
        champion = registry.load_champion(model_name, live)   # raises ContractViolation: no signal at all
        scored = champion.model.predict(frame) if frame.height else \
            frame.select(*keys.columns).with_columns(score=pl.lit(None, dtype=pl.Float64))
        signals = to_signals(scored, keys).with_columns(
            pl.lit(model_name).alias("model_name"), pl.lit(champion.version).alias("model_version"))
        return dg.Output(signals, metadata={
            metadata.MODEL_NAME: model_name,
            metadata.MODEL_VERSION: champion.version,
            metadata.FEATURE_GRAPH_HASH: graph_hash,
            metadata.WINDOW: str(window),
            metadata.TIME_COLUMN: keys.time,
            metadata.PROJECT_ROOT: w.graph.project_root,
            metadata.ENVIRONMENT_DIFFERENCES: list(champion.check.environment_differences),
            # which version scored each day, in the manifests: the days a version served are found from the store
            metadata.PARAMS: {"model_name": model_name, "model_version": champion.version},
            metadata.ROW_COUNT: signals.height,
            # the exact feature-matrix versions scored, per day in the manifests: a trace or a reproduction
            # follows them by data hash, whatever was rematerialized since
            metadata.UPSTREAM: [{"key": m.asset_key, "partition": m.partition, "data_hash": m.data_hash} for m in manifests],
        })

    return live_signals


def _live_pnl(w: _Wiring) -> dg.AssetsDefinition:
    keys = w.keys

    @dg.asset(key=w.asset_key(LIVE_PNL), ins={"signals": dg.AssetIn(w.asset_key(LIVE_SIGNALS)),
                                               "labels": dg.AssetIn(w.node_key(w.label))},
              partitions_def=w.calendar.partitions_def, group_name=w.translator.group_name or "live", kinds={"polars"},
              backfill_policy=dg.BackfillPolicy.single_run(),
              description="PnL of the live signals against the realized label (null label: not yet known).")
    @platform_failures
    def live_pnl(context: dg.AssetExecutionContext, signals: pl.DataFrame, labels: pl.DataFrame) -> dg.Output[pl.DataFrame]:
        pnl = daily_pnl(signals, labels.select(*keys.columns, w.label_column), label_column=w.label_column, keys=keys)
        return dg.Output(pnl, metadata={metadata.WINDOW: str(window_of(context, w.calendar)),
                                        metadata.TIME_COLUMN: keys.time,
                                        metadata.PROJECT_ROOT: w.graph.project_root,
                                        metadata.TOTAL_PNL: float(pnl["pnl"].sum() or 0.0),
                                        metadata.ROW_COUNT: pnl.height})

    return live_pnl


def build_model_assets(
    graph: FeatureGraph,
    *,
    model_input: str,
    label: str,
    label_column: str,
    training_node: str,
    trainer: Trainer,
    model_name: str,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    feature_columns: Sequence[str] | None = None,
    key_prefix: str | Sequence[str] = (),
    group_name: str | None = None,
) -> list[dg.AssetsDefinition]:
    """Training, live signal and live PnL assets for a team's graph and model family.

    Args:
        graph: the feature graph (the same one given to ``build_feature_assets``).
        model_input: the partitioned node whose frame the model scores (keys + feature columns); its
            graph hash is the model's feature graph hash in the deploy contract.
        label: the partitioned node holding the realized target (a forward return).
        label_column: the label node's value column.
        training_node: the windowed node joining model input and label over a window.
        trainer: the model family and its hyper-parameters (``RidgeTrainer(...)``, ``SklearnTrainer(...)``).
        model_name: the registered model these assets train and serve by default.
        partitions_def: the graph's calendar (the one given to ``build_feature_assets``).
        feature_columns: the model's inputs, in order; default every non-key column of the training set
            but the label.
        key_prefix / group_name: as given to ``build_feature_assets`` (the assets live under the same prefix).

    Raises:
        GraphError / ConfigurationError: a named node is missing or has the wrong role, or the trainer is
            not a :class:`~ml_platform.models.protocol.Trainer`.
    """
    translator = FeatureAssetsTranslator(key_prefix, group_name)
    wiring = _Wiring(graph, model_input=model_input, label=label, label_column=label_column,
                     training_node=training_node, trainer=trainer, model_name=model_name,
                     feature_columns=feature_columns, translator=translator, calendar=Calendar(partitions_def))
    with warnings.catch_warnings():  # BackfillPolicy.single_run is beta; one run per backfilled range is the point
        warnings.simplefilter("ignore", dg.BetaWarning)
        return [_trained_model(wiring), _live_signals(wiring), _live_pnl(wiring)]

