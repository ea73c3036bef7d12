"""From model scores to portfolio weights: dollar-neutral, rank-based, unit gross per time value. Pure.

How it works, and why: docs/architecture.md, "ml_platform/models/signals.py".
"""

from __future__ import annotations

import polars as pl

from ml_platform.errors import DataError
from ml_platform.keys import FrameKeys
from ml_platform.models.frames import (
    canonical_sort,
    check_keys,
    numeric_matrix,
    require_columns,
    require_keys,
)

__all__ = ["SIGNAL_COLUMNS", "check_signals", "to_signals"]

#: The value columns of a signals frame, after its key columns.
SIGNAL_COLUMNS = ("score", "weight")


def _check_reserved(keys: FrameKeys) -> FrameKeys:
    keys = require_keys(keys)
    clash = sorted(set(keys.columns) & {*SIGNAL_COLUMNS, "_centred"})
    if clash:
        raise DataError(f"key column(s) {clash} clash with the signal columns {SIGNAL_COLUMNS}; rename the keys")
    return keys


def to_signals(scores: pl.DataFrame, keys: FrameKeys) -> pl.DataFrame:
    """Turn ``[*keys.columns, score]`` into ``[*keys.columns, score, weight]``.

    Args:
        scores: one row per key, e.g. the output of a model's ``predict``. Extra columns are dropped.
        keys: the frame's key columns; weights are computed per ``keys.time`` value.

    Returns:
        The signals frame, sorted by ``keys.columns``, ``score`` and ``weight`` Float64.

    Raises:
        DataError: a column is missing, keys are malformed or repeat, the score is not numeric,
            holds NaN/inf, or is null on every row.
    """
    keys = _check_reserved(keys)
    what = "the score frame"
    require_columns(scores, (*keys.columns, "score"), what=what)
    check_keys(scores, keys, what=what)
    frame = canonical_sort(scores.select(*keys.columns, pl.col("score").cast(pl.Float64)), keys)
    if scores.height == 0:
        return frame.with_columns(weight=pl.lit(None, dtype=pl.Float64))
    numeric_matrix(scores, ("score",), what=what)
    score, time = pl.col("score"), keys.time
    centred = score.rank("average").over(time) - (score.count().over(time).cast(pl.Float64) + 1.0) / 2.0
    frame = frame.with_columns(_centred=centred)
    gross = pl.col("_centred").abs().sum().over(time)
    weight = pl.when(score.is_not_null() & (gross > 0.0)).then(pl.col("_centred") / gross).otherwise(0.0)
    return frame.with_columns(weight=weight.cast(pl.Float64)).select(*keys.columns, *SIGNAL_COLUMNS)


def check_signals(
    signals: pl.DataFrame, keys: FrameKeys, *, what: str = "the signals frame", need_score: bool = False
) -> None:
    """Validate a signals frame: keys, a finite non-null ``weight`` and, if asked, a ``score``.

    Raises:
        DataError: naming the missing column, the bad key or the non-finite or null weights.
    """
    keys = _check_reserved(keys)
    require_columns(signals, (*keys.columns, "weight", *(("score",) if need_score else ())), what=what)
    check_keys(signals, keys, what=what)
    if signals.height == 0:
        return
    numeric_matrix(signals, ("weight", *(("score",) if need_score else ())), what=what)
    nulls = signals["weight"].null_count()
    if nulls:
        raise DataError(f"{what}: column 'weight' holds {nulls} nulls; a position of zero is written 0.0")
