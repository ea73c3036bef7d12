"""Deterministic training of the cross-sectional ridge signal model. Pure: no Dagster, no MLflow.

The fit, precisely:

1. The training set is validated (columns, keys, types, no NaN/inf, no empty column) and sorted
   canonically by ``(date, instrument)``, so any input row order gives the same bits.
2. Rows with a null label are dropped; then dates with fewer than ``min_rows_per_day`` rows left
   are dropped (a cross-section that small carries no ranking information). At least ``min_days``
   dates must remain.
3. Features are standardized per date as defined in :mod:`ml_platform.models.model` (z-score,
   winsorize, nulls neutral); the target is the label demeaned per date.
4. All dates are pooled and a ridge regression with an unpenalized intercept is solved in closed
   form: with ``Xc``, ``yc`` the pooled-centred design and target,
   ``beta = solve(Xc'Xc + alpha*I, Xc'yc)`` and ``intercept = mean(y) - mean(X) @ beta``. This runs in
   NumPy float64 inside ``threadpoolctl.threadpool_limits(1)`` so BLAS threading cannot change the
   order of floating-point additions, hence the bits.

There is no randomness anywhere in this fit: ``seed`` is recorded in the config and in the model
(and so in its hash) for the reproduction certificate, but nothing draws from it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.models.model import (
    DEFAULT_WINSOR_Z,
    KEYS,
    LinearSignalModel,
    canonical_sort,
    check_feature_columns,
    check_keys,
    date_starts,
    demean_by_date,
    numeric_matrix,
    require_columns,
    standardize_by_date,
)
from ml_platform.window import DataWindow


@dataclass(frozen=True)
class TrainingConfig:
    """What to fit and how; every field is recorded with the model.

    Attributes:
        feature_columns: model inputs, in the order the coefficients follow.
        label_column: the target, a next-bar log return (null where not yet known).
        alpha: ridge penalty on the coefficients (not on the intercept); must be > 0.
        seed: recorded for reproduction; the closed-form fit has no randomness and does not use it.
        min_days: dates with usable rows required after filtering, else the fit is refused.
        min_rows_per_day: usable rows (non-null label) a date needs to be kept; at least 2.
        winsor_z: clip bound of the per-date feature z-scores (``math.inf`` disables clipping).

    Example:
        >>> TrainingConfig(feature_columns=("mom_21d", "vol_21d"), alpha=10.0).alpha
        10.0
    """

    feature_columns: tuple[str, ...]
    label_column: str = "fwd_ret_1d"
    alpha: float = 1.0
    seed: int = 0
    min_days: int = 60
    min_rows_per_day: int = 2
    winsor_z: float = DEFAULT_WINSOR_Z

    def __post_init__(self) -> None:
        columns = check_feature_columns(self.feature_columns)
        object.__setattr__(self, "feature_columns", columns)
        if not isinstance(self.label_column, str) or not self.label_column:
            raise ConfigurationError(f"label_column must be a non-empty string, got {self.label_column!r}")
        if self.label_column in columns or self.label_column in KEYS:
            raise ConfigurationError(
                f"label_column {self.label_column!r} cannot also be a feature or key column"
            )
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            raise ConfigurationError(f"alpha must be a number, got {self.alpha!r}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ConfigurationError(f"alpha must be a finite ridge penalty > 0, got {self.alpha}; try 1.0")
        object.__setattr__(self, "alpha", float(self.alpha))
        for name, lowest in (("seed", None), ("min_days", 1), ("min_rows_per_day", 2)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(f"{name} must be an integer, got {value!r}")
            if lowest is not None and value < lowest:
                raise ConfigurationError(f"{name} must be at least {lowest}, got {value}")
        winsor_z = self.winsor_z
        if isinstance(winsor_z, bool) or not isinstance(winsor_z, (int, float)) or not winsor_z > 0:
            raise ConfigurationError(f"winsor_z must be > 0 (math.inf disables clipping), got {winsor_z!r}")
        object.__setattr__(self, "winsor_z", float(self.winsor_z))

    def to_dict(self) -> dict[str, Any]:
        """Plain values for logging as run parameters (feature columns as a list)."""
        data = asdict(self)
        data["feature_columns"] = list(self.feature_columns)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys raise :class:`ConfigurationError`."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown or "feature_columns" not in data:
            raise ConfigurationError(
                f"training config record has unknown keys {sorted(unknown)} or lacks 'feature_columns'"
            )
        return cls(**{**data, "feature_columns": tuple(data["feature_columns"])})


def train(training_set: pl.DataFrame, config: TrainingConfig) -> LinearSignalModel:
    """Fit the cross-sectional ridge model; the same rows always give the same model bytes.

    Args:
        training_set: ``date`` (Date), ``instrument`` (String), the config's feature columns and
            label column (numeric, nullable). Extra columns are ignored; row order does not matter.
        config: what to fit.

    Returns:
        The fitted :class:`LinearSignalModel`, its ``training_window`` the input's date span.

    Raises:
        DataError: the set is empty; columns are missing (all listed); keys are malformed or
            repeat; a feature or the label is all null or NaN-only (named); NaN or inf values
            appear (column and count named); fewer than ``min_days`` usable dates remain (found
            and needed counts given).
    """
    if not isinstance(config, TrainingConfig):
        raise ConfigurationError(f"config must be a TrainingConfig, got {type(config).__name__}")
    what = "the training set"
    if training_set.height == 0:
        raise DataError(
            "the training set is empty: the training window holds no rows; widen it or backfill it"
        )
    require_columns(training_set, (*KEYS, *config.feature_columns, config.label_column), what=what)
    check_keys(training_set, what=what)
    frame = canonical_sort(training_set.select(*KEYS, *config.feature_columns, config.label_column))
    numeric_matrix(frame, (*config.feature_columns, config.label_column), what=what)
    window = DataWindow(frame["date"].min(), frame["date"].max())  # type: ignore[arg-type]

    usable = _usable_rows(frame, config)
    features = numeric_matrix(usable, config.feature_columns, what=what)
    labels = usable[config.label_column].cast(pl.Float64).to_numpy().astype(np.float64)
    starts = date_starts(usable["date"])
    design = standardize_by_date(features, starts, config.winsor_z)
    target = demean_by_date(labels, starts)
    coefficients, intercept = _ridge(design, target, config.alpha)
    return LinearSignalModel(
        feature_columns=config.feature_columns,
        coefficients=tuple(float(c) for c in coefficients),
        intercept=intercept,
        winsor_z=config.winsor_z,
        label_column=config.label_column,
        alpha=config.alpha,
        seed=config.seed,
        training_window=window,
        n_days=len(starts),
        n_rows=usable.height,
    )


def _usable_rows(frame: pl.DataFrame, config: TrainingConfig) -> pl.DataFrame:
    """Rows with a label, on dates with a large enough cross-section; refuses too few dates."""
    labelled = frame.filter(pl.col(config.label_column).is_not_null())
    kept = labelled.filter(pl.len().over("date") >= config.min_rows_per_day)
    n_days = kept["date"].n_unique()
    if n_days < config.min_days:
        raise DataError(
            f"too few days to train: found {n_days} dates with at least {config.min_rows_per_day} "
            "labelled rows "
            f"(of {frame['date'].n_unique()} dates in the set), need {config.min_days}; "
            "widen the training window or lower min_days"
        )
    return kept


def _ridge(design: np.ndarray, target: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Closed-form ridge with an unpenalized intercept, single-threaded BLAS for stable bits."""
    with threadpool_limits(limits=1):
        x_mean = design.mean(axis=0)
        y_mean = float(target.mean())
        xc = design - x_mean
        yc = target - y_mean
        gram = xc.T @ xc + alpha * np.eye(design.shape[1])
        coefficients = np.linalg.solve(gram, xc.T @ yc)
        intercept = y_mean - float(x_mean @ coefficients)
    if not (np.all(np.isfinite(coefficients)) and math.isfinite(intercept)):
        raise DataError(
            "the ridge fit produced non-finite coefficients; check the features for extreme values"
        )
    return coefficients, intercept


