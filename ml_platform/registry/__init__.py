"""The MLflow-backed model registry: register, load, the deploy contract, the champion alias mirror.

The pure layer (:mod:`~ml_platform.registry.schema`, :mod:`~ml_platform.registry.contract`,
:mod:`~ml_platform.registry.entities`, :mod:`~ml_platform.registry.registration`) is imported here;
:class:`~ml_platform.registry.store.ModelRegistry`, the MLflow client, lives in its own module so that
importing the contract does not import MLflow. The champion of record is :mod:`ml_platform.champions`.
"""

from __future__ import annotations

from ml_platform.registry.contract import (
    CONTRACT_SCHEMA_VERSION,
    ContractCheck,
    DeployContract,
    LiveFeatureStream,
    check_contract,
)
from ml_platform.registry.schema import FeatureField, FeatureSchema, normalize_type

__all__ = [
    "CONTRACT_SCHEMA_VERSION",
    "ContractCheck",
    "DeployContract",
    "FeatureField",
    "FeatureSchema",
    "LiveFeatureStream",
    "check_contract",
    "normalize_type",
]
