"""Deterministic training: the shared training-set preparation and the ridge trainer. Pure.

How it works, and why: docs/architecture.md, "ml_platform/models/training.py".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.keys import FrameKeys
from ml_platform.models.frames import (
    canonical_sort,
    check_keys,
    date_starts,
    demean_by_date,
    numeric_matrix,
    require_columns,
    require_keys,
    standardize_by_date,
    time_window,
)
from ml_platform.models.model import DEFAULT_WINSOR_Z, LinearSignalModel
from ml_platform.models.protocol import RIDGE_FORMAT, ModelInputs
from ml_platform.window import DataWindow

__all__ = ["PreparedSet", "RidgeTrainer", "check_fit_settings", "prepare_training", "split_window"]


@dataclass(frozen=True)
class PreparedSet:
    """The usable rows of a training set, ready to fit on, in canonical order.

    Attributes:
        features: ``(rows, features)`` float64, NaN where the feature is null.
        target: the label demeaned per time value.
        starts: row offsets where each time value's block begins.
        window: the calendar days of the whole training set (before rows were dropped).
    """

    features: np.ndarray
    target: np.ndarray
    starts: np.ndarray
    window: DataWindow

    @property
    def n_rows(self) -> int:
        return int(self.target.size)

    @property
    def n_days(self) -> int:
        return int(self.starts.size)


def check_fit_settings(*, winsor_z: object, min_days: object, min_rows_per_day: object) -> None:
    """Refuse a bad clip bound or row/time minimums (shared by every trainer's ``__post_init__``)."""
    for name, value, lowest in (("min_days", min_days, 1), ("min_rows_per_day", min_rows_per_day, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ConfigurationError(f"{name} must be an integer >= {lowest}, got {value!r}")
    if isinstance(winsor_z, bool) or not isinstance(winsor_z, (int, float)) or not winsor_z > 0:
        raise ConfigurationError(f"winsor_z must be > 0 (math.inf disables clipping), got {winsor_z!r}")


def prepare_training(training_set: pl.DataFrame, inputs: ModelInputs, *, min_days: int,
                     min_rows_per_day: int) -> PreparedSet:
    """Validate, sort and filter a training set (module steps 1-3).

    Raises:
        ConfigurationError: ``inputs`` is not a :class:`ModelInputs`.
        DataError: the set is empty; columns are missing (all listed); keys are malformed or
            repeat; a feature or the label is all null or NaN-only (named); NaN or inf values
            appear (column and count named); fewer than ``min_days`` usable time values remain
            (found and needed counts given).
    """
    if not isinstance(inputs, ModelInputs):
        raise ConfigurationError(f"inputs must be a ModelInputs, got {type(inputs).__name__}")
    if not isinstance(training_set, pl.DataFrame):
        raise DataError(f"the training set must be a polars DataFrame, got {type(training_set).__name__}")
    what, keys, label = "the training set", inputs.keys, inputs.label_column
    if training_set.height == 0:
        raise DataError("the training set is empty: the training window holds no rows; widen it or backfill it")
    require_columns(training_set, (*keys.columns, *inputs.feature_columns, label), what=what)
    check_keys(training_set, keys, what=what)
    frame = canonical_sort(training_set.select(*keys.columns, *inputs.feature_columns, label), keys)
    numeric_matrix(frame, (*inputs.feature_columns, label), what=what)
    labelled = frame.filter(pl.col(label).is_not_null())
    usable = labelled.filter(pl.len().over(keys.time) >= min_rows_per_day)
    n_days = usable[keys.time].n_unique()
    if n_days < min_days:
        raise DataError(
            f"too few {keys.time} values to train: found {n_days} with at least {min_rows_per_day} labelled rows "
            f"(of {frame[keys.time].n_unique()} in the set), need {min_days}; "
            "widen the training window or lower min_days"
        )
    starts = date_starts(usable[keys.time])
    labels = usable[label].cast(pl.Float64).to_numpy().astype(np.float64)
    return PreparedSet(
        features=numeric_matrix(usable, inputs.feature_columns, what=what),
        target=demean_by_date(labels, starts),
        starts=starts,
        window=time_window(frame[keys.time]),
    )


@dataclass(frozen=True)
class RidgeTrainer:
    """The cross-sectional ridge: standardized features, pooled closed-form fit (see the module).

    Attributes:
        alpha: ridge penalty on the coefficients (not on the intercept); must be a finite number > 0.
        winsor_z: clip bound of the per-time feature z-scores (``math.inf`` disables clipping).
        min_days: time values with usable rows required after filtering, else the fit is refused.
        min_rows_per_day: usable rows (non-null label) a time value needs to be kept; at least 2.

    Example:
        >>> RidgeTrainer(alpha=2.0).params()["alpha"]
        2.0
    """

    format_id: ClassVar[str] = RIDGE_FORMAT

    alpha: float = 10.0
    winsor_z: float = DEFAULT_WINSOR_Z
    min_days: int = 60
    min_rows_per_day: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)):
            raise ConfigurationError(f"alpha must be a number, got {self.alpha!r}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ConfigurationError(f"alpha must be a finite ridge penalty > 0, got {self.alpha}; try 10.0")
        check_fit_settings(winsor_z=self.winsor_z, min_days=self.min_days, min_rows_per_day=self.min_rows_per_day)
        object.__setattr__(self, "alpha", float(self.alpha))
        object.__setattr__(self, "winsor_z", float(self.winsor_z))

    def params(self) -> dict[str, bool | int | float | str]:
        """The hyper-parameters, as logged to MLflow."""
        return {"alpha": self.alpha, "winsor_z": self.winsor_z, "min_days": self.min_days,
                "min_rows_per_day": self.min_rows_per_day}

    def fit(self, training_set: pl.DataFrame, inputs: ModelInputs) -> LinearSignalModel:
        """Fit the ridge; the same rows always give the same model bytes, whatever their order.

        Returns:
            The fitted :class:`LinearSignalModel`, its ``training_window`` the input's day span.

        Raises:
            DataError: see :func:`prepare_training`; or the fit diverged.
        """
        prepared = prepare_training(training_set, inputs, min_days=self.min_days,
                                    min_rows_per_day=self.min_rows_per_day)
        design = standardize_by_date(prepared.features, prepared.starts, self.winsor_z)
        coefficients, intercept = _ridge(design, prepared.target, self.alpha)
        return LinearSignalModel(
            feature_columns=inputs.feature_columns,
            coefficients=tuple(float(c) for c in coefficients),
            intercept=intercept,
            winsor_z=self.winsor_z,
            label_column=inputs.label_column,
            alpha=self.alpha,
            seed=inputs.seed,
            training_window=prepared.window,
            n_days=prepared.n_days,
            n_rows=prepared.n_rows,
            keys=inputs.keys,
        )


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
    training_set: pl.DataFrame, validation_fraction: float, *, keys: FrameKeys, embargo_days: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a set by time into an earlier training part and a later validation part.

    The last ``round(n_times * validation_fraction)`` distinct time values (at least one, and
    leaving at least one) form the validation part; ``embargo_days`` time values just before it are
    dropped from both parts (labels that look ahead must not straddle the split). No time value is
    in both parts; both come back sorted by ``keys.columns``.

    Raises:
        ConfigurationError: ``validation_fraction`` is not strictly between 0 and 1, or
            ``embargo_days`` is negative.
        DataError: the keys are missing or malformed, or there are too few time values to split.
    """
    keys = require_keys(keys)
    if isinstance(validation_fraction, bool) or not isinstance(validation_fraction, (int, float)):
        raise ConfigurationError(f"validation_fraction must be a number, got {validation_fraction!r}")
    if not 0.0 < validation_fraction < 1.0:
        raise ConfigurationError(
            f"validation_fraction must lie strictly between 0 and 1, got {validation_fraction}; try 0.2"
        )
    if isinstance(embargo_days, bool) or not isinstance(embargo_days, int) or embargo_days < 0:
        raise ConfigurationError(f"embargo_days must be an integer >= 0, got {embargo_days!r}")
    check_keys(training_set, keys, what="the set to split")
    times = training_set[keys.time].unique().sort()
    n_times = times.len()
    if n_times < 2 + embargo_days:
        raise DataError(
            f"cannot split {n_times} {keys.time} values into training and validation with an embargo of "
            f"{embargo_days}; need at least {2 + embargo_days}"
        )
    n_validation = min(max(round(n_times * validation_fraction), 1), n_times - 1 - embargo_days)
    first_validation = times[n_times - n_validation]
    last_train = times[n_times - n_validation - 1 - embargo_days]
    ordered = canonical_sort(training_set, keys)
    return (
        ordered.filter(pl.col(keys.time) <= last_train),
        ordered.filter(pl.col(keys.time) >= first_validation),
    )
