"""The MLflow-backed model registry and the deploy contract checked at the serving boundary.

Layers, from pure to integrated:

* :mod:`~ml_platform.registry.schema` and :mod:`~ml_platform.registry.contract` (pure): feature
  schemas, the :class:`DeployContract` and :func:`check_contract`;
* :mod:`~ml_platform.registry.entities` and :mod:`~ml_platform.registry.registration` (pure): the
  value objects the registry returns, the tags it writes, and the registration argument checks;
* :mod:`~ml_platform.registry.store`: :class:`ModelRegistry`, the validating thin client over MLflow,
  with :mod:`~ml_platform.registry.boundary` (MLflow and database errors re-raised),
  :mod:`~ml_platform.registry.database` (bounded waits on a busy SQLite store),
  :mod:`~ml_platform.registry.artifacts` (run artefacts), :mod:`~ml_platform.registry.pyfunc` (the MLflow
  pyfunc flavour), :mod:`~ml_platform.registry.repair` (what interrupted registrations left) and
  :mod:`~ml_platform.crashpoints` (the crash-test seam);
* :mod:`~ml_platform.registry.champion`: :func:`load_champion`, the contract-checked way to serve;
* :mod:`~ml_platform.registry.resource`: the Dagster resource (the only module importing Dagster);
* :mod:`~ml_platform.registry.commands`: the ``ml-platform models`` and ``ml-platform registry`` CLI groups.

The MLflow-backed names are imported lazily, so the pure contract layer stays cheap to import.

MLflow's anonymous usage telemetry is switched off (``MLFLOW_DISABLE_TELEMETRY``), and so are its
artefact download progress bars, unless the process already set those variables, when a
:class:`ModelRegistry` first connects or a pyfunc model is saved (see
:func:`~ml_platform.registry.boundary.quiet_mlflow`); importing this package changes nothing.

Example:
    >>> from ml_platform.registry import ModelRegistry, load_champion  # doctest: +SKIP
    >>> registry = ModelRegistry("sqlite:///.ml_platform/mlflow/mlflow.db")  # doctest: +SKIP
    >>> champion = load_champion(registry, "alpha_ridge", live, policy="strict")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ml_platform.registry.contract import (
    CONTRACT_SCHEMA_VERSION,
    ContractCheck,
    DeployContract,
    LiveFeatureStream,
    check_contract,
)
from ml_platform.registry.schema import FeatureField, FeatureSchema, normalize_type

if TYPE_CHECKING:
    from ml_platform.registry.champion import LoadedChampion, load_champion
    from ml_platform.registry.champions import ChampionService
    from ml_platform.registry.entities import ModelSummary, RegisteredVersion, VersionDetails
    from ml_platform.registry.repair import RepairFinding, RepairReport
    from ml_platform.registry.resource import ModelRegistryResource
    from ml_platform.registry.store import ModelRegistry

__all__ = [
    "CONTRACT_SCHEMA_VERSION",
    "ChampionService",
    "ContractCheck",
    "DeployContract",
    "FeatureField",
    "FeatureSchema",
    "LiveFeatureStream",
    "LoadedChampion",
    "ModelRegistry",
    "ModelRegistryResource",
    "ModelSummary",
    "RegisteredVersion",
    "RepairFinding",
    "RepairReport",
    "VersionDetails",
    "check_contract",
    "load_champion",
    "normalize_type",
]

_LAZY = {
    "LoadedChampion": "ml_platform.registry.champion",
    "load_champion": "ml_platform.registry.champion",
    "ModelSummary": "ml_platform.registry.entities",
    "RegisteredVersion": "ml_platform.registry.entities",
    "VersionDetails": "ml_platform.registry.entities",
    "ModelRegistryResource": "ml_platform.registry.resource",
    "ChampionService": "ml_platform.registry.champions",
    "ModelRegistry": "ml_platform.registry.store",
    "RepairFinding": "ml_platform.registry.repair",
    "RepairReport": "ml_platform.registry.repair",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ml_platform.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
