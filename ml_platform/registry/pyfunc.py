"""The MLflow pyfunc flavour of a :class:`~ml_platform.models.LinearSignalModel`.

The model is saved *from code* (MLflow's recommended form; MLflow 3 refuses to unpickle a pickled
``PythonModel`` by default): a three-line entry file written at save time imports
:class:`LinearSignalPyfunc` from this module and hands it to ``mlflow.models.set_model``. No object is
pickled. The model itself travels as its canonical bytes (``LinearSignalModel.to_bytes()``), an
artefact of the MLflow model, and the model config carries its SHA-256 and the feature schema, so
:meth:`LinearSignalPyfunc.load_context` refuses tampered bytes and :meth:`LinearSignalPyfunc.predict`
casts MLflow's pandas input back to the exact Arrow types the model was validated on.

Saving never touches the network or pip: ``pip_requirements`` are passed explicitly (the installed
versions of the libraries predicting needs, read from package metadata), which turns MLflow's
requirement inference off. ``ml_platform`` itself is not a pip requirement: the serving environment is
the pinned one recorded in the deploy contract's environment lock.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import mlflow
import pandas as pd
import polars as pl
import pyarrow as pa
from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ColSpec, DataType, Schema

from ml_platform.errors import DataError, IntegrityError, RegistryError
from ml_platform.models import LinearSignalModel
from ml_platform.registry.boundary import sha256_of
from ml_platform.registry.schema import FeatureSchema

__all__ = [
    "MODEL_ARTIFACT",
    "LinearSignalPyfunc",
    "default_pip_requirements",
    "model_signature",
    "save_pyfunc",
]

#: Name of the model-bytes artefact inside the MLflow model (``context.artifacts[MODEL_ARTIFACT]``).
MODEL_ARTIFACT = "linear_signal_model"
_MODEL_FILE = "linear_signal_model.json"
_CODE_FILE = "linear_signal_pyfunc.py"
_CODE = '''"""Models-from-code entry point written by ml_platform.registry.pyfunc.save_pyfunc."""
import mlflow
from ml_platform.registry.pyfunc import LinearSignalPyfunc

mlflow.models.set_model(LinearSignalPyfunc())
'''
_PREDICT_LIBRARIES = ("mlflow", "numpy", "pandas", "polars", "pyarrow")
_MLFLOW_TYPES: dict[str, DataType] = {
    "bool": DataType.boolean,
    "int8": DataType.integer,
    "int16": DataType.integer,
    "int32": DataType.integer,
    "uint8": DataType.integer,
    "uint16": DataType.integer,
    "int64": DataType.long,
    "uint32": DataType.long,
    "float": DataType.float,
    "double": DataType.double,
    "utf8": DataType.string,
    "binary": DataType.binary,
    "date32[day]": DataType.datetime,
}


def _mlflow_type(name: str, type_string: str) -> DataType:
    if type_string in _MLFLOW_TYPES:
        return _MLFLOW_TYPES[type_string]
    if type_string.startswith("timestamp["):
        return DataType.datetime
    raise RegistryError(
        f"feature column {name!r} has type {type_string}, which has no MLflow signature type; cast it to a "
        f"supported type ({sorted(_MLFLOW_TYPES)} or a timestamp) in the feature node"
    )


def model_signature(schema: FeatureSchema) -> ModelSignature:
    """The MLflow signature: the feature schema in, ``[date, instrument, score]`` out.

    Raises:
        RegistryError: a column type has no MLflow equivalent.
    """
    inputs = Schema([ColSpec(_mlflow_type(f.name, f.type), f.name) for f in schema.fields])
    outputs = Schema(
        [ColSpec(DataType.datetime, "date"), ColSpec(DataType.string, "instrument"), ColSpec(DataType.double, "score")]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def default_pip_requirements() -> list[str]:
    """Exact pins of the installed libraries prediction imports, read offline from package metadata."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in _PREDICT_LIBRARIES]


