"""Backtest metrics of a signals frame against realized labels. Pure.

How it works, and why: docs/architecture.md, "ml_platform/models/backtest.py".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import polars as pl

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.keys import FrameKeys
from ml_platform.models.frames import (
    canonical_sort,
    check_keys,
    date_starts,
    numeric_matrix,
    require_columns,
    require_keys,
    time_window,
)
from ml_platform.models.signals import check_signals
from ml_platform.window import DataWindow

__all__ = [
    "DAILY_COLUMNS",
    "TRADING_DAYS_PER_YEAR",
    "BacktestReport",
    "backtest",
    "daily_ic",
    "daily_pnl",
    "daily_turnover",
    "max_drawdown",
    "mean_std_tstat",
    "sharpe_ratio",
]

#: Trading days per year, the default annualization of the Sharpe ratio.
TRADING_DAYS_PER_YEAR = 252
#: The value columns of :func:`daily_pnl`, after the time column.
DAILY_COLUMNS = ("pnl", "gross", "n_names")
_LABEL = "_label"
_RESERVED = frozenset({"score", "weight", _LABEL, "_k", "_a", "_b", *DAILY_COLUMNS})


@dataclass(frozen=True)
class BacktestReport:
    """The numbers a promotion gate and the drift monitor compare; see the module for definitions."""

    window: DataWindow
    n_days: int
    sharpe: float
    ic_mean: float
    ic_tstat: float
    hit_rate: float
    turnover: float
    max_drawdown: float
    total_return: float
    n_ic_days: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.window, DataWindow):
            raise DataError(f"a backtest report needs a DataWindow, got {self.window!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "window":
                continue
            if f.name in ("n_days", "n_ic_days"):
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                    raise DataError(f"backtest report field {f.name} must be a count >= 0, got {value!r}")
                object.__setattr__(self, f.name, int(value))
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                    raise DataError(f"backtest report field {f.name} must be a number, got {value!r}")
                if not math.isfinite(value):
                    raise DataError(f"backtest report field {f.name} is not finite ({value})")
                object.__setattr__(self, f.name, float(value))

    def to_dict(self) -> dict[str, float | int | str]:
        """Flat values, the window as ``"START..END"``; ready for MLflow metrics and the ledger."""
        return {
            f.name: str(self.window) if f.name == "window" else getattr(self, f.name) for f in fields(self)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BacktestReport:
        """Inverse of :meth:`to_dict`; a malformed record raises :class:`DataError`."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) != names:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise DataError(f"backtest report record must have exactly the keys {sorted(names)}, got {got}")
        return cls(**{**data, "window": DataWindow.parse(data["window"])})


def _checked(keys: FrameKeys, label_column: object) -> FrameKeys:
    keys = require_keys(keys)
    clash = sorted(set(keys.columns) & _RESERVED)
    if clash:
        raise ConfigurationError(f"key column(s) {clash} clash with backtest columns; rename the keys")
    if not isinstance(label_column, str) or not label_column or label_column in keys.columns:
        raise ConfigurationError(f"label_column must name the label, not a key column, got {label_column!r}")
    return keys


def _joined(signals: pl.DataFrame, labels: pl.DataFrame, label_column: str, keys: FrameKeys, *,
            need_score: bool) -> pl.DataFrame:
    """Signals left-joined with the label (as ``_label``), canonically sorted."""
    check_signals(signals, keys, need_score=need_score)
    what = "the label frame"
    require_columns(labels, (*keys.columns, label_column), what=what)
    check_keys(labels, keys, what=what)
    if labels.height:
        numeric_matrix(labels, (label_column,), what=what)
    right = labels.select(*keys.columns, pl.col(label_column).cast(pl.Float64).alias(_LABEL))
    left = signals.select(*keys.columns, "weight", *(("score",) if need_score else ()))
    return canonical_sort(left.join(right, on=list(keys.columns), how="left"), keys)


