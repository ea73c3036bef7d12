"""The MLflow pyfunc flavour: loads with mlflow.pyfunc.load_model and scores exactly like the model."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
import sklearn

from ml_platform.errors import ConfigurationError, DataError, IntegrityError, RegistryError
from ml_platform.keys import FrameKeys
from ml_platform.models import SKLEARN_FORMAT, LinearSignalModel, SklearnSignalModel
from ml_platform.registry import FeatureField, FeatureSchema
from ml_platform.registry.entities import RegisteredVersion
from ml_platform.registry.pyfunc import default_pip_requirements, save_pyfunc
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.registry.conftest import (
    artifact_file,
    feature_frame,
    feature_schema,
    make_model,
    make_sklearn_model,
)

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
    artifact_file(registry, registered.run_id, "model/artifacts/signal_model.bin").write_bytes(
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


def test_registered_scikit_learn_pyfunc_predicts_the_same_scores(registry: ModelRegistry, register: Register) -> None:
    model = make_sklearn_model()
    register("pyfunc_sklearn", model=model)
    loaded = mlflow.pyfunc.load_model(registry.pyfunc_uri("pyfunc_sklearn", "1"))
    assert isinstance(loaded.unwrap_python_model()._model, SklearnSignalModel)
    frame = feature_frame()
    expected = model.predict(frame)
    assert expected["score"].n_unique() > 1  # a real forest, not a constant
    _same_scores(loaded.predict(frame.to_pandas()), expected)
    assert loaded.metadata.metadata["ml_platform.model_format"] == SKLEARN_FORMAT
    assert f"scikit-learn=={sklearn.__version__}" in default_pip_requirements(SKLEARN_FORMAT)
    assert not any(r.startswith("scikit-learn==") for r in default_pip_requirements(make_model().format_id))


def test_pyfunc_of_other_keys_declares_them_as_outputs(tmp_path: Path) -> None:
    keys = FrameKeys("week", ("ticker",))
    model = LinearSignalModel(("mom_5d",), (1.0,), 0.0, keys=keys)
    frame = pl.DataFrame({"week": [dt.datetime(2020, 1, 6, 16)] * 3 + [dt.datetime(2020, 1, 13, 16)] * 3,
                          "ticker": [3, 1, 2, 3, 1, 2], "mom_5d": [0.1, 0.2, 0.4, 0.3, 0.0, None]},
                         schema_overrides={"ticker": pl.Int64})
    schema = FeatureSchema.from_polars(frame, non_null=("week", "ticker"))
    save_pyfunc(tmp_path / "model", model, schema)
    mlmodel = mlflow.models.Model.load(str(tmp_path / "model"))
    assert [(c["name"], c["type"]) for c in mlmodel.signature.outputs.to_dict()] == [
        ("week", "datetime"), ("ticker", "long"), ("score", "double")]
    got = pl.from_pandas(mlflow.pyfunc.load_model(str(tmp_path / "model")).predict(frame.to_pandas()))
    expected = model.predict(frame)
    assert got["ticker"].to_list() == expected["ticker"].to_list() == [1, 2, 3, 1, 2, 3]
    np.testing.assert_array_equal(got["score"].to_numpy(), expected["score"].to_numpy())
    with pytest.raises(RegistryError, match=r"lacks the key column\(s\) \['ticker'\]"):
        save_pyfunc(tmp_path / "other", model, FeatureSchema(tuple(f for f in schema if f.name != "ticker")))


def test_an_unknown_format_in_the_model_config_is_refused_at_load(tmp_path: Path) -> None:
    save_pyfunc(tmp_path / "model", make_model(), feature_schema())
    mlmodel_path = tmp_path / "model" / "MLmodel"
    mlmodel_path.write_text(mlmodel_path.read_text().replace("model_format: ml_platform.ridge/v2",
                                                             "model_format: acme.gbm/v3"))
    with pytest.raises(ConfigurationError, match="unknown model format 'acme.gbm/v3'; known formats"):
        mlflow.pyfunc.load_model(str(tmp_path / "model"))
