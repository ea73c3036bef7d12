"""Deployment settings: where the embedded default keeps things, and the production overrides.

A frozen value object; :mod:`ml_platform.definitions` is the only module that reads environment
variables to build it (``Settings.from_env``), everything else receives it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ml_platform.environment import EnvironmentPolicy
from ml_platform.errors import ConfigurationError
from ml_platform.market.sources import SOURCES

DEPLOYMENTS = ("local", "production")
POLICIES = tuple(policy.value for policy in EnvironmentPolicy)


@dataclass(frozen=True)
class Settings:
    """Where the platform stores features, runs and models, and how strictly it checks environments.

    Attributes:
        deployment: ``local`` (embedded: SQLite, local files under ``home``) or ``production``.
        home: root folder of the embedded default (``.ml_platform`` in the working directory).
        storage: base directory or fsspec URI of the PinnedIOManager's Parquet + manifests.
        tracking_uri: MLflow tracking/registry URI (SQLite file by default, PostgreSQL in production).
        artifact_location: MLflow artefact root for new experiments.
        environment_policy: ``warn`` on the embedded default, ``strict`` in production.
        model_name: the registered model the live signal asset serves.
        market_source: ``sample`` (real daily prices of AAPL, FB, GOOG, IBM, MSFT, 2000-03..2013-03, bundled
            in bokeh-sampledata) or ``synthetic`` (seeded 40-instrument universe, any day from 2000).
    """

    deployment: str
    home: Path
    storage: str
    tracking_uri: str
    artifact_location: str
    environment_policy: str
    model_name: str = "alpha_ridge"
    market_source: str = "sample"

    def __post_init__(self) -> None:
        if self.deployment not in DEPLOYMENTS:
            raise ConfigurationError(f"deployment {self.deployment!r} is not one of {DEPLOYMENTS}")
        if self.market_source not in SOURCES:
            raise ConfigurationError(f"market source {self.market_source!r} is not one of {SOURCES}")
        if self.environment_policy not in POLICIES:
            raise ConfigurationError(
                f"environment policy {self.environment_policy!r} is not one of {POLICIES}"
            )

    @classmethod
    def local(cls, home: str | os.PathLike[str] = ".ml_platform", **overrides: str) -> Settings:
        """The embedded default rooted at ``home``."""
        root = Path(home).resolve()
        values = {
            "deployment": "local",
            "home": root,
            "storage": str(root / "storage"),
            "tracking_uri": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            "artifact_location": str(root / "mlflow" / "artifacts"),
            "environment_policy": "warn",
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read ``ML_PLATFORM_*`` variables; anything unset falls back to the embedded default."""
        deployment = env.get("ML_PLATFORM_DEPLOYMENT", "local")
        base = cls.local(env.get("ML_PLATFORM_HOME", ".ml_platform"))
        prod = deployment == "production"
        if prod:
            missing = [v for v in ("ML_PLATFORM_STORAGE", "ML_PLATFORM_MLFLOW_TRACKING_URI",
                                   "ML_PLATFORM_MLFLOW_ARTIFACTS") if not env.get(v)]
            if missing:
                raise ConfigurationError(
                    f"ML_PLATFORM_DEPLOYMENT=production needs {', '.join(missing)}; "
                    "see deployments/production/README.md"
                )
        return cls(
            deployment=deployment,
            home=base.home,
            storage=env.get("ML_PLATFORM_STORAGE", base.storage),
            tracking_uri=env.get("ML_PLATFORM_MLFLOW_TRACKING_URI", base.tracking_uri),
            artifact_location=env.get("ML_PLATFORM_MLFLOW_ARTIFACTS", base.artifact_location),
            environment_policy=env.get("ML_PLATFORM_ENV_POLICY", "strict" if prod else "warn"),
            model_name=env.get("ML_PLATFORM_MODEL_NAME", base.model_name),
            market_source=env.get("ML_PLATFORM_MARKET_SOURCE", base.market_source),
        )