def _daily(joined: pl.DataFrame, keys: FrameKeys) -> pl.DataFrame:
    if joined.height == 0:
        return joined.select(keys.time).with_columns(
            pnl=pl.lit(None, pl.Float64), gross=pl.lit(None, pl.Float64), n_names=pl.lit(None, pl.Int64))
    starts = date_starts(joined[keys.time])
    weight = joined["weight"].cast(pl.Float64).to_numpy()
    label = joined[_LABEL].to_numpy()
    known = ~np.isnan(label)
    pnl = np.add.reduceat(np.where(known, weight * np.where(known, label, 0.0), 0.0), starts)
    gross = np.add.reduceat(np.where(known, np.abs(weight), 0.0), starts)
    n_names = np.add.reduceat(known.astype(np.int64), starts)
    out = pl.DataFrame({
        keys.time: joined[keys.time].gather(starts),
        "pnl": pl.Series(pnl, dtype=pl.Float64),
        "gross": pl.Series(gross, dtype=pl.Float64),
        "n_names": pl.Series(n_names, dtype=pl.Int64),
    })
    return out.filter(pl.col("n_names") > 0)


def daily_pnl(signals: pl.DataFrame, labels: pl.DataFrame, *, label_column: str, keys: FrameKeys) -> pl.DataFrame:
    """Per evaluated time value: ``[keys.time, pnl, gross, n_names]`` over names with a known label.

    ``gross`` is ``sum |w|`` and ``n_names`` the count over those names. Time values where no
    signal name has a known label are left out.

    Raises:
        DataError: a column is missing, keys are malformed or repeat, a weight is null or
            non-finite, or the label holds NaN/inf or no value at all.
    """
    keys = _checked(keys, label_column)
    return _daily(_joined(signals, labels, label_column, keys, need_score=False), keys)


def daily_ic(signals: pl.DataFrame, labels: pl.DataFrame, *, label_column: str, keys: FrameKeys) -> pl.DataFrame:
    """Per time value where it is defined: ``[keys.time, ic, n_names]``, the rank IC of score against label."""
    keys = _checked(keys, label_column)
    return _ic(_joined(signals, labels, label_column, keys, need_score=True), keys)


def _ic(joined: pl.DataFrame, keys: FrameKeys) -> pl.DataFrame:
    time = keys.time
    both = joined.filter(pl.col("score").is_not_null() & pl.col(_LABEL).is_not_null())
    middle = (pl.len().over(time).cast(pl.Float64) + 1.0) / 2.0
    # Centred average ranks are multiples of 0.5: every sum below is exact, whatever the order.
    both = both.with_columns(
        _a=pl.col("score").rank("average").over(time) - middle,
        _b=pl.col(_LABEL).rank("average").over(time) - middle,
    )
    sums = both.group_by(time).agg(
        sxy=(pl.col("_a") * pl.col("_b")).sum(),
        sxx=(pl.col("_a") * pl.col("_a")).sum(),
        syy=(pl.col("_b") * pl.col("_b")).sum(),
        n_names=pl.len().cast(pl.Int64),
    )
    defined = sums.filter((pl.col("n_names") >= 2) & (pl.col("sxx") > 0.0) & (pl.col("syy") > 0.0))
    return defined.select(
        time, ic=pl.col("sxy") / (pl.col("sxx") * pl.col("syy")).sqrt(), n_names="n_names"
    ).sort(time)


