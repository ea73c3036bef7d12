"""From model scores to portfolio weights: dollar-neutral, rank-based, unit gross per date. Pure.

For each date, over the names with a non-null score:

* ``r_i`` is the average rank of the score (ties share their mean rank), ``n`` the number of names;
* ``d_i = r_i - (n + 1) / 2`` centres the ranks (so ``sum d_i = 0``: dollar-neutral);
* ``w_i = d_i / sum_j |d_j|`` scales to unit gross exposure (``sum |w_i| = 1``): half long, half short.

A date with one scored name, or whose scores all tie, has ``sum |d| = 0`` and gets zero weights: no
view, no position. A null score also gets weight 0 and takes no part in that date's ranking.

Ranks and their centred values are multiples of 0.5, so every sum above is exact in float64 and
the weights do not depend on row order or on how the frame is chunked.
"""

from __future__ import annotations

import polars as pl

from ml_platform.errors import DataError
from ml_platform.models.model import KEYS, canonical_sort, check_keys, numeric_matrix, require_columns

SIGNAL_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "instrument": pl.String(),
    "score": pl.Float64(),
    "weight": pl.Float64(),
}


def to_signals(scores: pl.DataFrame) -> pl.DataFrame:
    """Turn ``[date, instrument, score]`` into ``[date, instrument, score, weight]``.

    Args:
        scores: one row per (date, instrument), e.g. the output of
            :meth:`~ml_platform.models.model.LinearSignalModel.predict`. Extra columns are dropped.

    Returns:
        The signals frame, sorted by ``(date, instrument)``, with the schema :data:`SIGNAL_SCHEMA`.

    Raises:
        DataError: a column is missing, keys are malformed or repeat, the score is not numeric,
            holds NaN/inf, or is null on every row.
    """
    what = "the score frame"
    require_columns(scores, (*KEYS, "score"), what=what)
    check_keys(scores, what=what)
    if scores.height == 0:
        return pl.DataFrame(schema=SIGNAL_SCHEMA)
    numeric_matrix(scores, ("score",), what=what)
    frame = canonical_sort(scores.select(*KEYS, pl.col("score").cast(pl.Float64)))
    score = pl.col("score")
    centred = score.rank("average").over("date") - (score.count().over("date").cast(pl.Float64) + 1.0) / 2.0
    frame = frame.with_columns(_centred=centred)
    gross = pl.col("_centred").abs().sum().over("date")
    weight = pl.when(score.is_not_null() & (gross > 0.0)).then(pl.col("_centred") / gross).otherwise(0.0)
    return frame.with_columns(weight=weight.cast(pl.Float64)).select(*SIGNAL_SCHEMA)


def check_signals(
    signals: pl.DataFrame, *, what: str = "the signals frame", need_score: bool = False
) -> None:
    """Validate a signals frame: keys, a finite non-null ``weight`` and, if asked, a ``score``.

    Raises:
        DataError: naming the missing column, the bad key or the non-finite or null weights.
    """
    require_columns(signals, (*KEYS, "weight", *(("score",) if need_score else ())), what=what)
    check_keys(signals, what=what)
    if signals.height == 0:
        return
    numeric_matrix(signals, ("weight", *(("score",) if need_score else ())), what=what)
    nulls = signals["weight"].null_count()
    if nulls:
        raise DataError(f"{what}: column 'weight' holds {nulls} nulls; a position of zero is written 0.0")
