"""The artefact root a registry creates experiments under: a URI stays the URI, a path becomes a ``file://`` URI.

Production's root is the MLflow server's proxied store, ``mlflow-artifacts:/experiments`` (one slash): read as a
path it became ``<working directory>/mlflow-artifacts:/experiments``, and every model, contract and report went
to the local disk of whichever Celery worker trained, not to the server's object store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_platform.registry.boundary import as_uri
from ml_platform.registry.store import ModelRegistry


@pytest.mark.parametrize("uri", ["mlflow-artifacts:/experiments", "mlflow-artifacts://mlflow:5000/experiments",
                                 "s3://bucket/mlflow", "dbfs:/databricks/mlflow", "file:///srv/mlflow"])
def test_a_uri_is_kept(uri):
    assert as_uri(uri) == uri
    assert as_uri(uri + "/") == uri


def test_a_path_becomes_a_file_uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert as_uri("artifacts") == (tmp_path / "artifacts").as_uri()
    assert as_uri(str(tmp_path / "a")) == (tmp_path / "a").as_uri()
    assert as_uri("C:/mlflow").startswith("file://")  # a one-letter scheme is a drive, not a URI


def test_a_registry_on_a_tracking_server_keeps_the_proxied_artefact_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    registry = ModelRegistry("http://127.0.0.1:5000", artifact_location="mlflow-artifacts:/experiments")
    assert registry.artifact_location == "mlflow-artifacts:/experiments"
    assert not any(Path(tmp_path).iterdir())