def save_pyfunc(
    path: str | Path,
    model: LinearSignalModel,
    schema: FeatureSchema,
    *,
    pip_requirements: Sequence[str] | None = None,
) -> None:
    """Save ``model`` as an MLflow pyfunc model directory at ``path`` (which must not exist).

    Args:
        path: Target directory.
        model: The trained model.
        schema: Its input schema; every ``model.feature_columns`` name must be in it.
        pip_requirements: Explicit requirements; default :func:`default_pip_requirements`.

    Raises:
        RegistryError: the schema lacks a model feature or has a type MLflow cannot describe, or
            MLflow failed to save.
    """
    missing = [c for c in model.feature_columns if c not in schema.names]
    if missing:
        raise RegistryError(f"the feature schema lacks the model's feature column(s) {missing}; schema: {list(schema.names)}")
    signature = model_signature(schema)
    requirements = list(pip_requirements) if pip_requirements is not None else default_pip_requirements()
    with tempfile.TemporaryDirectory(prefix="ml_platform_pyfunc_") as staging:
        model_file = Path(staging) / _MODEL_FILE
        model_file.write_bytes(model.to_bytes())
        code_file = Path(staging) / _CODE_FILE
        code_file.write_text(_CODE, encoding="utf-8")
        try:
            with warnings.catch_warnings():
                # No data exists at registration, so no input example: the signature comes from the contract.
                warnings.filterwarnings("ignore", message=".*input example was not provided.*", category=UserWarning)
                mlflow.pyfunc.save_model(
                    path=str(path),
                    python_model=str(code_file),
                    artifacts={MODEL_ARTIFACT: str(model_file)},
                    model_config={"model_sha256": model.sha256, "feature_schema": schema.to_list()},
                    signature=signature,
                    pip_requirements=requirements,
                    metadata={"ml_platform.model_sha256": model.sha256},
                )
        except mlflow.MlflowException as exc:
            raise RegistryError(f"MLflow could not save the pyfunc model to {path}: {exc}") from exc


class LinearSignalPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow ``PythonModel`` serving a :class:`LinearSignalModel` from its canonical bytes."""

    def __init__(self) -> None:
        self._model: LinearSignalModel | None = None
        self._schema: pa.Schema | None = None

    def load_context(self, context: Any) -> None:
        """Read the model bytes, verify their SHA-256 against the model config, and decode them.

        Raises:
            IntegrityError: the bytes do not match the SHA-256 recorded at save time.
            DataError: the bytes are not a LinearSignalModel.
        """
        config = dict(context.model_config or {})
        data = Path(context.artifacts[MODEL_ARTIFACT]).read_bytes()
        expected = config.get("model_sha256")
        actual = sha256_of(data)
        if actual != expected:
            raise IntegrityError(
                f"pyfunc model bytes hash to {actual} but the model was saved as {expected}; the artefact was "
                "altered after registration: re-register the model version"
            )
        self._model = LinearSignalModel.from_bytes(data)
        self._schema = FeatureSchema.from_list(config["feature_schema"]).to_arrow()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score a feature frame; returns ``[date, instrument, score]`` as pandas.

        Raises:
            DataError: the input lacks a column or a value cannot be cast to the contract type.
        """
        if self._model is None or self._schema is None:
            raise DataError("LinearSignalPyfunc.predict called before load_context; load it with mlflow.pyfunc")
        frame = _to_polars(model_input, self._schema)
        return self._model.predict(frame).to_pandas()


def _to_polars(model_input: pd.DataFrame, schema: pa.Schema) -> pl.DataFrame:
    if not isinstance(model_input, pd.DataFrame):
        raise DataError(f"the pyfunc model scores a pandas DataFrame, got {type(model_input).__name__}")
    missing = [name for name in schema.names if name not in model_input.columns]
    if missing:
        raise DataError(f"the input frame lacks feature column(s) {missing}; it has {list(model_input.columns)}")
    table = pa.Table.from_pandas(model_input[schema.names], preserve_index=False)
    columns = []
    for target in schema:
        try:
            columns.append(table.column(target.name).cast(target.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"input column {target.name!r} cannot be read as {target.type}: {exc}") from exc
    return cast(pl.DataFrame, pl.from_arrow(pa.Table.from_arrays(columns, schema=schema)))