def split_window(
    training_set: pl.DataFrame, validation_fraction: float, *, embargo_days: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a set by date into an earlier training part and a later validation part.

    The last ``round(n_dates * validation_fraction)`` distinct dates (at least one, and leaving at
    least one) form the validation part; ``embargo_days`` dates just before it are dropped from
    both parts (useful when labels span several bars). No date is in both parts; both come back
    sorted by ``(date, instrument)``.

    Raises:
        ConfigurationError: ``validation_fraction`` is not strictly between 0 and 1, or
            ``embargo_days`` is negative.
        DataError: the frame has no usable ``date`` column or too few dates to split.
    """
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float)):
        raise ConfigurationError(f"validation_fraction must be a number, got {validation_fraction!r}")
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigurationError(
            f"validation_fraction must lie strictly between 0 and 1, got {validation_fraction}; try 0.2"
        )
    if isinstance(embargo_days, bool) or not isinstance(embargo_days, int) or embargo_days < 0:
        raise ConfigurationError(f"embargo_days must be an integer >= 0, got {embargo_days!r}")
    require_columns(training_set, ("date",), what="the set to split")
    if training_set.schema["date"] != pl.Date or training_set["date"].null_count():
        raise DataError("the set to split needs a Date column 'date' without nulls")
    dates = training_set["date"].unique().sort()
    n_dates = dates.len()
    if n_dates < 2 + embargo_days:
        raise DataError(
            f"cannot split {n_dates} dates into training and validation with an embargo of {embargo_days}; "
            f"need at least {2 + embargo_days} dates"
        )
    n_validation = min(max(round(n_dates * validation_fraction), 1), n_dates - 1 - embargo_days)
    first_validation = dates[n_dates - n_validation]
    last_train = dates[n_dates - n_validation - 1 - embargo_days]
    if "instrument" in training_set.columns:
        ordered = canonical_sort(training_set)
    else:
        ordered = training_set.sort("date", maintain_order=True)
    return (
        ordered.filter(pl.col("date") <= last_train),
        ordered.filter(pl.col("date") >= first_validation),
    )
