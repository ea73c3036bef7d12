"""ml_platform: a Dagster plugin for quant research MLOps.

Everything a project needs is importable from here (``from ml_platform import FeatureGraph, feature``).
Names are loaded on first use, so ``import ml_platform`` imports neither Dagster nor MLflow until a name
that needs them is touched. The house is drawn in docs/architecture.md.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import TYPE_CHECKING, Any

try:
    __version__ = importlib.metadata.version("ml-platform")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    # feature graph
    "feature": "ml_platform.features.spec",
    "Upstream": "ml_platform.features.spec",
    "FeatureSpec": "ml_platform.features.spec",
    "FeatureGraph": "ml_platform.features.graph",
    "HashedFeature": "ml_platform.features.graph",
    "FrameKeys": "ml_platform.keys",
    "DataWindow": "ml_platform.window",
    # Dagster assets, resources and the deployment
    "build_feature_assets": "ml_platform.features.assets",
    "FeatureAssetsTranslator": "ml_platform.features.assets",
    "build_model_assets": "ml_platform.model_assets",
    "TrainingRunConfig": "ml_platform.model_assets",
    "SignalsConfig": "ml_platform.model_assets",
    "PinnedIOManager": "ml_platform.io.manager",
    "PinnedStoreResource": "ml_platform.io.manager",
    "PinnedStore": "ml_platform.io.store",
    "WriteFacts": "ml_platform.io.manifest",
    "verify_store": "ml_platform.io.verify",
    # reproducing a registered model bit-exactly, with a certificate
    "reproduce_version": "ml_platform.reproduce.service",
    "Reproduction": "ml_platform.reproduce.service",
    "ModelRegistryResource": "ml_platform.champions.resource",
    "Settings": "ml_platform.settings",
    "build_definitions": "ml_platform.deployment",
    "platform_resources": "ml_platform.deployment",
    "check_asset_keys": "ml_platform.deployment",
    "Lifecycle": "ml_platform.lifecycle",
    "build_promotion_job": "ml_platform.promotion.job",
    "build_rollback_job": "ml_platform.promotion.rollback_job",
    "run_refusal": "ml_platform.promotion.runs",
    "PromotionPolicy": "ml_platform.promotion.policy",
    "ChampionService": "ml_platform.champions.service",
    "ChampionLedger": "ml_platform.champions",
    "EnvironmentPolicy": "ml_platform.environment.diff",
    # monitoring: infra pages on-call, alpha drift goes to research
    "build_monitoring": "ml_platform.monitoring.definitions",
    "Monitoring": "ml_platform.monitoring.definitions",
    "build_daily_schedule": "ml_platform.monitoring.schedule",
    "MarketSession": "ml_platform.monitoring.infra",
    "InfraSLO": "ml_platform.monitoring.infra",
    "DriftPolicy": "ml_platform.monitoring.drift",
    "InfraIncident": "ml_platform.monitoring.alerts",
    "AlphaDriftFinding": "ml_platform.monitoring.alerts",
    "PagerRoute": "ml_platform.monitoring.routes",
    "ResearchRoute": "ml_platform.monitoring.routes",
    # models
    "SignalModel": "ml_platform.models.protocol",
    "Trainer": "ml_platform.models.protocol",
    "ModelInputs": "ml_platform.models.protocol",
    "register_model_format": "ml_platform.models.protocol",
    "load_model_bytes": "ml_platform.models.protocol",
    "RidgeTrainer": "ml_platform.models.training",
    "LinearSignalModel": "ml_platform.models.model",
    "SklearnTrainer": "ml_platform.models.sklearn",
    "SklearnSignalModel": "ml_platform.models.sklearn",
    "to_signals": "ml_platform.models.signals",
    "backtest": "ml_platform.models.backtest",
    "BacktestReport": "ml_platform.models.backtest",
    # registry and the deploy contract
    "ModelRegistry": "ml_platform.registry.store",
    "DeployContract": "ml_platform.registry.contract",
    "LiveFeatureStream": "ml_platform.registry.contract",
    "ContractCheck": "ml_platform.registry.contract",
    "check_contract": "ml_platform.registry.contract",
    "FeatureSchema": "ml_platform.registry.schema",
    "load_champion": "ml_platform.champions.serving",
    "LoadedChampion": "ml_platform.champions.serving",
    # tracing a live signal back to what made it
    "trace_signal": "ml_platform.trace.service",
    "TraceRecord": "ml_platform.trace.record",
    "trace_summary": "ml_platform.trace.report",
    "write_trace_report": "ml_platform.trace.report",
    # errors
    "MLPlatformError": "ml_platform.errors",
    "ConfigurationError": "ml_platform.errors",
    "WindowError": "ml_platform.errors",
    "PartitionError": "ml_platform.errors",
    "GraphError": "ml_platform.errors",
    "DataError": "ml_platform.errors",
    "IntegrityError": "ml_platform.errors",
    "ManifestError": "ml_platform.errors",
    "ManifestTampered": "ml_platform.errors",
    "StorageFull": "ml_platform.errors",
    "StorageUnavailable": "ml_platform.errors",
    "InstanceDamaged": "ml_platform.errors",
    "EnvironmentMismatch": "ml_platform.errors",
    "RegistryError": "ml_platform.errors",
    "ModelNotFound": "ml_platform.errors",
    "ContractViolation": "ml_platform.errors",
    "NonDeterministicModel": "ml_platform.errors",
    "MonitoringError": "ml_platform.errors",
    "MisroutedAlert": "ml_platform.errors",
    "DeliveryFailed": "ml_platform.errors",
    "TraceError": "ml_platform.errors",
    "SignalNotFound": "ml_platform.errors",
    "NoChampionInForce": "ml_platform.errors",
    "TraceBroken": "ml_platform.errors",
}

__all__ = [
    "AlphaDriftFinding",
    "BacktestReport",
    "ChampionLedger",
    "ChampionService",
    "ConfigurationError",
    "ContractCheck",
    "ContractViolation",
    "DataError",
    "DataWindow",
    "DeliveryFailed",
    "DeployContract",
    "DriftPolicy",
    "EnvironmentMismatch",
    "EnvironmentPolicy",
    "FeatureAssetsTranslator",
    "FeatureGraph",
    "FeatureSchema",
    "FeatureSpec",
    "FrameKeys",
    "GraphError",
    "HashedFeature",
    "InfraIncident",
    "InfraSLO",
    "InstanceDamaged",
    "IntegrityError",
    "Lifecycle",
    "LinearSignalModel",
    "LiveFeatureStream",
    "LoadedChampion",
    "MLPlatformError",
    "ManifestError",
    "ManifestTampered",
    "MarketSession",
    "MisroutedAlert",
    "ModelInputs",
    "ModelNotFound",
    "ModelRegistry",
    "ModelRegistryResource",
    "Monitoring",
    "MonitoringError",
    "NoChampionInForce",
    "NonDeterministicModel",
    "PagerRoute",
    "PartitionError",
    "PinnedIOManager",
    "PinnedStore",
    "PinnedStoreResource",
    "PromotionPolicy",
    "RegistryError",
    "Reproduction",
    "ResearchRoute",
    "RidgeTrainer",
    "Settings",
    "SignalModel",
    "SignalNotFound",
    "SignalsConfig",
    "SklearnSignalModel",
    "SklearnTrainer",
    "StorageFull",
    "StorageUnavailable",
    "TraceBroken",
    "TraceError",
    "TraceRecord",
    "Trainer",
    "TrainingRunConfig",
    "Upstream",
    "WindowError",
    "WriteFacts",
    "__version__",
    "backtest",
    "build_daily_schedule",
    "build_definitions",
    "build_feature_assets",
    "build_model_assets",
    "build_monitoring",
    "build_promotion_job",
    "build_rollback_job",
    "check_asset_keys",
    "check_contract",
    "feature",
    "load_champion",
    "load_model_bytes",
    "platform_resources",
    "register_model_format",
    "reproduce_version",
    "run_refusal",
    "to_signals",
    "trace_signal",
    "trace_summary",
    "verify_store",
    "write_trace_report",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from ml_platform.champions import ChampionLedger
    from ml_platform.champions.resource import ModelRegistryResource
    from ml_platform.champions.service import ChampionService
    from ml_platform.champions.serving import LoadedChampion, load_champion
    from ml_platform.deployment import build_definitions, check_asset_keys, platform_resources
    from ml_platform.environment.diff import EnvironmentPolicy
    from ml_platform.errors import (
        ConfigurationError,
        ContractViolation,
        DataError,
        DeliveryFailed,
        EnvironmentMismatch,
        GraphError,
        InstanceDamaged,
        IntegrityError,
        ManifestError,
        ManifestTampered,
        MisroutedAlert,
        MLPlatformError,
        ModelNotFound,
        MonitoringError,
        NoChampionInForce,
        NonDeterministicModel,
        PartitionError,
        RegistryError,
        SignalNotFound,
        StorageFull,
        StorageUnavailable,
        TraceBroken,
        TraceError,
        WindowError,
    )
    from ml_platform.features.assets import FeatureAssetsTranslator, build_feature_assets
    from ml_platform.features.graph import FeatureGraph, HashedFeature
    from ml_platform.features.spec import FeatureSpec, Upstream, feature
    from ml_platform.io.manager import PinnedIOManager, PinnedStoreResource
    from ml_platform.io.manifest import WriteFacts
    from ml_platform.io.store import PinnedStore
    from ml_platform.io.verify import verify_store
    from ml_platform.keys import FrameKeys
    from ml_platform.lifecycle import Lifecycle
    from ml_platform.model_assets import SignalsConfig, TrainingRunConfig, build_model_assets
    from ml_platform.models.backtest import BacktestReport, backtest
    from ml_platform.models.model import LinearSignalModel
    from ml_platform.models.protocol import (
        ModelInputs,
        SignalModel,
        Trainer,
        load_model_bytes,
        register_model_format,
    )
    from ml_platform.models.signals import to_signals
    from ml_platform.models.sklearn import SklearnSignalModel, SklearnTrainer
    from ml_platform.models.training import RidgeTrainer
    from ml_platform.monitoring.alerts import AlphaDriftFinding, InfraIncident
    from ml_platform.monitoring.definitions import Monitoring, build_monitoring
    from ml_platform.monitoring.drift import DriftPolicy
    from ml_platform.monitoring.infra import InfraSLO, MarketSession
    from ml_platform.monitoring.routes import PagerRoute, ResearchRoute
    from ml_platform.monitoring.schedule import build_daily_schedule
    from ml_platform.promotion.job import build_promotion_job
    from ml_platform.promotion.policy import PromotionPolicy
    from ml_platform.promotion.rollback_job import build_rollback_job
    from ml_platform.promotion.runs import run_refusal
    from ml_platform.registry.contract import ContractCheck, DeployContract, LiveFeatureStream, check_contract
    from ml_platform.registry.schema import FeatureSchema
    from ml_platform.registry.store import ModelRegistry
    from ml_platform.reproduce.service import Reproduction, reproduce_version
    from ml_platform.settings import Settings
    from ml_platform.trace.record import TraceRecord
    from ml_platform.trace.report import trace_summary, write_trace_report
    from ml_platform.trace.service import trace_signal
    from ml_platform.window import DataWindow


if set(__all__) != {"__version__", *_EXPORTS}:  # pragma: no cover - a maintenance slip, caught on import
    raise ImportError("ml_platform.__all__ and its export table disagree")


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ml_platform' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
