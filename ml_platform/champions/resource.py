"""The Dagster resource of the model registry: a thin factory for :class:`ModelRegistry`.

This is the only registry module that imports Dagster.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from ml_platform.champions.serving import LoadedChampion, load_champion
from ml_platform.dagster_boundary import resource_settings
from ml_platform.environment import EnvironmentPolicy
from ml_platform.registry.contract import LiveFeatureStream
from ml_platform.registry.store import DEFAULT_BUSY_TIMEOUT_SECONDS, ModelRegistry

__all__ = ["ModelRegistryResource"]


class ModelRegistryResource(dg.ConfigurableResource):
    """Connects assets and ops to the MLflow model registry.

    Example:
        .. code-block:: python

            import dagster as dg
            from ml_platform.champions.resource import ModelRegistryResource

            defs = dg.Definitions(
                assets=[live_signals],
                resources={
                    "model_registry": ModelRegistryResource(
                        tracking_uri="sqlite:///.ml_platform/mlflow/mlflow.db",
                        environment_policy="strict",
                    )
                },
            )

            @dg.asset
            def live_signals(model_registry: ModelRegistryResource, live_features): ...
    """

    tracking_uri: str = Field(
        default="sqlite:///.ml_platform/mlflow/mlflow.db",
        description="MLflow tracking URI: a SQLite file (embedded default) or a PostgreSQL / HTTP MLflow server.",
    )
    registry_uri: str | None = Field(
        default=None,
        description="MLflow model registry URI; defaults to the tracking URI.",
    )
    artifact_location: str | None = Field(
        default=None,
        description="Artefact root (path or URI) for experiments the registry creates; default: next to a "
        "SQLite database, else the tracking server's default.",
    )
    ledger_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the champion ledger; default: the tracking URI when it is a SQL store "
        "(required for an HTTP MLflow server: its database, or set ML_PLATFORM_LEDGER_URL).",
    )
    environment_policy: EnvironmentPolicy = Field(
        default=EnvironmentPolicy.WARN,
        description="What loading the champion does when the running environment differs from the one it was "
        "trained in: STRICT refuses, WARN logs, OFF skips the comparison. Python code may pass 'strict', 'warn' "
        "or 'off'.",
    )
    busy_timeout_seconds: float = Field(
        default=DEFAULT_BUSY_TIMEOUT_SECONDS, gt=0,
        description="How long a call waits for a busy (locked) SQLite registry before failing with REGISTRY_UNAVAILABLE.",
    )

    def __init__(self, **data: Any) -> None:
        super().__init__(**resource_settings(type(self), data))  # a bad policy: ConfigurationError naming it

    def get_registry(self) -> ModelRegistry:
        """A :class:`ModelRegistry` on the configured URIs."""
        return ModelRegistry(self.tracking_uri, self.registry_uri, self.artifact_location,
                             busy_timeout_seconds=self.busy_timeout_seconds, ledger_url=self.ledger_url)

    def load_champion(self, model_name: str, live: LiveFeatureStream) -> LoadedChampion:
        """Load ``model_name``'s champion of record (the ledger head) through its contract check."""
        return load_champion(self.get_registry(), model_name, live, policy=self.environment_policy)
