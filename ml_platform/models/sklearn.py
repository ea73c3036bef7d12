"""Any scikit-learn regressor as a signal model: the trainer and its deterministic bytes.

How it works, and why: docs/architecture.md, "ml_platform/models/sklearn.py".
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import polars as pl
import sklearn
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from ml_platform.errors import ConfigurationError, DataError, EnvironmentMismatch
from ml_platform.keys import FrameKeys
from ml_platform.models.frames import (
    check_feature_columns,
    check_label_column,
    require_keys,
    standardize_by_date,
)
from ml_platform.models.model import DEFAULT_WINSOR_Z, score_frame
from ml_platform.models.protocol import SKLEARN_FORMAT, ModelInputs
from ml_platform.models.training import check_fit_settings, prepare_training
from ml_platform.window import DataWindow

__all__ = ["PICKLE_PROTOCOL", "SklearnSignalModel", "SklearnTrainer"]

PICKLE_PROTOCOL = 5
_HEADER_FIELDS = (
    "format", "keys", "feature_columns", "label_column", "standardize", "winsor_z", "seed",
    "training_window", "n_days", "n_rows", "sklearn_version", "estimator_class", "estimator_params",
    "pickle_protocol", "payload_sha256",
)
_MAX_SEED = 2**32 - 1


def _class_name(obj: object) -> str:
    kind = obj if isinstance(obj, type) else type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def check_regressor(estimator: object) -> None:
    """Refuse anything but a scikit-learn regressor *instance*, saying what it is instead.

    Raises:
        ConfigurationError: a class, a non-estimator, a classifier or any other non-regressor.
    """
    if isinstance(estimator, type):
        raise ConfigurationError(
            f"estimator must be an instance, got the class {_class_name(estimator)}; write "
            f"{estimator.__name__}(...) instead of {estimator.__name__}"
        )
    lacking = [name for name in ("fit", "predict", "get_params") if not callable(getattr(estimator, name, None))]
    if lacking:
        raise ConfigurationError(
            f"estimator {_class_name(estimator)} is not a scikit-learn regressor: it has no {', '.join(lacking)} "
            "method; pass a regressor such as sklearn.linear_model.Ridge()"
        )
    try:
        kind = get_tags(estimator).estimator_type
    except Exception as exc:  # third-party tag machinery on arbitrary objects
        raise ConfigurationError(
            f"estimator {_class_name(estimator)} does not declare scikit-learn estimator tags; derive it from "
            "sklearn.base.RegressorMixin and BaseEstimator (in that order)"
        ) from exc
    if kind != "regressor":
        role = f"a {kind}" if kind else "not a regressor"
        raise ConfigurationError(
            f"estimator {_class_name(estimator)} is {role}: a signal model scores with real numbers, so it "
            "must be a regressor (e.g. Ridge, HistGradientBoostingRegressor, RandomForestRegressor)"
        )


def _param_value(value: Any) -> Any:
    """A JSON-ready, address-free rendering of an estimator parameter (for the header and MLflow)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return _param_value(value.item())
    if isinstance(value, np.ndarray):
        return _param_value(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_param_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _param_value(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return f"<{_class_name(value)}>"


def estimator_params(estimator: Any) -> dict[str, Any]:
    """``estimator.get_params(deep=True)`` rendered by :func:`_param_value`, sorted by name."""
    return {name: _param_value(v) for name, v in sorted(estimator.get_params(deep=True).items())}


def _configured(estimator: Any, seed: int | None) -> Any:
    """A clone with every ``n_jobs`` set to 1 and, given a seed, every ``random_state`` to it."""
    fresh = clone(estimator)
    overrides: dict[str, Any] = {}
    for name in fresh.get_params(deep=True):
        leaf = name.rsplit("__", 1)[-1]
        if leaf == "n_jobs":
            overrides[name] = 1
        elif leaf == "random_state" and seed is not None:
            overrides[name] = seed
    return fresh.set_params(**overrides) if overrides else fresh


@dataclass(frozen=True)
class SklearnTrainer:
    """Fits a scikit-learn regressor as a cross-sectional signal model (see the module).

    Attributes:
        estimator: an unfitted regressor instance (cloned; the one given is never fitted).
        standardize: feed the per-time z-scored, winsorized features (nulls neutral) rather than raw ones.
        winsor_z: clip bound of the z-scores when standardizing (``math.inf`` disables clipping).
        min_days: time values with usable rows required after filtering, else the fit is refused.
        min_rows_per_day: usable rows (non-null label) a time value needs to be kept; at least 2.
        seed_estimator: set every ``random_state`` to ``inputs.seed``; ``False`` keeps them as given.

    Example:
        >>> from sklearn.ensemble import RandomForestRegressor
        >>> SklearnTrainer(RandomForestRegressor(n_estimators=50)).params()["estimator.n_estimators"]
        50
    """

    format_id: ClassVar[str] = SKLEARN_FORMAT

    estimator: Any
    standardize: bool = True
    winsor_z: float = DEFAULT_WINSOR_Z
    min_days: int = 60
    min_rows_per_day: int = 2
    seed_estimator: bool = True

    def __post_init__(self) -> None:
        check_regressor(self.estimator)
        for name in ("standardize", "seed_estimator"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} must be a bool, got {getattr(self, name)!r}")
        check_fit_settings(winsor_z=self.winsor_z, min_days=self.min_days, min_rows_per_day=self.min_rows_per_day)
        object.__setattr__(self, "winsor_z", float(self.winsor_z))
        object.__setattr__(self, "estimator", clone(self.estimator))

    def params(self) -> dict[str, bool | int | float | str]:
        """The trainer's settings and the estimator's parameters (``estimator.<name>``), flat."""
        params: dict[str, bool | int | float | str] = {
            "estimator": _class_name(self.estimator), "standardize": self.standardize, "winsor_z": self.winsor_z,
            "min_days": self.min_days, "min_rows_per_day": self.min_rows_per_day,
            "seed_estimator": self.seed_estimator,
        }
        for name, value in estimator_params(self.estimator).items():
            flat = value if isinstance(value, (bool, int, float, str)) else json.dumps(value, sort_keys=True)
            params[f"estimator.{name}"] = flat
        return params

    def fit(self, training_set: pl.DataFrame, inputs: ModelInputs) -> SklearnSignalModel:
        """Fit a single-threaded, seeded clone of the estimator on the prepared training set.

        Raises:
            ConfigurationError: the seed is outside scikit-learn's ``[0, 2**32 - 1]`` while seeding.
            DataError: see :func:`~ml_platform.models.training.prepare_training`; or the estimator
                refused the data (e.g. NaN in raw features), named with what to change.
        """
        prepared = prepare_training(training_set, inputs, min_days=self.min_days,
                                    min_rows_per_day=self.min_rows_per_day)
        if self.seed_estimator and not 0 <= inputs.seed <= _MAX_SEED:
            raise ConfigurationError(
                f"seed {inputs.seed} cannot seed scikit-learn (random_state must lie in [0, 2**32 - 1]); pick "
                "another seed"
            )
        design = (standardize_by_date(prepared.features, prepared.starts, self.winsor_z) if self.standardize
                  else prepared.features)
        estimator = _configured(self.estimator, inputs.seed if self.seed_estimator else None)
        with threadpool_limits(limits=1):
            try:
                estimator.fit(design, prepared.target)
            except (ValueError, TypeError) as exc:
                hint = ("; with standardize=False nulls reach the estimator as NaN: use standardize=True or an "
                        "estimator that accepts NaN") if not self.standardize else ""
                raise DataError(f"{_class_name(estimator)} refused the training set: {exc}{hint}") from exc
        return SklearnSignalModel.from_estimator(
            estimator, keys=inputs.keys, feature_columns=inputs.feature_columns,
            label_column=inputs.label_column, standardize=self.standardize, winsor_z=self.winsor_z,
            seed=inputs.seed, training_window=prepared.window, n_days=prepared.n_days, n_rows=prepared.n_rows,
        )


@dataclass(frozen=True)
class SklearnSignalModel:
    """A fitted scikit-learn regressor scoring keyed feature frames; its identity is its pickle ``payload``.

    Build one with :meth:`from_estimator` (or :meth:`SklearnTrainer.fit`) or :meth:`from_bytes`; the
    estimator it predicts with is always unpickled from ``payload``, so a model and its reloaded
    copy score bit for bit alike.
    """

    format_id: ClassVar[str] = SKLEARN_FORMAT

    payload: bytes = field(repr=False)
    keys: FrameKeys
    feature_columns: tuple[str, ...]
    label_column: str
    standardize: bool = True
    winsor_z: float = DEFAULT_WINSOR_Z
    seed: int = 0
    training_window: DataWindow | None = None
    n_days: int = 0
    n_rows: int = 0

    def __post_init__(self) -> None:
        keys = require_keys(self.keys)
        columns = check_feature_columns(self.feature_columns, keys)
        object.__setattr__(self, "feature_columns", columns)
        check_label_column(self.label_column, columns, keys)
        if not isinstance(self.payload, bytes):
            raise ConfigurationError(
                f"payload must be the pickled estimator's bytes, got {type(self.payload).__name__}")
        if not isinstance(self.standardize, bool):
            raise ConfigurationError(f"standardize must be a bool, got {self.standardize!r}")
        if isinstance(self.winsor_z, bool) or not isinstance(self.winsor_z, (int, float)) or not self.winsor_z > 0:
            raise ConfigurationError(f"winsor_z must be > 0 (math.inf disables clipping), got {self.winsor_z!r}")
        object.__setattr__(self, "winsor_z", float(self.winsor_z))
        for name in ("seed", "n_days", "n_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or (name != "seed" and value < 0):
                raise ConfigurationError(f"{name} must be an integer{'' if name == 'seed' else ' >= 0'}, got {value!r}")
        if self.training_window is not None and not isinstance(self.training_window, DataWindow):
            raise ConfigurationError(f"training_window must be a DataWindow or None, got {self.training_window!r}")
        estimator = pickle.loads(self.payload)  # our own pickle, or a payload whose hash from_bytes verified
        check_regressor(estimator)
        try:
            check_is_fitted(estimator)
        except NotFittedError as exc:
            raise ConfigurationError(f"{_class_name(estimator)} is not fitted; fit it (or use SklearnTrainer)") from exc
        n_in = getattr(estimator, "n_features_in_", len(columns))
        if n_in != len(columns):
            raise ConfigurationError(f"the estimator was fitted on {n_in} features, not the {len(columns)} named")
        object.__setattr__(self, "_estimator", estimator)
        header = json.dumps(self._header(estimator), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                            allow_nan=False).encode("ascii")
        object.__setattr__(self, "_bytes", header + b"\n" + self.payload)

    @classmethod
    def from_estimator(cls, estimator: Any, *, keys: FrameKeys, feature_columns: tuple[str, ...], label_column: str,
                       standardize: bool = True, winsor_z: float = DEFAULT_WINSOR_Z, seed: int = 0,
                       training_window: DataWindow | None = None, n_days: int = 0, n_rows: int = 0,
                       ) -> SklearnSignalModel:
        """Wrap a fitted regressor (pickled now; later changes to ``estimator`` do not reach the model)."""
        check_regressor(estimator)
        return cls(pickle.dumps(estimator, protocol=PICKLE_PROTOCOL), keys, tuple(feature_columns), label_column,
                   standardize, winsor_z, seed, training_window, n_days, n_rows)

    @property
    def estimator(self) -> Any:
        """The fitted estimator (the model's own copy; do not fit or modify it)."""
        return self.__dict__["_estimator"]

    @property
    def sklearn_version(self) -> str:
        """The scikit-learn version the payload was written by (always the installed one)."""
        return sklearn.__version__

    def _header(self, estimator: Any) -> dict[str, Any]:
        return {
            "format": SKLEARN_FORMAT, "keys": self.keys.to_dict(), "feature_columns": list(self.feature_columns),
            "label_column": self.label_column, "standardize": self.standardize, "winsor_z": self.winsor_z.hex(),
            "seed": self.seed,
            "training_window": None if self.training_window is None else self.training_window.to_dict(),
            "n_days": self.n_days, "n_rows": self.n_rows, "sklearn_version": sklearn.__version__,
            "estimator_class": _class_name(estimator), "estimator_params": estimator_params(estimator),
            "pickle_protocol": PICKLE_PROTOCOL, "payload_sha256": "sha256:" + hashlib.sha256(self.payload).hexdigest(),
        }

    def predict(self, features: pl.DataFrame) -> pl.DataFrame:
        """Score a feature frame: ``[*keys.columns, score]`` sorted by ``keys.columns``, single-threaded.

        Raises:
            DataError: see :func:`~ml_platform.models.model.score_frame`; or the estimator refused the
                rows or returned other than one finite score per row.
        """
        ordered, matrix, starts = score_frame(features, self.keys, self.feature_columns)
        if ordered.height == 0:
            score = np.zeros(0, dtype=np.float64)
        else:
            design = standardize_by_date(matrix, starts, self.winsor_z) if self.standardize else matrix
            with threadpool_limits(limits=1):
                try:
                    raw = self.estimator.predict(design)
                except (ValueError, TypeError) as exc:
                    raise DataError(f"{_class_name(self.estimator)} could not score the frame: {exc}") from exc
            score = np.asarray(raw, dtype=np.float64)
            if score.ndim == 2 and score.shape[1] == 1:
                score = score[:, 0]
            if score.shape != (ordered.height,):
                raise DataError(f"the estimator returned scores of shape {score.shape} for {ordered.height} rows")
            bad = int((~np.isfinite(score)).sum())
            if bad:
                raise DataError(f"{_class_name(self.estimator)} predicted {bad} non-finite scores; check the features")
        return ordered.select(*self.keys.columns).with_columns(pl.Series("score", score, dtype=pl.Float64))

    def to_bytes(self) -> bytes:
        """Header line of canonical JSON, ``\\n``, pickle payload; fixed at construction."""
        data: bytes = self.__dict__["_bytes"]
        return data

    @property
    def sha256(self) -> str:
        """``"sha256:<hex>"`` of :meth:`to_bytes`, the model's content address."""
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> SklearnSignalModel:
        """Rebuild a model from :meth:`to_bytes` output, checking everything it can before unpickling.

        Raises:
            DataError: no header line, a header that is not canonical JSON of this format, a payload
                whose hash differs from the header's, or a payload that is not the estimator described.
            EnvironmentMismatch: the bytes were written by another scikit-learn version.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DataError(f"model bytes must be bytes, got {type(data).__name__}")
        raw = bytes(data)
        line, newline, payload = raw.partition(b"\n")
        try:
            header = json.loads(line.decode("ascii")) if newline else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"corrupt scikit-learn model bytes: the header is not ASCII JSON ({exc})") from exc
        if not isinstance(header, dict):
            raise DataError("corrupt scikit-learn model bytes: no JSON header line before the payload")
        if header.get("format") != SKLEARN_FORMAT:
            raise DataError(f"unknown model format {header.get('format')!r}; expected {SKLEARN_FORMAT!r}")
        if set(header) != set(_HEADER_FIELDS):
            missing, extra = sorted(set(_HEADER_FIELDS) - set(header)), sorted(set(header) - set(_HEADER_FIELDS))
            raise DataError(f"corrupt scikit-learn model header: fields missing {missing}, unexpected {extra}")
        if header["sklearn_version"] != sklearn.__version__:
            raise EnvironmentMismatch(
                f"this {header['estimator_class']} model was pickled by scikit-learn {header['sklearn_version']} but "
                f"{sklearn.__version__} is installed, and a pickle is only trusted by the version that wrote it: serve "
                f"it with scikit-learn=={header['sklearn_version']} (the environment it was trained in) or retrain it"
            )
        if header["payload_sha256"] != "sha256:" + hashlib.sha256(payload).hexdigest():
            raise DataError("corrupt scikit-learn model bytes: the payload does not match the hash in its header")
        if header["pickle_protocol"] != PICKLE_PROTOCOL:
            raise DataError(f"unsupported pickle protocol {header['pickle_protocol']!r}; expected {PICKLE_PROTOCOL}")
        try:
            window = header["training_window"]
            model = cls(
                payload, FrameKeys.from_dict(header["keys"]), tuple(header["feature_columns"]), header["label_column"],
                header["standardize"], float.fromhex(header["winsor_z"]), header["seed"],
                None if window is None else DataWindow.from_dict(window), header["n_days"], header["n_rows"],
            )
        except (ConfigurationError, ValueError, TypeError, AttributeError, EOFError, ImportError,
                pickle.UnpicklingError) as exc:
            raise DataError(f"corrupt scikit-learn model bytes: {exc}") from exc
        if model.to_bytes() != raw:
            raise DataError(
                "scikit-learn model bytes are not in canonical form or their header does not describe the pickled "
                f"estimator ({_class_name(model.estimator)}); re-fetch the artefact"
            )
        return model