def mean_std_tstat(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation (``ddof=1``) and t-statistic of ``values`` (0.0 where undefined).

    The reductions behind ``ic_mean``/``ic_tstat`` and the Sharpe ratio, shared with the drift monitor.
    """
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean = math.fsum(values) / n
    if n < 2:
        return mean, 0.0, 0.0
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, (mean / (std / math.sqrt(n)) if std > 0.0 else 0.0)


def _turnover_by_day(joined: pl.DataFrame, times: pl.Series, keys: FrameKeys) -> np.ndarray:
    """``sum |w_t - w_t-1|`` for each evaluated time value after the first (``times`` sorted), absent names at 0."""
    if times.len() < 2:
        return np.zeros(0, dtype=np.float64)
    entities = list(keys.entities)
    index = pl.DataFrame({keys.time: times, "_k": pl.Series(np.arange(times.len()), dtype=pl.Int64)})
    current = joined.join(index, on=keys.time, how="inner").select("_k", *entities, "weight")
    previous = current.with_columns(pl.col("_k") + 1)
    pairs = current.join(previous, on=["_k", *entities], how="full", coalesce=True, suffix="_prev")
    pairs = pairs.filter(pl.col("_k").is_between(1, times.len() - 1)).sort(["_k", *entities])
    change = (pairs["weight"].fill_null(0.0) - pairs["weight_prev"].fill_null(0.0)).abs().to_numpy()
    starts = np.flatnonzero(pairs["_k"].ne_missing(pairs["_k"].shift(1)).fill_null(True).to_numpy())
    return np.add.reduceat(change, starts)


def _turnover(joined: pl.DataFrame, times: pl.Series, keys: FrameKeys) -> float:
    """Mean over consecutive evaluated time values of ``sum |w_t - w_t-1|``, absent names at 0."""
    if times.len() < 2:
        return 0.0
    return math.fsum(_turnover_by_day(joined, times, keys).tolist()) / (times.len() - 1)


def daily_turnover(signals: pl.DataFrame, labels: pl.DataFrame, *, label_column: str,
                   keys: FrameKeys) -> pl.DataFrame:
    """Per evaluated time value (as in :func:`daily_pnl`): ``[keys.time, turnover]``.

    ``turnover`` is ``sum_i |w_it - w_i,t-1|`` against the previous *evaluated* time value (the
    terms whose mean is the report's ``turnover``), null on the first one.
    """
    keys = _checked(keys, label_column)
    joined = _joined(signals, labels, label_column, keys, need_score=False)
    times = _daily(joined, keys)[keys.time]
    per_day = _turnover_by_day(joined, times, keys)
    values = [None, *per_day.tolist()] if times.len() else []
    return pl.DataFrame({keys.time: times, "turnover": pl.Series(values, dtype=pl.Float64)})


def sharpe_ratio(pnl: Sequence[float], periods_per_year: int = TRADING_DAYS_PER_YEAR) -> float:
    """``mean(pnl) / std(pnl, ddof=1) * sqrt(periods_per_year)``; ``0.0`` when the pnl never varies."""
    mean, std, _ = mean_std_tstat(pnl)
    return mean / std * math.sqrt(periods_per_year) if std > 0.0 else 0.0


def max_drawdown(pnl: Sequence[float]) -> float:
    """The largest fall of cumulative pnl (from 0) below its running peak, as a number >= 0."""
    cumulative, peak, worst = 0.0, 0.0, 0.0
    for value in pnl:
        cumulative += value
        peak = max(peak, cumulative)
        worst = max(worst, peak - cumulative)
    return worst


def backtest(signals: pl.DataFrame, labels: pl.DataFrame, *, label_column: str, keys: FrameKeys,
             periods_per_year: int = TRADING_DAYS_PER_YEAR) -> BacktestReport:
    """Evaluate a signals frame (``[*keys.columns, score, weight]``) against realized labels.

    Args:
        signals: e.g. the output of :func:`~ml_platform.models.signals.to_signals`.
        labels: ``[*keys.columns, <label_column>, ...]``, e.g. the training or validation set.
        label_column: the realized next-bar log return.
        keys: the key columns of both frames.
        periods_per_year: time values per year, to annualize the Sharpe ratio (252 trading days).

    Returns:
        A :class:`BacktestReport` over the evaluated time values; its window spans their days.

    Raises:
        ConfigurationError: a key column clashes with a backtest column, or ``periods_per_year`` < 1.
        DataError: bad inputs (see :func:`daily_pnl`), or fewer than two evaluated time values (a
            Sharpe ratio needs at least two).
    """
    keys = _checked(keys, label_column)
    if isinstance(periods_per_year, bool) or not isinstance(periods_per_year, int) or periods_per_year < 1:
        raise ConfigurationError(f"periods_per_year must be an integer >= 1, got {periods_per_year!r}")
    joined = _joined(signals, labels, label_column, keys, need_score=True)
    daily = _daily(joined, keys)
    if daily.height < 2:
        raise DataError(
            f"cannot backtest: found {daily.height} {keys.time} values on which a signal name has a known label, "
            f"need at least 2; check that signals and labels cover the same ({keys}) keys"
        )
    pnl = daily["pnl"].to_list()
    times = daily[keys.time]
    ic = _ic(joined.filter(pl.col(keys.time).is_in(times.implode())), keys)
    ic_mean, _, ic_tstat = mean_std_tstat(ic["ic"].to_list())
    return BacktestReport(
        window=time_window(times),
        n_days=daily.height,
        sharpe=sharpe_ratio(pnl, periods_per_year),
        ic_mean=ic_mean,
        ic_tstat=ic_tstat,
        hit_rate=sum(1 for p in pnl if p > 0.0) / len(pnl),
        turnover=_turnover(joined, times, keys),
        max_drawdown=max_drawdown(pnl),
        total_return=math.fsum(pnl),
        n_ic_days=ic.height,
    )
