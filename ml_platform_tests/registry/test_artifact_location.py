"""The registry's artefact root: a URI stays a URI (MLflow's proxied ``mlflow-artifacts:/`` too), a path a file URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_platform.registry.boundary import as_uri


@pytest.mark.parametrize("uri", ["mlflow-artifacts:/experiments", "s3://bucket/mlflow", "gs://b/a",
                                 "file:///srv/mlflow/artifacts", "mlflow-artifacts://host:5000/experiments"])
def test_a_uri_is_kept_as_it_is(uri: str) -> None:
    assert as_uri(uri) == uri
    assert as_uri(uri + "/") == uri


def test_a_path_becomes_a_file_uri_of_its_absolute_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert as_uri("mlruns/artifacts") == (tmp_path / "mlruns" / "artifacts").as_uri()
    assert as_uri(str(tmp_path / "a")) == (tmp_path / "a").as_uri()
