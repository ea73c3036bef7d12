"""The MLflow pyfunc flavour: loads with mlflow.pyfunc.load_model and scores exactly like the model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest

from ml_platform.errors import DataError, IntegrityError, RegistryError
from ml_platform.registry import FeatureField, FeatureSchema
from ml_platform.registry.entities import RegisteredVersion
from ml_platform.registry.pyfunc import default_pip_requirements, save_pyfunc
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.registry.conftest import artifact_file, feature_frame, feature_schema, make_model

Register = Callable[..., RegisteredVersion]


def _same_scores(pyfunc_output: object, expected: pl.DataFrame) -> None:
    got = pl.from_pandas(pyfunc_output).with_columns(pl.col("date").cast(pl.Date))  # type: ignore[arg-type]
    assert got.select("date", "instrument").equals(expected.select("date", "instrument"))
    np.testing.assert_array_equal(got["score"].to_numpy(), expected["score"].to_numpy())  # bit-equal


def test_registered_pyfunc_predicts_the_same_scores(registry: ModelRegistry, register: Register) -> None:
    register("pyfunc_scores", shift=0.05)
    loaded = mlflow.pyfunc.load_model(registry.pyfunc_uri("pyfunc_scores", "1"))
    frame = feature_frame()
    _same_scores(loaded.predict(frame.to_pandas()), make_model(0.05).predict(frame))
    assert loaded.metadata.get_input_schema().input_names() == list(feature_schema().names)


def test_saved_model_declares_signature_and_explicit_requirements(tmp_path: Path) -> None:
    save_pyfunc(tmp_path / "model", make_model(), feature_schema())
    mlmodel = mlflow.models.Model.load(str(tmp_path / "model"))
    assert [c["name"] for c in mlmodel.signature.inputs.to_dict()] == list(feature_schema().names)
    assert [c["type"] for c in mlmodel.signature.inputs.to_dict()] == ["datetime", "string", "double", "double", "double"]
    assert mlmodel.metadata["ml_platform.model_sha256"] == make_model().sha256
    requirements = (tmp_path / "model" / "requirements.txt").read_text().split()
    assert requirements == default_pip_requirements()
    assert all("==" in line for line in requirements)
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    frame = feature_frame()
    _same_scores(loaded.predict(frame.to_pandas()), make_model().predict(frame))


def test_tampered_model_bytes_are_refused_at_load(registry: ModelRegistry, register: Register) -> None:
    registered = register("pyfunc_tampered")
    artifact_file(registry, registered.run_id, "model/artifacts/linear_signal_model.json").write_bytes(
        make_model(3.0).to_bytes())
    with pytest.raises(IntegrityError, match="altered after registration"):
        mlflow.pyfunc.load_model(registry.pyfunc_uri("pyfunc_tampered", "1"))


def test_input_without_a_feature_column_is_refused(tmp_path: Path) -> None:
    save_pyfunc(tmp_path / "model", make_model(), feature_schema())
    python_model = mlflow.pyfunc.load_model(str(tmp_path / "model")).unwrap_python_model()
    with pytest.raises(DataError, match=r"lacks feature column\(s\) \['vol_21d'\]"):
        python_model.predict(None, feature_frame().drop("vol_21d").to_pandas())


def test_schema_without_a_model_feature_or_with_an_unmappable_type_is_refused(tmp_path: Path) -> None:
    without = FeatureSchema(tuple(f for f in feature_schema() if f.name != "mom_5d"))
    with pytest.raises(RegistryError, match=r"lacks the model's feature column\(s\) \['mom_5d'\]"):
        save_pyfunc(tmp_path / "a", make_model(), without)
    odd = FeatureSchema((*feature_schema().fields, FeatureField("window", "duration[ns]")))
    with pytest.raises(RegistryError, match="'window' has type duration"):
        save_pyfunc(tmp_path / "b", make_model(), odd)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
