"""The cross-sectional ridge signal model: its value object and canonical bytes. Pure.

How it works, and why: docs/architecture.md, "ml_platform/models/model.py".
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.keys import DEFAULT_KEYS, FrameKeys
from ml_platform.models.frames import (
    canonical_sort,
    check_feature_columns,
    check_keys,
    check_label_column,
    date_starts,
    numeric_matrix,
    require_columns,
    require_keys,
    standardize_by_date,
)
from ml_platform.models.protocol import RIDGE_FORMAT
from ml_platform.window import DataWindow

__all__ = ["DEFAULT_WINSOR_Z", "LEGACY_RIDGE_FORMAT", "LinearSignalModel", "score_frame"]

#: Default winsorization bound of the z-scores; clips bad ticks, leaves a normal cross-section alone.
DEFAULT_WINSOR_Z = 5.0
#: The version-1 ridge bytes (no frame keys), refused by :meth:`LinearSignalModel.from_bytes`.
LEGACY_RIDGE_FORMAT = "ml_platform.models.LinearSignalModel"
_SERIALIZED_FIELDS = (
    "format", "keys", "feature_columns", "coefficients", "intercept", "winsor_z",
    "label_column", "alpha", "seed", "training_window", "n_days", "n_rows",
)


def score_frame(features: pl.DataFrame, keys: FrameKeys, feature_columns: tuple[str, ...],
                ) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Validate a feature frame and return it canonically sorted with its raw matrix and time starts.

    Returns:
        ``(ordered, matrix, starts)``: the keys and features sorted by ``keys.columns``, the features
        as float64 with NaN for null, and :func:`~ml_platform.models.frames.date_starts` of the rows.

    Raises:
        DataError: a key or feature column is missing (all are listed), keys are malformed or
            repeat, or a feature holds NaN/inf or no usable value at all.
    """
    what = "the feature frame to score"
    require_columns(features, (*keys.columns, *feature_columns), what=what)
    check_keys(features, keys, what=what)
    ordered = canonical_sort(features.select(*keys.columns, *feature_columns), keys)
    matrix = numeric_matrix(ordered, feature_columns, what=what)
    return ordered, matrix, date_starts(ordered[keys.time])


# --- the model -----------------------------------------------------------------------------------


