"""The trained signal model and the cross-sectional preprocessing it shares with training. Pure.

Preprocessing, one definition used by both :func:`~ml_platform.models.training.train` and
:meth:`LinearSignalModel.predict` so the two can never disagree. For each date and each feature:

1. z-score over that date's non-null values: ``(x - mean) / std`` with the population standard
   deviation (``ddof=0``);
2. clip to ``[-winsor_z, +winsor_z]`` (winsorization of gross outliers such as bad ticks);
3. nulls become ``0.0``: a name without a value is treated as *neutral* (cross-sectional average)
   on that feature, never as an extreme;
4. a feature with fewer than two non-null values, or with all of them equal, carries no
   cross-sectional information on that date and is ``0.0`` for every name there.

All arithmetic is NumPy float64 over frames sorted canonically by ``(date, instrument)``, with
fixed-order per-date reductions (NumPy ``reduceat``), so the same rows give the same bits whatever
their input order.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.market.schema import KEYS
from ml_platform.window import DataWindow

#: Default winsorization bound of the z-scores; clips bad ticks, leaves a normal cross-section alone.
DEFAULT_WINSOR_Z = 5.0
MODEL_FORMAT = "ml_platform.models.LinearSignalModel"
MODEL_FORMAT_VERSION = 1
_SERIALIZED_FIELDS = (
    "format", "format_version", "feature_columns", "coefficients", "intercept", "winsor_z",
    "label_column", "alpha", "seed", "training_window", "n_days", "n_rows",
)


# --- frame checks shared by training, prediction, signals and backtest --------------------------


def require_columns(frame: pl.DataFrame, columns: Iterable[str], *, what: str) -> None:
    """Raise :class:`DataError` listing every one of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} lacks columns {missing} (it has {frame.columns}); produce them upstream or fix the names"
        )


