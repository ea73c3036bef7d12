"""What every model family provides: the SignalModel and Trainer protocols and the format registry. Pure.

How it works, and why: docs/architecture.md, "ml_platform/models/protocol.py".
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import polars as pl

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.keys import FrameKeys
from ml_platform.models.frames import check_feature_columns, check_label_column, require_keys

__all__ = [
    "FORMAT_ID_PATTERN",
    "RIDGE_FORMAT",
    "SKLEARN_FORMAT",
    "ModelInputs",
    "ModelLoader",
    "SignalModel",
    "Trainer",
    "check_format_id",
    "known_model_formats",
    "load_model_bytes",
    "register_model_format",
]

#: The cross-sectional ridge (:class:`~ml_platform.models.model.LinearSignalModel`), keys in the bytes.
RIDGE_FORMAT = "ml_platform.ridge/v2"
#: A fitted scikit-learn regressor (:class:`~ml_platform.models.sklearn.SklearnSignalModel`).
SKLEARN_FORMAT = "ml_platform.sklearn/v1"
#: A format id is ``<family>/v<version>``: letters, digits, ``_.-`` in the family name.
FORMAT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+/v[0-9]+$")

_BUILTIN_FORMATS: dict[str, tuple[str, str]] = {
    RIDGE_FORMAT: ("ml_platform.models.model", "LinearSignalModel"),
    SKLEARN_FORMAT: ("ml_platform.models.sklearn", "SklearnSignalModel"),
}


@dataclass(frozen=True)
class ModelInputs:
    """What a trainer fits on and a model scores.

    Attributes:
        keys: the key columns of the training and feature frames.
        feature_columns: model inputs, in order.
        label_column: the target (nullable: rows without a label are not fitted on).
        seed: the seed of any randomness in the fit; recorded with the model.
    """

    keys: FrameKeys
    feature_columns: tuple[str, ...]
    label_column: str
    seed: int = 0

    def __post_init__(self) -> None:
        keys = require_keys(self.keys)
        columns = check_feature_columns(self.feature_columns, keys)
        object.__setattr__(self, "feature_columns", columns)
        check_label_column(self.label_column, columns, keys)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigurationError(f"seed must be an integer, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values."""
        return {"keys": self.keys.to_dict(), "feature_columns": list(self.feature_columns),
                "label_column": self.label_column, "seed": self.seed}


@runtime_checkable
class SignalModel(Protocol):
    """A fitted model: scores keyed feature frames and serializes itself deterministically.

    Attributes:
        format_id: the serialized form, e.g. ``"ml_platform.ridge/v2"``.
        keys: the key columns of the frames it scores.
        feature_columns: the feature columns it reads, in order.
    """

    format_id: str
    keys: FrameKeys
    feature_columns: tuple[str, ...]

    def predict(self, features: pl.DataFrame) -> pl.DataFrame:
        """``[*keys.columns, score]`` (``score`` Float64), one row per input row, sorted by ``keys.columns``."""
        ...

    def to_bytes(self) -> bytes:
        """The canonical bytes; the same model always gives the same bytes."""
        ...

    @property
    def sha256(self) -> str:
        """``"sha256:<hex>"`` of :meth:`to_bytes`."""
        ...


@runtime_checkable
class Trainer(Protocol):
    """An unfitted model family with its hyper-parameters.

    Attributes:
        format_id: the format id of the models :meth:`fit` returns.
    """

    format_id: str

    def fit(self, training_set: pl.DataFrame, inputs: ModelInputs) -> SignalModel:
        """Fit on the labelled rows of ``training_set``; the same rows give the same model bytes."""
        ...

    def params(self) -> dict[str, bool | int | float | str]:
        """The hyper-parameters, flat, as logged to MLflow."""
        ...


#: Rebuilds a model from its bytes; raises :class:`~ml_platform.errors.DataError` for bytes it refuses.
ModelLoader = Callable[[bytes], SignalModel]
_REGISTERED: dict[str, ModelLoader] = {}


def check_format_id(format_id: object) -> str:
    """Return ``format_id`` if it looks like ``<family>/v<version>``, else raise :class:`ConfigurationError`."""
    if not isinstance(format_id, str) or not FORMAT_ID_PATTERN.match(format_id):
        raise ConfigurationError(
            f"model format id {format_id!r} is malformed; write '<family>/v<version>', e.g. 'acme.gbm/v1'"
        )
    return format_id


def register_model_format(format_id: str, loader: ModelLoader) -> None:
    """Make models of ``format_id`` loadable by the registry, pyfunc serving and :func:`load_model_bytes`.

    Call it at start-up of every process that trains *or* loads that family (the serving process
    included); registering the same loader again is a no-op.

    Raises:
        ConfigurationError: the id is malformed, is a built-in format, or already has another loader.
    """
    check_format_id(format_id)
    if not callable(loader):
        raise ConfigurationError(f"the loader of model format {format_id!r} must be callable, got {loader!r}")
    if format_id in _BUILTIN_FORMATS:
        raise ConfigurationError(f"model format {format_id!r} is built into ml_platform and cannot be replaced")
    existing = _REGISTERED.get(format_id)
    if existing is not None and existing != loader:
        raise ConfigurationError(
            f"model format {format_id!r} already has the loader {existing!r}; bump the version in the format "
            "id for a new serialized form instead of replacing the loader"
        )
    _REGISTERED[format_id] = loader


def known_model_formats() -> tuple[str, ...]:
    """Every loadable format id, built-in and registered, sorted."""
    return tuple(sorted({*_BUILTIN_FORMATS, *_REGISTERED}))


def _loader(format_id: str) -> ModelLoader:
    if format_id in _BUILTIN_FORMATS:
        module, name = _BUILTIN_FORMATS[format_id]
        loader: ModelLoader = getattr(importlib.import_module(module), name).from_bytes
        return loader
    if format_id in _REGISTERED:
        return _REGISTERED[format_id]
    raise ConfigurationError(
        f"unknown model format {format_id!r}; known formats: {list(known_model_formats())}. A model family "
        "outside ml_platform must be registered with register_model_format(format_id, loader) in this process "
        "before its models are loaded"
    )


def load_model_bytes(format_id: str, data: bytes) -> SignalModel:
    """Rebuild a model from its bytes with the loader of ``format_id``.

    Raises:
        ConfigurationError: the format id is malformed or unknown (the known ones are listed).
        DataError: the bytes are refused by the loader (corrupt, another format or version) or decode
            to a model of another format.
        EnvironmentMismatch: the family needs a library version other than the installed one.
    """
    loader = _loader(check_format_id(format_id))
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"model bytes must be bytes, got {type(data).__name__}")
    model = loader(bytes(data))
    if not isinstance(model, SignalModel):
        raise ConfigurationError(
            f"the loader of model format {format_id!r} returned a {type(model).__name__}, not a SignalModel"
        )
    if model.format_id != format_id:
        raise DataError(
            f"bytes recorded as model format {format_id!r} decode to a model of format {model.format_id!r}; "
            "the artefact and its recorded format disagree: re-register the model"
        )
    return model
