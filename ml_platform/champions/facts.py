"""What a rollback and reconcile must know of a version: exists, status, feature graph; read without MLflow if possible.

MLflow's own version rows are read through the ledger's engine whenever the ledger's database holds
them (the embedded SQLite file, a PostgreSQL tracking store, or the database behind an MLflow server
given as the ledger URL), so a rollback succeeds while the MLflow client is down. Only when it holds
no MLflow tables is the MLflow client asked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ml_platform.champions.ledger import ChampionLedger
from ml_platform.compat import holds_mlflow_versions, mlflow_version_tags
from ml_platform.errors import ModelNotFound
from ml_platform.registry.entities import FEATURE_GRAPH_HASH_TAG, STATUS_TAG
from ml_platform.registry.store import ModelRegistry

__all__ = ["VersionFacts", "VersionFactsReader"]


@dataclass(frozen=True)
class VersionFacts:
    """What a rollback needs to know about a version, read from MLflow's rows or its client.

    Attributes:
        exists: The version row exists and is not deleted.
        status: Its ``ml_platform.status`` tag (``ready`` when usable).
        feature_graph_hash: The feature graph its features need (its contract's, tagged at registration).
        source: ``database`` (MLflow's rows read directly) or ``mlflow`` (the MLflow client).
    """

    exists: bool
    status: str | None
    feature_graph_hash: str | None
    source: str


class VersionFactsReader:
    """Reads :class:`VersionFacts` for one ledger and registry (whether MLflow's rows are local is asked once)."""

    def __init__(self, ledger: ChampionLedger, registry: ModelRegistry) -> None:
        self.ledger = ledger
        self.registry = registry
        self._has_mlflow_tables: bool | None = None
        self._lock = threading.Lock()

    def read(self, model: str, version: str) -> VersionFacts:
        """Existence, status and feature graph of a version: MLflow's rows in the ledger's database, else MLflow.

        Raises:
            LedgerError: the database failed. RegistryError: (no MLflow tables there) MLflow failed.
        """
        if self._mlflow_tables_here():
            with self.ledger.engine.connect() as conn:
                tags = mlflow_version_tags(conn, model, version, (STATUS_TAG, FEATURE_GRAPH_HASH_TAG))
            if tags is None:
                return VersionFacts(False, None, None, "database")
            return VersionFacts(True, tags.get(STATUS_TAG), tags.get(FEATURE_GRAPH_HASH_TAG), "database")
        try:
            found = self.registry.model_version(model, version)
        except ModelNotFound:
            return VersionFacts(False, None, None, "mlflow")
        return VersionFacts(True, found.tags.get(STATUS_TAG), found.tags.get(FEATURE_GRAPH_HASH_TAG), "mlflow")

    def _mlflow_tables_here(self) -> bool:
        if self._has_mlflow_tables is None:
            with self._lock, self.ledger.engine.connect() as conn:
                self._has_mlflow_tables = holds_mlflow_versions(conn)
        return self._has_mlflow_tables
