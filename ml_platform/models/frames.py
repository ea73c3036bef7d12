"""Frame checks and the per-time cross-sectional preprocessing every model family shares. Pure.

How it works, and why: docs/architecture.md, "ml_platform/models/frames.py".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.keys import FrameKeys
from ml_platform.window import DataWindow

__all__ = [
    "block_lengths",
    "canonical_sort",
    "check_feature_columns",
    "check_keys",
    "check_label_column",
    "date_starts",
    "demean_by_date",
    "numeric_matrix",
    "require_columns",
    "require_keys",
    "standardize_by_date",
    "time_window",
]


def require_keys(keys: object) -> FrameKeys:
    """Return ``keys`` if it is a :class:`FrameKeys`, else raise :class:`ConfigurationError`."""
    if not isinstance(keys, FrameKeys):
        raise ConfigurationError(
            f"keys must be a FrameKeys (e.g. FrameKeys('date', ('instrument',))), got {type(keys).__name__}"
        )
    return keys


def require_columns(frame: pl.DataFrame, columns: Iterable[str], *, what: str) -> None:
    """Raise :class:`DataError` listing every one of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} lacks columns {missing} (it has {frame.columns}); produce them upstream or fix the names"
        )


def check_feature_columns(columns: object, keys: FrameKeys) -> tuple[str, ...]:
    """Validate feature column names (non-empty, unique strings, no key column); return them as a tuple."""
    if isinstance(columns, str) or not isinstance(columns, Iterable):
        raise ConfigurationError(f"feature_columns must be a sequence of names, got {columns!r}")
    names = tuple(columns)
    if not names:
        raise ConfigurationError("feature_columns is empty; name at least one feature")
    if any(not isinstance(c, str) or not c for c in names):
        raise ConfigurationError(f"feature column names must be non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigurationError(f"feature_columns repeat a name: {names!r}; list each feature once")
    clash = sorted(set(names) & set(keys.columns))
    if clash:
        raise ConfigurationError(f"feature_columns {names!r} include the key column(s) {clash} ({keys})")
    return names


def check_label_column(label: object, feature_columns: Sequence[str], keys: FrameKeys) -> str:
    """Validate the label column name: a non-empty string apart from the features and the keys."""
    if not isinstance(label, str) or not label:
        raise ConfigurationError(f"label_column must be a non-empty string, got {label!r}")
    if label in feature_columns or label in keys.columns:
        raise ConfigurationError(f"label_column {label!r} cannot also be a feature or key column")
    return label


def check_keys(frame: pl.DataFrame, keys: FrameKeys, *, what: str) -> None:
    """Check the time column is Date or Datetime, no key column holds nulls and no key repeats."""
    require_columns(frame, keys.columns, what=what)
    dtype = frame.schema[keys.time]
    if not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        raise DataError(
            f"{what}: time column {keys.time!r} is {dtype}, expected Date or Datetime; cast it first"
        )
    for column in keys.columns:
        nulls = frame[column].null_count()
        if nulls:
            raise DataError(
                f"{what}: key column {column!r} holds {nulls} nulls; every row needs a value in each of ({keys})"
            )
    if frame.height:
        duplicates = int(frame.select(pl.struct(*keys.columns).is_duplicated().sum()).item())
        if duplicates:
            raise DataError(
                f"{what} holds {duplicates} rows whose ({keys}) key repeats; keep one row per key"
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


def canonical_sort(frame: pl.DataFrame, keys: FrameKeys) -> pl.DataFrame:
    """The frame sorted by ``keys.columns``: the one row order all numerics run in."""
    return frame.sort(list(keys.columns), maintain_order=True)


def time_window(times: pl.Series) -> DataWindow:
    """The calendar days spanned by a non-empty Date or Datetime series (a Datetime in its own zone)."""
    days = times.dt.date() if isinstance(times.dtype, pl.Datetime) else times
    return DataWindow(days.min(), days.max())  # type: ignore[arg-type]


def date_starts(times: pl.Series) -> np.ndarray:
    """Row offsets where each time value's block begins in a frame sorted by time (empty for no rows)."""
    if times.len() == 0:
        return np.zeros(0, dtype=np.intp)
    changed = times.ne_missing(times.shift(1)).fill_null(True).to_numpy()
    return np.flatnonzero(changed).astype(np.intp)


def block_lengths(starts: np.ndarray, n_rows: int) -> np.ndarray:
    """Row counts of the blocks that begin at ``starts`` in an array of ``n_rows`` rows."""
    return np.diff(np.append(starts, n_rows))


def demean_by_date(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Subtract each cross-section's mean from a 1-D array without nulls (fixed-order per-time sums)."""
    if values.size == 0:
        return values.copy()
    means = np.add.reduceat(values, starts) / block_lengths(starts, values.size)
    return values - np.repeat(means, block_lengths(starts, values.size))


def standardize_by_date(values: np.ndarray, starts: np.ndarray, winsor_z: float) -> np.ndarray:
    """Apply the module's per-time preprocessing to a ``(rows, features)`` matrix with NaN for null.

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
