"""The MLflow pyfunc flavour of any :class:`~ml_platform.models.SignalModel`.

How it works, and why: docs/architecture.md, "ml_platform/registry/pyfunc.py".
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
from ml_platform.keys import FrameKeys
from ml_platform.models.protocol import SKLEARN_FORMAT, SignalModel, load_model_bytes
from ml_platform.registry.boundary import quiet_mlflow, sha256_of
from ml_platform.registry.schema import FeatureSchema

__all__ = [
    "MODEL_ARTIFACT",
    "SignalModelPyfunc",
    "default_pip_requirements",
    "model_signature",
    "save_pyfunc",
]

#: Name of the model-bytes artefact inside the MLflow model (``context.artifacts[MODEL_ARTIFACT]``).
MODEL_ARTIFACT = "signal_model"
_MODEL_FILE = "signal_model.bin"
_CODE_FILE = "signal_model_pyfunc.py"
_CODE = '''"""Models-from-code entry point written by ml_platform.registry.pyfunc.save_pyfunc."""
import mlflow
from ml_platform.registry.pyfunc import SignalModelPyfunc

mlflow.models.set_model(SignalModelPyfunc())
'''
_PREDICT_LIBRARIES = ("mlflow", "numpy", "pandas", "polars", "pyarrow", "threadpoolctl")
#: Libraries a model format needs beyond :data:`_PREDICT_LIBRARIES` to be read and to predict.
_FORMAT_LIBRARIES: dict[str, tuple[str, ...]] = {SKLEARN_FORMAT: ("scikit-learn", "scipy", "joblib")}
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


def model_signature(schema: FeatureSchema, keys: FrameKeys) -> ModelSignature:
    """The MLflow signature: the feature schema in, ``[*keys.columns, score]`` out.

    Raises:
        RegistryError: a key column is not in the schema, or a column type has no MLflow equivalent.
    """
    missing = [c for c in keys.columns if c not in schema.names]
    if missing:
        raise RegistryError(f"the feature schema lacks the key column(s) {missing}; schema: {list(schema.names)}")
    inputs = Schema([ColSpec(_mlflow_type(f.name, f.type), f.name) for f in schema.fields])
    outputs = Schema([*(ColSpec(_mlflow_type(c, schema.field(c).type), c) for c in keys.columns),
                      ColSpec(DataType.double, "score")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def default_pip_requirements(format_id: str | None = None) -> list[str]:
    """Exact pins of the installed libraries prediction imports (those of ``format_id`` too), offline."""
    names = (*_PREDICT_LIBRARIES, *_FORMAT_LIBRARIES.get(format_id or "", ()))
    return [f"{name}=={importlib.metadata.version(name)}" for name in names]


def save_pyfunc(
    path: str | Path,
    model: SignalModel,
    schema: FeatureSchema,
    *,
    pip_requirements: Sequence[str] | None = None,
) -> None:
    """Save ``model`` as an MLflow pyfunc model directory at ``path`` (which must not exist).

    Args:
        path: Target directory.
        model: The trained model, of any registered format.
        schema: Its input schema; every key and feature column of the model must be in it.
        pip_requirements: Explicit requirements; default :func:`default_pip_requirements` of the model's format.

    Raises:
        RegistryError: the schema lacks a model key or feature or has a type MLflow cannot describe, or
            MLflow failed to save.
    """
    missing = [c for c in model.feature_columns if c not in schema.names]
    if missing:
        raise RegistryError(f"the feature schema lacks the model's feature column(s) {missing}; schema: {list(schema.names)}")
    signature = model_signature(schema, model.keys)
    requirements = (list(pip_requirements) if pip_requirements is not None
                    else default_pip_requirements(model.format_id))
    data = model.to_bytes()
    config = {"model_format": model.format_id, "model_sha256": sha256_of(data), "keys": model.keys.to_dict(),
              "feature_schema": schema.to_list()}
    quiet_mlflow()
    with tempfile.TemporaryDirectory(prefix="ml_platform_pyfunc_") as staging:
        model_file = Path(staging) / _MODEL_FILE
        model_file.write_bytes(data)
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
                    model_config=config,
                    signature=signature,
                    pip_requirements=requirements,
                    metadata={"ml_platform.model_sha256": config["model_sha256"],
                              "ml_platform.model_format": model.format_id},
                )
        except mlflow.MlflowException as exc:
            raise RegistryError(f"MLflow could not save the pyfunc model to {path}: {exc}") from exc


class SignalModelPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow ``PythonModel`` serving any :class:`~ml_platform.models.SignalModel` from its canonical bytes."""

    def __init__(self) -> None:
        self._model: SignalModel | None = None
        self._schema: pa.Schema | None = None

    def load_context(self, context: Any) -> None:
        """Read the model bytes, verify their SHA-256, and decode them with the recorded format's loader.

        Raises:
            IntegrityError: the bytes do not match the SHA-256 recorded at save time, or decode to a
                model with other keys than recorded.
            ConfigurationError: the recorded format is unknown in this process (the known ones are listed).
            DataError: the bytes are refused by the format's loader.
            EnvironmentMismatch: the format needs another library version (e.g. scikit-learn).
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
        model = load_model_bytes(config["model_format"], data)
        if model.keys != FrameKeys.from_dict(config["keys"]):
            raise IntegrityError(f"the pyfunc model's bytes are keyed by ({model.keys}), its config by {config['keys']}")
        self._model = model
        self._schema = FeatureSchema.from_list(config["feature_schema"]).to_arrow()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score a feature frame; returns ``[*keys.columns, score]`` as pandas.

        Raises:
            DataError: the input lacks a column or a value cannot be cast to the contract type.
        """
        if self._model is None or self._schema is None:
            raise DataError("SignalModelPyfunc.predict called before load_context; load it with mlflow.pyfunc")
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
