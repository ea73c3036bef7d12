"""Files beside a model version in MLflow: uploaded under a folder of the version's run, referred to by ``runs:/``.

Promotion reports and rationales, monitoring reports and reproduction certificates are stored this way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from mlflow import MlflowClient

from ml_platform.metadata import Link, run_artifact_link
from ml_platform.registry.boundary import mlflow_errors
from ml_platform.registry.store import ModelRegistry

__all__ = ["RUNS_PREFIX", "artifact_link", "artifact_ref", "client_of", "local_artifact_path", "log_files",
           "read_artifact_ref"]

RUNS_PREFIX = "runs:/"


def client_of(registry: ModelRegistry) -> MlflowClient:
    """A plain MLflow client on ``registry``'s tracking and registry URIs."""
    return MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.registry_uri)


def artifact_ref(run_id: str, path: str) -> str:
    """``runs:/RUN/PATH``: how ledger entries, certificates and reports name a stored file."""
    return f"{RUNS_PREFIX}{run_id}/{path}"


def log_files(registry: ModelRegistry, run_id: str, folder: str, files: Mapping[str, bytes]) -> None:
    """Upload ``files`` (name -> bytes) under ``folder`` of run ``run_id``."""
    with tempfile.TemporaryDirectory(prefix="ml_platform_files_") as staging:
        for name, data in files.items():
            (Path(staging) / name).write_bytes(data)
        with mlflow_errors(f"upload {sorted(files)} to {folder} of run {run_id}", store=registry.store,
                           busy_timeout=registry.busy_timeout_seconds):
            client_of(registry).log_artifacts(run_id, staging, artifact_path=folder)


def local_artifact_path(registry: ModelRegistry, run_id: str, path: str) -> str:
    """The artefact's URI (a local path when the artefact store is a folder)."""
    with mlflow_errors(f"read run {run_id}", store=registry.store, busy_timeout=registry.busy_timeout_seconds):
        root = client_of(registry).get_run(run_id).info.artifact_uri
    root = root.removeprefix("file://")
    return f"{root.rstrip('/')}/{path}"


def artifact_link(registry: ModelRegistry, run_id: str, path: str) -> Link:
    """The link that opens artefact ``path`` of run ``run_id`` (:func:`ml_platform.metadata.run_artifact_link`):
    the MLflow server's ``get-artifact`` URL behind a server, the local path on the embedded default."""
    return run_artifact_link(registry.tracking_uri, run_id, path, local_artifact_path(registry, run_id, path))


def read_artifact_ref(registry: ModelRegistry, ref: str) -> bytes:
    """The bytes a ``runs:/RUN/PATH`` reference names.

    Raises:
        ValueError: ``ref`` is not such a reference.
        RegistryError / ModelNotFound: MLflow cannot give the file.
    """
    if not ref.startswith(RUNS_PREFIX) or "/" not in ref[len(RUNS_PREFIX):]:
        raise ValueError(f"{ref!r} is not an MLflow run artefact reference (runs:/<run id>/<path>)")
    run_id, _, path = ref[len(RUNS_PREFIX):].partition("/")
    with tempfile.TemporaryDirectory(prefix="ml_platform_read_") as target, \
            mlflow_errors(f"download {ref}", store=registry.store, busy_timeout=registry.busy_timeout_seconds):
        return Path(client_of(registry).download_artifacts(run_id, path, target)).read_bytes()