def check_feature_columns(columns: object) -> tuple[str, ...]:
    """Validate a list of feature column names (non-empty, unique strings, no key column); return it as a tuple."""
    if isinstance(columns, str) or not isinstance(columns, Iterable):
        raise ConfigurationError(f"feature_columns must be a sequence of names, got {columns!r}")
    names = tuple(columns)
    if not names:
        raise ConfigurationError("feature_columns is empty; name at least one feature")
    if any(not isinstance(c, str) or not c for c in names):
        raise ConfigurationError(f"feature column names must be non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigurationError(f"feature_columns repeat a name: {names!r}; list each feature once")
    if set(names) & set(KEYS):
        raise ConfigurationError(f"feature_columns {names!r} include a key column {KEYS}")
    return names


def check_keys(frame: pl.DataFrame, *, what: str) -> None:
    """Check ``date`` is Date, ``instrument`` is String, neither has nulls and no key repeats."""
    require_columns(frame, KEYS, what=what)
    for column, dtype in (("date", pl.Date), ("instrument", pl.String)):
        if frame.schema[column] != dtype:
            raise DataError(
                f"{what}: column {column!r} is {frame.schema[column]}, expected {dtype}; cast it first"
            )
        nulls = frame[column].null_count()
        if nulls:
            raise DataError(
                f"{what}: key column {column!r} holds {nulls} nulls; every row needs a date and a name"
            )
    duplicates = int(frame.select(pl.struct(*KEYS).is_duplicated().sum()).item())
    if duplicates:
        raise DataError(
            f"{what} holds {duplicates} rows whose (date, instrument) key repeats; "
            "keep one row per name and day"
        )


def numeric_matrix(frame: pl.DataFrame, columns: Sequence[str], *, what: str) -> np.ndarray:
    """The named columns as a C-ordered float64 matrix, nulls as NaN, after refusing bad values.

    Raises:
        DataError: a column is not numeric, holds no usable value (all null or NaN), or holds NaN or
            infinite values (a null is the only accepted way to say "missing").
    """
    for column in columns:
        dtype = frame.schema[column]
        if not dtype.is_numeric():
            raise DataError(f"{what}: column {column!r} is {dtype}, expected a numeric (Float64) column")
        series = frame[column].cast(pl.Float64)
        nulls, nans = series.null_count(), int(series.is_nan().sum())
        if frame.height and nulls + nans == frame.height:
            raise DataError(
                f"{what}: column {column!r} holds no usable value ({nulls} null, {nans} NaN of "
                f"{frame.height} rows); check the upstream feature computation"
            )
        infs = int(series.is_infinite().sum())
        if nans or infs:
            raise DataError(
                f"{what}: column {column!r} holds {nans + infs} non-finite values ({nans} NaN, {infs} inf); "
                "write missing values as null and fix the division or log that produced them"
            )
    if not columns:
        return np.zeros((frame.height, 0), dtype=np.float64)
    matrix = frame.select(pl.col(c).cast(pl.Float64) for c in columns).to_numpy(order="c")
    return np.ascontiguousarray(matrix, dtype=np.float64)


def canonical_sort(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame sorted by ``(date, instrument)``: the one row order all numerics run in."""
    return frame.sort(list(KEYS), maintain_order=True)


def date_starts(dates: pl.Series) -> np.ndarray:
    """Row offsets where each date's block begins in a frame sorted by date (empty for no rows)."""
    if dates.len() == 0:
        return np.zeros(0, dtype=np.intp)
    changed = dates.ne_missing(dates.shift(1)).fill_null(True).to_numpy()
    return np.flatnonzero(changed).astype(np.intp)


def block_lengths(starts: np.ndarray, n_rows: int) -> np.ndarray:
    """Row counts of the blocks that begin at ``starts`` in an array of ``n_rows`` rows."""
    return np.diff(np.append(starts, n_rows))


def demean_by_date(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Subtract each date's mean from a 1-D array without nulls (fixed-order per-date sums)."""
    if values.size == 0:
        return values.copy()
    means = np.add.reduceat(values, starts) / block_lengths(starts, values.size)
    return values - np.repeat(means, block_lengths(starts, values.size))


def standardize_by_date(values: np.ndarray, starts: np.ndarray, winsor_z: float) -> np.ndarray:
    """Apply the module's per-date preprocessing to a ``(rows, features)`` matrix with NaN for null.

    Args:
        values: float64 matrix in canonical row order; NaN marks a null (other non-finite values
            must have been refused before, see :func:`numeric_matrix`).
        starts: :func:`date_starts` of the same rows.
        winsor_z: positive clip bound for the z-scores (``math.inf`` disables clipping).

    Returns:
        A new float64 matrix of the same shape with no NaN.
    """
    n_rows = values.shape[0]
    if n_rows == 0:
        return np.zeros_like(values)
    present = ~np.isnan(values)
    filled = np.where(present, values, 0.0)
    lengths = block_lengths(starts, n_rows)
    counts = np.add.reduceat(present.astype(np.float64), starts, axis=0)
    safe_counts = np.maximum(counts, 1.0)
    means = np.add.reduceat(filled, starts, axis=0) / safe_counts
    deviations = np.where(present, filled - np.repeat(means, lengths, axis=0), 0.0)
    std = np.sqrt(np.add.reduceat(deviations * deviations, starts, axis=0) / safe_counts)
    # Constant detection on the raw values: the rounded mean of equal numbers need not equal them.
    highest = np.maximum.reduceat(np.where(present, values, -np.inf), starts, axis=0)
    lowest = np.minimum.reduceat(np.where(present, values, np.inf), starts, axis=0)
    informative = (counts >= 2.0) & (highest > lowest)
    scale = np.repeat(np.where(informative, std, 1.0), lengths, axis=0)
    z = np.clip(deviations / scale, -winsor_z, winsor_z)
    return np.where(np.repeat(informative, lengths, axis=0) & present, z, 0.0)


# --- the model -----------------------------------------------------------------------------------


def _as_float(value: object, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ConfigurationError(f"{what} must be a real number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LinearSignalModel:
    """A cross-sectional linear signal: ``score = intercept + sum_j coefficients[j] * z_j``.

    ``z_j`` is feature ``feature_columns[j]`` after the per-date preprocessing described in this
    module (z-score, clip to ``winsor_z``, nulls neutral). Every field is part of the serialized
    bytes and so of :attr:`sha256`: the provenance fields (``label_column``, ``alpha``, ``seed``,
    ``training_window``, ``n_days``, ``n_rows``) commit the model's identity to how it was trained.

    Example:
        >>> model = LinearSignalModel(("mom_21d",), (0.5,), 0.0)
        >>> LinearSignalModel.from_bytes(model.to_bytes()) == model
        True
    """

    feature_columns: tuple[str, ...]
    coefficients: tuple[float, ...]
    intercept: float
    winsor_z: float = DEFAULT_WINSOR_Z
    label_column: str = "fwd_ret_1d"
    alpha: float = 1.0
    seed: int = 0
    training_window: DataWindow | None = None
    n_days: int = 0
    n_rows: int = 0

    def __post_init__(self) -> None:
        columns = check_feature_columns(self.feature_columns)
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
        if not isinstance(self.label_column, str) or not self.label_column or self.label_column in columns:
            raise ConfigurationError(
                f"label column {self.label_column!r} must be a name apart from the features"
            )
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
        """Score a feature frame: ``[date, instrument, score]`` sorted by ``(date, instrument)``.

        Each date is standardized on its own cross-section, exactly as in training. Extra columns
        are ignored; nulls are neutral. The score is accumulated feature by feature in the order
        of :attr:`feature_columns` (element-wise, no BLAS), so it is bit-stable across machines.

        Raises:
            DataError: a key or feature column is missing (all are listed), keys are malformed or
                repeat, or a feature holds NaN/inf or no usable value at all.
        """
        what = "the feature frame to score"
        require_columns(features, (*KEYS, *self.feature_columns), what=what)
        check_keys(features, what=what)
        if features.height == 0:
            return pl.DataFrame(schema={"date": pl.Date, "instrument": pl.String, "score": pl.Float64})
        ordered = canonical_sort(features.select(*KEYS, *self.feature_columns))
        matrix = numeric_matrix(ordered, self.feature_columns, what=what)
        z = standardize_by_date(matrix, date_starts(ordered["date"]), self.winsor_z)
        score = np.zeros(ordered.height, dtype=np.float64)
        for j, coefficient in enumerate(self.coefficients):
            score = score + z[:, j] * coefficient
        score = score + self.intercept
        return ordered.select(*KEYS).with_columns(pl.Series("score", score, dtype=pl.Float64))

    # -- serialization ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; floats are ``float.hex()`` strings so every bit survives."""
        return {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
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
            DataError: the bytes are not JSON, of another format or format version, miss or add
                fields, hold values of the wrong type, or are not the canonical encoding of the
                model they describe (so ``from_bytes(b).to_bytes() == b`` always holds).
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
        fmt, version = payload.get("format"), payload.get("format_version")
        if fmt != MODEL_FORMAT:
            raise DataError(f"unknown model format {fmt!r}; expected {MODEL_FORMAT!r}")
        if version != MODEL_FORMAT_VERSION:
            raise DataError(
                f"unknown {MODEL_FORMAT} format version {version!r}; "
                f"this code reads version {MODEL_FORMAT_VERSION}"
            )
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
