"""Pure, point-in-time quant feature functions over daily bars (polars). No Dagster.

Every function takes a frame covering a span of days (usually a partition plus its lookback history),
keyed by ``date`` and ``instrument``, and returns ``date``, ``instrument`` and its feature columns for
*every* input row, in the input's row order; the caller trims the result to the days it owns.

Rules every feature here follows:

* **Point in time.** A value at day ``D`` uses only rows dated ``<= D``. The label
  (:func:`forward_return`) is the one exception and uses only later rows.
* **Bars, not calendar days.** Windows count an instrument's own trading bars (rows), so a halt or a
  holiday never shortens a window. Without a full window of history the value is null, never a
  partial-window estimate.
* **Start independent, bit for bit.** Windowed statistics are explicit fixed-order sums over lagged
  values, never polars' sliding ``rolling_*`` kernels, whose float results depend (in the last bits) on
  where the frame starts. A value therefore has the same bytes whether it was computed in a one-day
  partition with a short lookback or in a fourteen-year backfill.
* Returns are log returns of ``adj_close``; outputs are Float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import reduce
from operator import add

import polars as pl

from ml_platform import ConfigurationError, DataError
from quant_alpha.market.schema import KEYS

#: Trading days per year, for annualizing volatility.
ANNUALIZATION = 252
#: Bars an instrument may miss (a trading halt) inside a lookback and still get a full window.
HALT_ALLOWANCE = 5
_ROW, _POS, _COUNT, _MEAN = "__row", "__bar", "__bars", "__mean"


def _check_frame(frame: pl.DataFrame, needs: Mapping[str, pl.DataType], what: str) -> None:
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"{what}: expected a polars DataFrame, got {type(frame).__name__}")
    missing = [name for name in needs if name not in frame.columns]
    if missing:
        raise DataError(f"{what}: input lacks column(s) {missing} (it has {frame.columns})")
    wrong = {name: str(frame.schema[name]) for name, dtype in needs.items() if frame.schema[name] != dtype}
    if wrong:
        raise DataError(
            f"{what}: columns {wrong} have the wrong dtype; expected "
            f"{ {name: str(needs[name]) for name in wrong} }"
        )
    for name in KEYS:
        if frame[name].null_count():
            raise DataError(
                f"{what}: {frame[name].null_count()} row(s) have a null {name!r}; every row needs one"
            )
    dups = frame.select(pl.struct(*KEYS).is_duplicated().sum()).item()
    if dups:
        raise DataError(
            f"{what}: {dups} rows share a (date, instrument) with another row; "
            "keep one row per instrument and day (validate bars with validate_bars)"
        )


def _positive_int(value: object, name: str, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{what}: {name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_positive_prices(frame: pl.DataFrame, what: str) -> None:
    bad = frame.select((pl.col("adj_close") <= 0).sum()).item()
    if bad:
        raise DataError(f"{what}: {bad} non-positive adj_close value(s); log returns need positive prices")


def _ordered(frame: pl.DataFrame, *columns: str | pl.Expr) -> pl.DataFrame:
    """The keys and ``columns`` sorted by (instrument, date), with the input row number and bar numbers.

    In this order ``shift(j)`` is the instrument's j-th previous bar wherever its bar number ``__bar``
    (0 for the instrument's first row in the frame) is at least ``j``; ``__bars`` is its row count.
    """
    ordered = frame.select(*KEYS, *columns).with_row_index(_ROW).sort("instrument", "date")
    return ordered.with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).over("instrument").alias(_POS),
        pl.len().over("instrument").cast(pl.Int64).alias(_COUNT),
    )


def _restore(ordered: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """Back to the input's row order, keeping the keys and the Float64 feature columns ``names``."""
    return ordered.sort(_ROW).select(*KEYS, *[pl.col(name).cast(pl.Float64) for name in names])


def _bar() -> pl.Expr:
    return pl.col(_POS)


def _log_adj() -> pl.Expr:
    return pl.col("adj_close").log()


def _lagged_mean_std(frame: pl.DataFrame, column: pl.Expr, lags: range, name: str) -> pl.DataFrame:
    """Add ``name`` = mean and ``name + '_sd'`` = sample std of ``column`` lagged by each of ``lags``.

    Fixed-order sums (lag ``lags[0]`` first); any null among the lags makes both null. The caller has
    sorted by (instrument, date) and guards the result with the bar number.
    """
    terms = [column.shift(j) for j in lags]
    with_mean = frame.with_columns((reduce(add, terms) / len(terms)).alias(_MEAN))
    squares = [(term - pl.col(_MEAN)) ** 2 for term in terms]
    return with_mean.with_columns(
        pl.col(_MEAN).alias(name), (reduce(add, squares) / (len(terms) - 1)).sqrt().alias(f"{name}_sd")
    ).drop(_MEAN)


def daily_returns(bars: pl.DataFrame) -> pl.DataFrame:
    """Log return of ``adj_close`` against the instrument's previous bar in the frame.

    Returns:
        ``date``, ``instrument``, ``ret_1d`` (null on an instrument's first bar).
    """
    what = "daily_returns"
    _check_frame(bars, {"date": pl.Date(), "instrument": pl.String(), "adj_close": pl.Float64()}, what)
    _check_positive_prices(bars, what)
    ordered = _ordered(bars, "adj_close")
    ordered = ordered.with_columns(ret_1d=pl.when(_bar() >= 1).then(_log_adj() - _log_adj().shift(1)))
    return _restore(ordered, ["ret_1d"])


def momentum(bars: pl.DataFrame, lookbacks: Sequence[int] = (5, 21, 63)) -> pl.DataFrame:
    """Log return of ``adj_close`` over the last ``N`` bars, for each ``N`` in ``lookbacks``.

    Returns:
        ``date``, ``instrument``, ``mom_<N>d`` per lookback (null with fewer than ``N`` earlier bars).
    """
    what = "momentum"
    if isinstance(lookbacks, (str, bytes)) or not isinstance(lookbacks, Sequence) or not lookbacks:
        raise ConfigurationError(f"{what}: lookbacks must be a non-empty sequence of ints, got {lookbacks!r}")
    spans = [_positive_int(n, "every lookback", what) for n in lookbacks]
    if len(set(spans)) != len(spans):
        raise ConfigurationError(f"{what}: lookbacks {spans} repeat a value; each names one output column")
    _check_frame(bars, {"date": pl.Date(), "instrument": pl.String(), "adj_close": pl.Float64()}, what)
    _check_positive_prices(bars, what)
    ordered = _ordered(bars, "adj_close")
    ordered = ordered.with_columns(
        **{f"mom_{n}d": pl.when(_bar() >= n).then(_log_adj() - _log_adj().shift(n)) for n in spans}
    )
    return _restore(ordered, [f"mom_{n}d" for n in spans])


def realized_volatility(returns: pl.DataFrame, window: int = 21) -> pl.DataFrame:
    """Annualized (x sqrt(252)) sample standard deviation of ``ret_1d`` over the last ``window`` bars.

    Returns:
        ``date``, ``instrument``, ``vol_<window>d``: null unless the bar and the ``window - 1`` before
        it all have a return (so ``window + 1`` bars of prices).
    """
    what = "realized_volatility"
    n = _positive_int(window, "window", what, minimum=2)
    _check_frame(returns, {"date": pl.Date(), "instrument": pl.String(), "ret_1d": pl.Float64()}, what)
    name = f"vol_{n}d"
    stats = _lagged_mean_std(_ordered(returns, "ret_1d"), pl.col("ret_1d"), range(n), "__ret")
    annualized = pl.col("__ret_sd") * math.sqrt(ANNUALIZATION)
    return _restore(stats.with_columns(pl.when(_bar() >= n - 1).then(annualized).alias(name)), [name])


def volume_zscore(bars: pl.DataFrame, window: int = 63) -> pl.DataFrame:
    """Z-score of ``log(1 + volume)`` against the mean and sample std of the previous ``window`` bars.

    The current bar is excluded from its own statistics. Null without ``window`` earlier bars, or when
    their volume was constant (zero spread: no meaningful score).

    Returns:
        ``date``, ``instrument``, ``volz_<window>d``.
    """
    what = "volume_zscore"
    n = _positive_int(window, "window", what, minimum=2)
    _check_frame(bars, {"date": pl.Date(), "instrument": pl.String(), "volume": pl.Int64()}, what)
    negative = bars.select((pl.col("volume") < 0).sum()).item()
    if negative:
        raise DataError(f"{what}: {negative} negative volume value(s); volume counts shares traded")
    name = f"volz_{n}d"
    ordered = _ordered(bars, pl.col("volume").cast(pl.Float64).log1p().alias("__lv"))
    stats = _lagged_mean_std(ordered, pl.col("__lv"), range(1, n + 1), "__vol")
    score = (pl.col("__lv") - pl.col("__vol")) / pl.col("__vol_sd")
    return _restore(
        stats.with_columns(pl.when((_bar() >= n) & (pl.col("__vol_sd") > 0)).then(score).alias(name)), [name]
    )


def cross_sectional_ranks(features: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Per-date percentile rank in ``[0, 1]`` of each column across instruments.

    Ties get their average rank; null (and NaN) values stay null and are left out of the ranking; a date
    with a single valid value ranks it 0.5. The rank is ``(rank - 1) / (valid count - 1)``.

    Returns:
        ``date``, ``instrument``, ``rank_<col>`` per column.
    """
    what = "cross_sectional_ranks"
    if isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence) or not columns:
        raise ConfigurationError(
            f"{what}: columns must be a non-empty sequence of column names, got {columns!r}"
        )
    names = list(columns)
    if len(set(names)) != len(names) or set(names) & set(KEYS) or not all(isinstance(c, str) for c in names):
        raise ConfigurationError(
            f"{what}: columns {names} must be distinct feature names other than {list(KEYS)}"
        )
    _check_frame(features, {"date": pl.Date(), "instrument": pl.String()}, what)
    missing = [c for c in names if c not in features.columns]
    if missing:
        raise DataError(f"{what}: input lacks column(s) {missing} (it has {features.columns})")
    wrong = {c: str(features.schema[c]) for c in names if not features.schema[c].is_numeric()}
    if wrong:
        raise DataError(f"{what}: columns {wrong} are not numeric; only numeric features can be ranked")
    exprs = []
    for c in names:
        value = pl.col(c).cast(pl.Float64).fill_nan(None)
        count = value.count().over("date")
        pct = (
            pl.when(count == 1)
            .then(pl.lit(0.5))
            .otherwise((value.rank("average").over("date") - 1) / (count - 1))
        )
        exprs.append(pl.when(value.is_not_null()).then(pct).cast(pl.Float64).alias(f"rank_{c}"))
    return features.select(*KEYS, *exprs)


def forward_return(bars: pl.DataFrame, horizon: int = 1) -> pl.DataFrame:
    """The label: log return of ``adj_close`` from this bar to the instrument's bar ``horizon`` bars later.

    Looks ahead by design; null when that later bar is not in the frame (end of data, delisting).

    Returns:
        ``date``, ``instrument``, ``fwd_ret_<horizon>d``.
    """
    what = "forward_return"
    h = _positive_int(horizon, "horizon", what)
    _check_frame(bars, {"date": pl.Date(), "instrument": pl.String(), "adj_close": pl.Float64()}, what)
    _check_positive_prices(bars, what)
    name = f"fwd_ret_{h}d"
    ahead = pl.when(_bar() + h < pl.col(_COUNT)).then(_log_adj().shift(-h) - _log_adj())
    return _restore(_ordered(bars, "adj_close").with_columns(ahead.alias(name)), [name])


def trading_bars_to_calendar_days(bars: int, *, halt_allowance: int = HALT_ALLOWANCE) -> int:
    """A calendar-day span that safely holds ``bars`` trading bars of every instrument.

    Use it for a node's lookback (and a label's lookahead) so that a one-day partition sees as many of
    an instrument's bars as a long backfill does, and so computes the same value. It allows 1.5
    calendar days per bar (a year of about 250 bars spans 365 days: 1.46), plus 10 days for a cluster
    of holidays and exchange closures next to a weekend, for ``bars + halt_allowance`` bars, the
    allowance covering an instrument that was halted for that many bars inside the span. ``0`` bars
    need ``0`` days. Checked against the real 2000-2013 US calendar (9/11, hurricane Sandy) and the
    synthetic market's calendars and halts.

    Example:
        >>> trading_bars_to_calendar_days(63)
        112
    """
    what = "trading_bars_to_calendar_days"
    n = _positive_int(bars, "bars", what, minimum=0)
    allowance = _positive_int(halt_allowance, "halt_allowance", what, minimum=0)
    return 0 if n == 0 else math.ceil((n + allowance) * 1.5) + 10
