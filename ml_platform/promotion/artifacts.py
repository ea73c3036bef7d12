"""Promotion artefacts beside a model version in MLflow: ``promotion/<stamp>/...`` of the version's run.

Report files are written when the report is made (every attempt leaves its report); the rationale is
written by the record step only, just before the ledger entry, so a refused attempt leaves no
rationale that a later attempt could be mistaken to copy.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from mlflow import MlflowClient

from ml_platform.registry.boundary import mlflow_errors
from ml_platform.registry.store import ModelRegistry

__all__ = ["PROMOTION_DIR", "RATIONALE_FILE", "artifact_ref", "local_artifact_path", "log_files",
           "previous_rationales"]

PROMOTION_DIR = "promotion"
RATIONALE_FILE = "rationale.md"


def _client(registry: ModelRegistry) -> MlflowClient:
    return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.registry_uri)


def artifact_ref(run_id: str, path: str) -> str:
    return f"runs:/{run_id}/{path}"


def log_files(registry: ModelRegistry, run_id: str, folder: str, files: Mapping[str, bytes]) -> None:
    """Upload ``files`` (name -> bytes) under ``folder`` of run ``run_id``."""
    with tempfile.TemporaryDirectory(prefix="ml_platform_promotion_") as staging:
        for name, data in files.items():
            (Path(staging) / name).write_bytes(data)
        with mlflow_errors(f"upload {sorted(files)} to {folder} of run {run_id}", store=registry.store,
                           busy_timeout=registry.busy_timeout_seconds):
            _client(registry).log_artifacts(run_id, staging, artifact_path=folder)


def local_artifact_path(registry: ModelRegistry, run_id: str, path: str) -> str:
    """The artefact's URI (a local path when the artefact store is a folder)."""
    with mlflow_errors(f"read run {run_id}", store=registry.store, busy_timeout=registry.busy_timeout_seconds):
        root = _client(registry).get_run(run_id).info.artifact_uri
    root = root.removeprefix("file://")
    return f"{root.rstrip('/')}/{path}"


def previous_rationales(registry: ModelRegistry, model: str) -> list[str]:
    """Every rationale stored beside any version of ``model`` (oldest version first)."""
    client = _client(registry)
    texts: list[str] = []
    with mlflow_errors(f"read the earlier rationales of model {model!r}", store=registry.store,
                       busy_timeout=registry.busy_timeout_seconds):
        versions = client.search_model_versions(f"name='{model}'")
        run_ids = list(dict.fromkeys(v.run_id for v in sorted(versions, key=lambda v: int(v.version)) if v.run_id))
        for run_id in run_ids:
            for folder in client.list_artifacts(run_id, PROMOTION_DIR):
                if not folder.is_dir:
                    continue
                names = {f.path.rsplit("/", 1)[-1] for f in client.list_artifacts(run_id, folder.path)}
                if RATIONALE_FILE not in names:
                    continue
                with tempfile.TemporaryDirectory(prefix="ml_platform_rationale_") as target:
                    local = client.download_artifacts(run_id, f"{folder.path}/{RATIONALE_FILE}", target)
                    texts.append(Path(local).read_text(encoding="utf-8", errors="replace"))
    return texts