def _as_float(value: object, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigurationError(f"{what} must be a real number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LinearSignalModel:
    """A cross-sectional linear signal: ``score = intercept + sum_j coefficients[j] * z_j``.

    ``z_j`` is feature ``feature_columns[j]`` after the per-time preprocessing (z-score, clip to
    ``winsor_z``, nulls neutral). Every field is part of the serialized bytes and so of
    :attr:`sha256`: the provenance fields (``label_column``, ``alpha``, ``seed``,
    ``training_window``, ``n_days``, ``n_rows``) commit the model's identity to how it was trained,
    and ``keys`` to the frames it scores. ``n_days`` counts distinct time values (days in a daily
    graph).

    Example:
        >>> model = LinearSignalModel(("mom_21d",), (0.5,), 0.0)
        >>> LinearSignalModel.from_bytes(model.to_bytes()) == model
        True
    """

    format_id: ClassVar[str] = RIDGE_FORMAT

    feature_columns: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    winsor_z: float = DEFAULT_WINSOR_Z
    label_column: str = "label"
    alpha: float = 1.0
    seed: int = 0
    training_window: DataWindow | None = None
    n_days: int = 0
    n_rows: int = 0
    keys: FrameKeys = DEFAULT_KEYS

    def __post_init__(self) -> None:
        keys = require_keys(self.keys)
        columns = check_feature_columns(self.feature_columns, keys)
        coefficients = tuple(_as_float(c, what="a coefficient") for c in self.coefficients)
        if len(coefficients) != len(columns):
            raise ConfigurationError(
                f"{len(coefficients)} coefficients for {len(columns)} feature columns; give one per feature"
            )
        intercept = _as_float(self.intercept, what="the intercept")
        if not all(math.isfinite(v) for v in (*coefficients, intercept)):
            raise ConfigurationError("model coefficients and intercept must be finite; the fit diverged")
        winsor_z = _as_float(self.winsor_z, what="winsor_z")
        if not winsor_z > 0.0:
            raise ConfigurationError(f"winsor_z must be > 0 (math.inf disables clipping), got {winsor_z}")
        alpha = _as_float(self.alpha, what="alpha")
        if not (alpha > 0.0 and math.isfinite(alpha)):
            raise ConfigurationError(f"alpha must be a finite number > 0, got {alpha}")
        check_label_column(self.label_column, columns, keys)
        for name in ("seed", "n_days", "n_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigurationError(f"{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.n_days < 0 or self.n_rows < 0:
            raise ConfigurationError(f"n_days and n_rows cannot be negative ({self.n_days}, {self.n_rows})")
        if self.training_window is not None and not isinstance(self.training_window, DataWindow):
            raise ConfigurationError(
                f"training_window must be a DataWindow or None, got {self.training_window!r}"
            )
        for name, value in (("feature_columns", columns), ("coefficients", coefficients),
                            ("intercept", intercept), ("winsor_z", winsor_z), ("alpha", alpha)):
            object.__setattr__(self, name, value)

    # -- prediction ------------------------------------------------------------------------------

    def predict(self, features: pl.DataFrame) -> pl.DataFrame:
        """Score a feature frame: ``[*keys.columns, score]`` sorted by ``keys.columns``.

        Each time value is standardized on its own cross-section, exactly as in training. Extra
        columns are ignored; nulls are neutral. The score is accumulated feature by feature in the
        order of :attr:`feature_columns` (element-wise, no BLAS), so it is bit-stable across machines.

        Raises:
            DataError: see :func:`score_frame`.
        """
        ordered, matrix, starts = score_frame(features, self.keys, self.feature_columns)
        z = standardize_by_date(matrix, starts, self.winsor_z)
        score = np.zeros(ordered.height, dtype=np.float64)
        for j, coefficient in enumerate(self.coefficients):
            score = score + z[:, j] * coefficient
        score = score + self.intercept
        return ordered.select(*self.keys.columns).with_columns(pl.Series("score", score, dtype=pl.Float64))

    # -- serialization ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; floats are ``float.hex()`` strings so every bit survives."""
        return {
            "format": RIDGE_FORMAT,
            "keys": self.keys.to_dict(),
            "feature_columns": list(self.feature_columns),
            "coefficients": [c.hex() for c in self.coefficients],
            "intercept": self.intercept.hex(),
            "winsor_z": self.winsor_z.hex(),
            "label_column": self.label_column,
            "alpha": self.alpha.hex(),
            "seed": self.seed,
            "training_window": None if self.training_window is None else self.training_window.to_dict(),
            "n_days": self.n_days,
            "n_rows": self.n_rows,
        }

    def to_bytes(self) -> bytes:
        """Canonical bytes: sorted-key compact ASCII JSON with hex floats; equal models, equal bytes."""
        text = json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
        )
        return text.encode("ascii")

    @property
    def sha256(self) -> str:
        """``"sha256:<hex>"`` of :meth:`to_bytes`, the model's content address."""
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearSignalModel:
        """Rebuild a model from :meth:`to_bytes` output, refusing anything else.

        Raises:
            DataError: the bytes are not JSON, of another format or format version (version-1 bytes
                included), miss or add fields, hold values of the wrong type, or are not the canonical
                encoding of the model they describe (so ``from_bytes(b).to_bytes() == b`` always holds).
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DataError(f"model bytes must be bytes, got {type(data).__name__}")
        raw = bytes(data)
        try:
            payload = json.loads(raw.decode("ascii"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"corrupt model bytes: not ASCII JSON ({exc}); re-fetch the artefact") from exc
        if not isinstance(payload, dict):
            raise DataError(f"corrupt model bytes: expected a JSON object, got {type(payload).__name__}")
        fmt = payload.get("format")
        if fmt == LEGACY_RIDGE_FORMAT:
            raise DataError(
                f"these are version-1 ridge model bytes ({LEGACY_RIDGE_FORMAT!r}, written before the frame keys "
                f"were part of the model); this code reads {RIDGE_FORMAT!r}: retrain and register the model again"
            )
        if fmt != RIDGE_FORMAT:
            raise DataError(f"unknown model format {fmt!r}; expected {RIDGE_FORMAT!r}")
        expected = set(_SERIALIZED_FIELDS)
        if set(payload) != expected:
            raise DataError(
                f"corrupt model bytes: fields missing {sorted(expected - set(payload))}, "
                f"unexpected {sorted(set(payload) - expected)}"
            )
        try:
            window = payload["training_window"]
            model = cls(
                feature_columns=tuple(_typed(payload["feature_columns"], list)),
                coefficients=tuple(
                    float.fromhex(_typed(c, str)) for c in _typed(payload["coefficients"], list)
                ),
                intercept=float.fromhex(_typed(payload["intercept"], str)),
                winsor_z=float.fromhex(_typed(payload["winsor_z"], str)),
                label_column=_typed(payload["label_column"], str),
                alpha=float.fromhex(_typed(payload["alpha"], str)),
                seed=_typed(payload["seed"], int),
                training_window=None if window is None else DataWindow.from_dict(_typed(window, dict)),
                n_days=_typed(payload["n_days"], int),
                n_rows=_typed(payload["n_rows"], int),
                keys=FrameKeys.from_dict(payload["keys"]),
            )
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise DataError(f"corrupt model bytes: {exc}") from exc
        if model.to_bytes() != raw:
            raise DataError(
                "model bytes are not in canonical form (edited or re-encoded); re-fetch the artefact"
            )
        return model


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value
