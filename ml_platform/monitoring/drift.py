"""Alpha drift: does the live champion still earn the way it was validated? Pure (Polars, NumPy, SciPy).

How it works, and why: docs/architecture.md, "ml_platform/monitoring/drift.py".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from ml_platform.errors import ConfigurationError
from ml_platform.keys import FrameKeys
from ml_platform.models.backtest import (
    TRADING_DAYS_PER_YEAR,
    daily_ic,
    daily_pnl,
    daily_turnover,
    max_drawdown,
    mean_std_tstat,
    sharpe_ratio,
)
from ml_platform.models.frames import require_keys, time_window
from ml_platform.monitoring.alerts import AlphaDriftFinding

__all__ = [
    "PERFORMANCE_COLUMNS",
    "PROMISED_FINDINGS_PER_YEAR",
    "STATISTIC_NAMES",
    "DriftEvaluation",
    "DriftPolicy",
    "DriftStatistic",
    "daily_performance",
    "evaluate_drift",
    "finding_of",
]

#: The value columns of :func:`daily_performance`, after the time column.
PERFORMANCE_COLUMNS = ("pnl", "ic", "hit", "turnover")
#: The statistics of one evaluation, in report order.
STATISTIC_NAMES = ("sharpe", "rank_ic", "hit_rate", "turnover", "max_drawdown", "ks", "wasserstein", "psi")
#: What the default :class:`DriftPolicy` promises: at most this many research findings (episodes: a
#: run of consecutive drifted evaluations) per model-year on a stationary stream evaluated daily.
PROMISED_FINDINGS_PER_YEAR = 1.0
#: Joins the breached statistics' names in a finding key (``+`` is not a key character, see alerts).
KEY_SEPARATOR = "."


# --- daily performance ---------------------------------------------------------------------------


def daily_performance(signals: pl.DataFrame, labels: pl.DataFrame, *, label_column: str,
                      keys: FrameKeys) -> pl.DataFrame:
    """One row per evaluated day: ``[keys.time, pnl, ic, hit, turnover]``, sorted by time.

    The definitions are the backtest's (:mod:`ml_platform.models.backtest`), computed by its functions:
    ``pnl`` (:func:`~ml_platform.models.backtest.daily_pnl`), ``ic`` the rank IC
    (:func:`~ml_platform.models.backtest.daily_ic`; null where undefined), ``hit`` ``pnl > 0``, and
    ``turnover`` ``sum |w_t - w_t-1|`` against the previous evaluated day
    (:func:`~ml_platform.models.backtest.daily_turnover`; null on the first day).

    Raises:
        ConfigurationError: bad keys or label column.
        DataError: bad frames (see :func:`~ml_platform.models.backtest.daily_pnl`); ``signals`` needs a ``score``.
    """
    time = require_keys(keys).time
    pnl = daily_pnl(signals, labels, label_column=label_column, keys=keys).select(time, "pnl")
    ic = daily_ic(signals, labels, label_column=label_column, keys=keys).select(time, "ic")
    turnover = daily_turnover(signals, labels, label_column=label_column, keys=keys)
    frame = pnl.join(ic, on=time, how="left").join(turnover, on=time, how="left")
    return frame.sort(time).select(time, "pnl", "ic", hit=pl.col("pnl") > 0.0, turnover="turnover")


# --- policy --------------------------------------------------------------------------------------

#: float field -> (lowest, highest, lowest included, highest included, meaning)
_FLOATS: dict[str, tuple[float, float, bool, bool, str]] = {
    "sharpe_confidence": (0.5, 1.0, False, False, "one-sided confidence of the Sharpe band"),
    "test_confidence": (0.5, 1.0, False, False, "confidence of the IC, hit-rate and turnover tests"),
    "ic_decay": (0.0, 2.0, False, True, "largest tolerated fractional fall of the mean rank IC"),
    "hit_rate_drop": (0.0, 1.0, False, False, "largest tolerated fall of the hit rate (absolute)"),
    "turnover_change": (0.0, 100.0, False, True, "largest tolerated relative change of the daily turnover"),
    "drawdown_multiple": (0.0, 100.0, False, True, "live drawdown allowed, as a multiple of the validated one"),
    "ks_alpha": (0.0, 0.5, False, False, "significance level of the Kolmogorov-Smirnov test"),
    "wasserstein_max": (0.0, 100.0, False, True, "Wasserstein distance allowed, in validated pnl std"),
    "psi_max": (0.0, 100.0, False, True, "population stability index allowed"),
}
#: int field -> (lowest, highest, meaning)
_INTS: dict[str, tuple[int, int, str]] = {
    "window_days": (2, 100_000, "live days in the rolling window"),
    "min_days": (2, 100_000, "live days needed before any statistic is judged"),
    "min_validation_days": (2, 100_000, "validated days needed"),
    "psi_bins": (2, 100, "quantile bins of the PSI"),
    "periods_per_year": (1, 100_000, "days per year, to annualize the Sharpe ratio"),
}


def _interval(low: float, high: float, low_in: bool, high_in: bool) -> str:
    return f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


@dataclass(frozen=True)
class DriftPolicy:
    """How one model's live alpha is judged against its validation; see the module for each statistic.

    Attributes:
        window_days: live days in the rolling window (the last ones given).
        min_days: live days needed before any statistic is judged (fewer: the evaluation is skipped).
        min_validation_days: validated days needed (fewer: skipped).
        sharpe_confidence: one-sided confidence of the band under the validated Sharpe ratio.
        test_confidence: confidence of the significance tests of IC, hit rate and turnover.
        ic_decay: largest tolerated fractional fall of the mean rank IC (0.5: half of it may go).
        hit_rate_drop: largest tolerated fall of the hit rate, in absolute terms (0.05: 5 points).
        turnover_change: largest tolerated relative change of the mean daily turnover, either way.
        drawdown_multiple: the live window's drawdown may reach this multiple of the validated one.
        ks_alpha: significance level of the Kolmogorov-Smirnov test of the daily pnl distribution.
        wasserstein_max: Wasserstein distance allowed between live and validated daily pnl, in
            validated standard deviations, for a full window (raised for fewer days, see the module).
        psi_max: population stability index allowed for a full window (raised for fewer days).
        psi_bins: quantile bins of the validated pnl the PSI counts in.
        periods_per_year: evaluated days per year (the backtest's), to annualize the Sharpe ratio.

    The defaults are chosen for :data:`PROMISED_FINDINGS_PER_YEAR`; a policy is code, reviewed like
    code, one per model. Every field is checked on construction (:class:`ConfigurationError`).
    """

    window_days: int = 63
    min_days: int = 20
    min_validation_days: int = 60
    sharpe_confidence: float = 0.999
    test_confidence: float = 0.999
    ic_decay: float = 0.5
    hit_rate_drop: float = 0.05
    turnover_change: float = 0.5
    drawdown_multiple: float = 2.0
    ks_alpha: float = 0.001
    wasserstein_max: float = 0.4
    psi_max: float = 0.5
    psi_bins: int = 10
    periods_per_year: int = TRADING_DAYS_PER_YEAR

    def __post_init__(self) -> None:
        for name, (low, high, low_in, high_in, meaning) in _FLOATS.items():
            value = getattr(self, name)
            inside = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
                      and (low <= value if low_in else low < value) and (value <= high if high_in else value < high))
            if not inside:
                raise ConfigurationError(f"DriftPolicy.{name} must be a number in {_interval(low, high, low_in, high_in)}"
                                         f" ({meaning}), got {value!r}")
            object.__setattr__(self, name, float(value))
        for name, (low, high, meaning) in _INTS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigurationError(f"DriftPolicy.{name} must be an integer in [{low}, {high}] ({meaning}), "
                                         f"got {value!r}")
        if self.min_days > self.window_days:
            raise ConfigurationError(f"DriftPolicy.min_days must be in [2, window_days={self.window_days}] (a window "
                                     f"never holds more days than window_days), got {self.min_days!r}")

    @property
    def significance_budget(self) -> float:
        """Union bound, per evaluation of a stationary stream, of a finding by the five significance
        tests (Sharpe band, IC, hit rate, turnover, KS); the effect-size thresholds come on top."""
        return (1.0 - self.sharpe_confidence) + 3.0 * (1.0 - self.test_confidence) + self.ks_alpha

    def to_dict(self) -> dict[str, float | int]:
        """Every field, JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftPolicy:
        """Inverse of :meth:`to_dict`; absent fields take their default, unknown ones are refused."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"a DriftPolicy record must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigurationError(f"unknown DriftPolicy field(s) {unknown}; known: {[f.name for f in fields(cls)]}")
        return cls(**dict(data))


# --- results -------------------------------------------------------------------------------------


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class DriftStatistic:
    """One statistic of an evaluation.

    Attributes:
        name: one of :data:`STATISTIC_NAMES`.
        value: the live value (``ks``: the p-value); ``None`` when not computable.
        reference: the validated value it is compared with, if any.
        threshold: the value beyond which it is breached (same units as ``value``).
        breached: the statistic found drift.
        judged: it could be judged at all (``False``: degenerate data, see ``detail``).
        detail: one line: the numbers and the test, or why it was not judged.
    """

    name: str
    value: float | None
    reference: float | None
    threshold: float | None
    breached: bool
    judged: bool
    detail: str

    def __post_init__(self) -> None:
        for name in ("value", "reference", "threshold"):
            object.__setattr__(self, name, _finite(getattr(self, name)))
        object.__setattr__(self, "breached", bool(self.breached) and bool(self.judged))
        object.__setattr__(self, "judged", bool(self.judged))

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "reference": self.reference, "threshold": self.threshold,
                "breached": self.breached, "judged": self.judged, "detail": self.detail}


@dataclass(frozen=True)
class DriftEvaluation:
    """The result of :func:`evaluate_drift`: every statistic, or why none was judged.

    Attributes:
        statistics: one per name of :data:`STATISTIC_NAMES`, in that order (empty when skipped).
        skipped: why nothing was judged (empty live window, too few days, no validation metrics...).
        live_window: the live days judged, ``start..end`` (``None``: none).
        validated_window: the validated days, ``start..end`` (``None``: none).
        n_live_days: live days judged (at most ``policy.window_days``).
        n_validated_days: validated days.
        policy: the policy it was judged with.
    """

    statistics: tuple[DriftStatistic, ...]
    skipped: str | None
    live_window: str | None
    validated_window: str | None
    n_live_days: int
    n_validated_days: int
    policy: DriftPolicy = field(default_factory=DriftPolicy)

    @property
    def findings(self) -> tuple[DriftStatistic, ...]:
        """The breached statistics."""
        return tuple(s for s in self.statistics if s.breached)

    @property
    def drifted(self) -> bool:
        """At least one statistic found drift."""
        return bool(self.findings)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (no NaN: a missing number is ``None``); statistics keyed by name, in order."""
        return {"drifted": self.drifted, "skipped": self.skipped, "live_window": self.live_window,
                "validated_window": self.validated_window, "n_live_days": self.n_live_days,
                "n_validated_days": self.n_validated_days,
                "findings": [s.name for s in self.findings],
                "statistics": {s.name: s.to_dict() for s in self.statistics},
                "policy": self.policy.to_dict()}

    def summary(self) -> str:
        """One line: what moved and by how much, or that nothing did, or why nothing was judged."""
        if self.skipped is not None:
            return f"alpha drift not evaluated: {self.skipped}"
        span = f"live {self.live_window} ({self.n_live_days} days) vs validated {self.validated_window}"
        if self.drifted:
            return f"alpha drift on {span}: " + "; ".join(f"{s.name}: {s.detail}" for s in self.findings)
        unjudged = [s.name for s in self.statistics if not s.judged]
        tail = f" ({', '.join(unjudged)} not judged)" if unjudged else ""
        return f"no alpha drift on {span}: {len(self.statistics) - len(unjudged)} statistics within bounds{tail}"


def finding_of(evaluation: DriftEvaluation, *, model: str, version: str) -> AlphaDriftFinding | None:
    """The research alert of a drifted evaluation (``None`` when nothing drifted or it was skipped).

    Its key is ``<model>:<version>:drift:<breached statistic names, sorted, joined by '.'>``.
    """
    if not isinstance(evaluation, DriftEvaluation):
        raise ConfigurationError(f"finding_of needs a DriftEvaluation, got {type(evaluation).__name__}")
    if not evaluation.drifted:
        return None
    names = KEY_SEPARATOR.join(sorted(s.name for s in evaluation.findings))
    return AlphaDriftFinding(
        key=f"{model}:{version}:drift:{names}", model=model, version=str(version), summary=evaluation.summary(),
        live_window=evaluation.live_window or "", validation_window=evaluation.validated_window or "",
        statistics=evaluation.to_dict()["statistics"],
    )


# --- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Side:
    """One side's arrays, in time order."""

    pnl: np.ndarray
    ic: np.ndarray      # defined values only
    hit: np.ndarray     # bool, non-null only
    turnover: np.ndarray  # defined values only


def _checked_frame(frame: object, time_column: str, what: str) -> pl.DataFrame:
    if not isinstance(frame, pl.DataFrame):
        raise ConfigurationError(f"{what} must be a polars DataFrame (a daily_performance output), "
                                 f"got {type(frame).__name__}")
    if frame.height == 0:  # nothing to judge, whatever its columns (``pl.DataFrame()`` included): a skip
        return frame
    missing = [c for c in (time_column, *PERFORMANCE_COLUMNS) if c not in frame.columns]
    if missing:
        raise ConfigurationError(f"{what} lacks columns {missing} (it has {frame.columns}); pass a "
                                 f"daily_performance output and its time column")
    dtype = frame.schema[time_column]
    if not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        raise ConfigurationError(f"{what}: time column {time_column!r} is {dtype}, expected Date or Datetime")
    for column in ("pnl", "ic", "turnover"):
        if not (frame.schema[column].is_numeric() or frame.schema[column] == pl.Null):
            raise ConfigurationError(f"{what}: column {column!r} is {frame.schema[column]}, expected a number")
    if frame.schema["hit"] not in (pl.Boolean, pl.Null):
        raise ConfigurationError(f"{what}: column 'hit' is {frame.schema['hit']}, expected Boolean")
    times = frame[time_column]
    if times.null_count():
        raise ConfigurationError(f"{what}: time column {time_column!r} holds {times.null_count()} nulls")
    if times.n_unique() != frame.height:
        raise ConfigurationError(f"{what}: time column {time_column!r} repeats a value; one row per evaluated day")
    return frame if times.is_sorted() else frame.sort(time_column)


def _floats(series: pl.Series) -> np.ndarray:
    """The column as float64, a null as NaN."""
    return series.cast(pl.Float64).to_numpy()


def _side(frame: pl.DataFrame) -> _Side:
    ic, turnover = _floats(frame["ic"]), _floats(frame["turnover"])
    hit = frame["hit"]
    return _Side(pnl=_floats(frame["pnl"]), ic=ic[np.isfinite(ic)], turnover=turnover[np.isfinite(turnover)],
                 hit=(hit.drop_nulls() if hit.null_count() else hit).cast(pl.Boolean).to_numpy())


def _window_text(frame: pl.DataFrame, time_column: str) -> str | None:
    return str(time_window(frame[time_column])) if frame.height else None



def evaluate_drift(validated: pl.DataFrame, live: pl.DataFrame, policy: DriftPolicy, *,
                   time_column: str) -> DriftEvaluation:
    """Judge the live days against the validated ones (both :func:`daily_performance` frames).

    Args:
        validated: the champion's performance over its validation window (from its contract).
        live: its live performance; the last ``policy.window_days`` rows (in time order) are judged.
        policy: the model's :class:`DriftPolicy`.
        time_column: the frames' time column (``keys.time``).

    Returns:
        A :class:`DriftEvaluation`; empty or too short windows, a model without validation metrics
        (an empty validated frame, of any columns: ``pl.DataFrame()`` will do) or non-finite pnl give a
        ``skipped`` reason, never an exception.

    Raises:
        ConfigurationError: not a policy, or a malformed non-empty frame (missing or mistyped columns,
            a time column that is not Date/Datetime, holds nulls or repeats a day).
    """
    if not isinstance(policy, DriftPolicy):
        raise ConfigurationError(f"policy must be a DriftPolicy, got {type(policy).__name__}")
    if not isinstance(time_column, str) or not time_column:
        raise ConfigurationError(f"time_column must name the frames' time column, got {time_column!r}")
    validated = _checked_frame(validated, time_column, "the validated frame")
    live = _checked_frame(live, time_column, "the live frame").tail(policy.window_days)

    def skip(reason: str) -> DriftEvaluation:
        return DriftEvaluation((), reason, _window_text(live, time_column), _window_text(validated, time_column),
                               live.height, validated.height, policy)

    if validated.height == 0:
        return skip("model has no validation metrics: the validated frame is empty")
    if live.height == 0:
        return skip("empty live window: no evaluated live day yet")
    sides = _side(validated), _side(live)
    for side, what in zip(sides, ("validated", "live"), strict=True):
        bad = int(np.count_nonzero(~np.isfinite(side.pnl)))
        if bad:
            return skip(f"the {what} pnl holds {bad} null or non-finite values of {side.pnl.size}; "
                        "fix the upstream daily performance")
    if validated.height < policy.min_validation_days:
        return skip(f"only {validated.height} validated days, fewer than min_validation_days="
                    f"{policy.min_validation_days}")
    if live.height < policy.min_days:
        return skip(f"only {live.height} live days, fewer than min_days={policy.min_days}")
    statistics = _judge(*sides, policy)
    return DriftEvaluation(statistics, None, _window_text(live, time_column), _window_text(validated, time_column),
                           live.height, validated.height, policy)


def _judge(validated: _Side, live: _Side, policy: DriftPolicy) -> tuple[DriftStatistic, ...]:
    """Every statistic of :data:`STATISTIC_NAMES` on prepared arrays (both sides with enough pnl days)."""
    return (_sharpe(validated.pnl, live.pnl, policy), _rank_ic(validated.ic, live.ic, policy),
            _hit_rate(validated.hit, live.hit, policy), _turnover(validated.turnover, live.turnover, policy),
            _drawdown(validated.pnl, live.pnl, policy), _ks(validated.pnl, live.pnl, policy),
            _wasserstein(validated.pnl, live.pnl, policy), _psi(validated.pnl, live.pnl, policy))


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(confidence)


def _not_judged(name: str, detail: str, *, value: float | None = None, reference: float | None = None) -> DriftStatistic:
    return DriftStatistic(name, value, reference, None, False, False, detail)


def _constant(values: np.ndarray) -> bool:
    return values.size == 0 or bool(values.max() == values.min())


def _sharpe(validated: np.ndarray, live: np.ndarray, policy: DriftPolicy) -> DriftStatistic:
    annual = math.sqrt(policy.periods_per_year)
    if _constant(validated):
        return _not_judged("sharpe", "the validated pnl never varies: its Sharpe ratio is undefined")
    sr_v = sharpe_ratio(validated.tolist(), 1)
    if _constant(live):
        return _not_judged("sharpe", "the live pnl never varies in the window: its Sharpe ratio is undefined",
                           reference=sr_v * annual)
    sr_l = sharpe_ratio(live.tolist(), 1)
    se = math.sqrt((1.0 + sr_v * sr_v / 2.0) * (1.0 / live.size + 1.0 / validated.size))
    lower = sr_v - _z(policy.sharpe_confidence) * se
    breached = sr_l < lower
    detail = (f"annualized Sharpe {sr_l * annual:.3g} {'below' if breached else 'within'} the "
              f"{policy.sharpe_confidence:.4g} band from {lower * annual:.3g} (validated {sr_v * annual:.3g}, "
              f"standard error {se * annual:.3g}, {live.size} vs {validated.size} days)")
    return DriftStatistic("sharpe", sr_l * annual, sr_v * annual, lower * annual, breached, True, detail)


def _welch_z(validated: np.ndarray, live: np.ndarray) -> tuple[float, float, float]:
    """Means of both sides and the Welch z of ``mean_v - mean_l`` (infinite when neither side varies)."""
    mean_v, std_v, _ = mean_std_tstat(validated.tolist())
    mean_l, std_l, _ = mean_std_tstat(live.tolist())
    se = math.sqrt(std_v * std_v / validated.size + std_l * std_l / live.size)
    diff = mean_v - mean_l
    if se > 0.0:
        return mean_v, mean_l, diff / se
    return mean_v, mean_l, (math.copysign(math.inf, diff) if diff else 0.0)


def _rank_ic(validated: np.ndarray, live: np.ndarray, policy: DriftPolicy) -> DriftStatistic:
    if validated.size < 2:
        return _not_judged("rank_ic", f"the rank IC is defined on {validated.size} validated days, fewer than 2")
    if live.size < policy.min_days:
        return _not_judged("rank_ic", f"the rank IC is defined on {live.size} live days, fewer than "
                                      f"min_days={policy.min_days}")
    mean_v, mean_l, z = _welch_z(validated, live)
    if not mean_v > 0.0:
        return _not_judged("rank_ic", f"the validated mean rank IC {mean_v:.3g} is not positive: no decay to judge",
                           value=mean_l, reference=mean_v)
    floor = (1.0 - policy.ic_decay) * mean_v
    critical = _z(policy.test_confidence)
    breached = mean_l < floor and z > critical
    fall = 1.0 - mean_l / mean_v
    detail = (f"mean rank IC {mean_l:.3g} vs validated {mean_v:.3g}: a {fall:.0%} fall (tolerated "
              f"{policy.ic_decay:.0%}), z {z:.3g} vs {critical:.3g} at {policy.test_confidence:.4g}"
              f" ({live.size} vs {validated.size} days)")
    return DriftStatistic("rank_ic", mean_l, mean_v, floor, breached, True, detail)


def _hit_rate(validated: np.ndarray, live: np.ndarray, policy: DriftPolicy) -> DriftStatistic:
    if validated.size == 0 or live.size == 0:
        return _not_judged("hit_rate", "no hit value on one side")
    p_v, p_l = float(validated.mean()), float(live.mean())
    pooled = (validated.sum() + live.sum()) / (validated.size + live.size)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / validated.size + 1.0 / live.size))
    drop = p_v - p_l
    z = drop / se if se > 0.0 else 0.0
    critical = _z(policy.test_confidence)
    breached = drop > policy.hit_rate_drop and z > critical
    detail = (f"hit rate {p_l:.3f} vs validated {p_v:.3f}: a fall of {drop:.3f} (tolerated {policy.hit_rate_drop:g}), "
              f"z {z:.3g} vs {critical:.3g} at {policy.test_confidence:.4g}")
    return DriftStatistic("hit_rate", p_l, p_v, p_v - policy.hit_rate_drop, breached, True, detail)


def _turnover(validated: np.ndarray, live: np.ndarray, policy: DriftPolicy) -> DriftStatistic:
    if validated.size < 2 or live.size < 2:
        return _not_judged("turnover", f"turnover is defined on {validated.size} validated and {live.size} live "
                                       "days; need 2 of each")
    mean_v, mean_l, z = _welch_z(validated, live)
    if not mean_v > 0.0:
        return _not_judged("turnover", "the validated turnover is 0: a relative change is undefined",
                           value=mean_l, reference=mean_v)
    change = mean_l / mean_v - 1.0
    critical = _z(1.0 - (1.0 - policy.test_confidence) / 2.0)
    breached = abs(change) > policy.turnover_change and abs(z) > critical
    limit = mean_v * (1.0 + policy.turnover_change if change >= 0.0 else 1.0 - policy.turnover_change)
    detail = (f"mean daily turnover {mean_l:.3g} vs validated {mean_v:.3g}: {change:+.0%} (tolerated "
              f"±{policy.turnover_change:.0%}), |z| {abs(z):.3g} vs {critical:.3g} at {policy.test_confidence:.4g}")
    return DriftStatistic("turnover", mean_l, mean_v, limit, breached, True, detail)


def _drawdown(validated: np.ndarray, live: np.ndarray, policy: DriftPolicy) -> DriftStatistic:
    dd_v, dd_l = max_drawdown(validated.tolist()), max_drawdown(live.tolist())
    limit = policy.drawdown_multiple * dd_v
    breached = dd_l > limit
    detail = (f"live drawdown {dd_l:.3g} over {live.size} days vs {policy.drawdown_multiple:g} x the validated "
              f"{dd_v:.3g} = {limit:.3g}")
    return DriftStatistic("max_drawdown", dd_l, dd_v, limit, breached, True, detail)


def _n_eff(validated: np.ndarray, live: np.ndarray) -> float:
    return live.size * validated.size / (live.size + validated.size)


def _ks(validated: np.ndarray, live: np.ndarray, policy: DriftPolicy) -> DriftStatistic:
    if _constant(np.concatenate([validated, live])):
        return _not_judged("ks", "live and validated pnl are one constant: no distribution to compare")
    result = stats.ks_2samp(live, validated)
    p_value, distance = float(result.pvalue), float(result.statistic)
    breached = p_value < policy.ks_alpha
    detail = f"Kolmogorov-Smirnov D {distance:.3g}, p {p_value:.3g} vs alpha {policy.ks_alpha:g}"
    return DriftStatistic("ks", p_value, None, policy.ks_alpha, breached, True, detail)


def _wasserstein(validated: np.ndarray, live: np.ndarray, policy: DriftPolicy) -> DriftStatistic:
    _, std_v, _ = mean_std_tstat(validated.tolist())
    if not std_v > 0.0:
        return _not_judged("wasserstein", "the validated pnl never varies: no scale to measure a distance in")
    distance = float(stats.wasserstein_distance(live, validated)) / std_v
    limit = policy.wasserstein_max * math.sqrt(policy.window_days / _n_eff(validated, live))
    breached = distance > limit
    detail = (f"Wasserstein distance {distance:.3g} validated std vs {limit:.3g} ({policy.wasserstein_max:g} for a "
              f"full window, scaled to {live.size} vs {validated.size} days)")
    return DriftStatistic("wasserstein", distance, None, limit, breached, True, detail)


def _psi(validated: np.ndarray, live: np.ndarray, policy: DriftPolicy) -> DriftStatistic:
    edges = np.unique(np.quantile(validated, np.arange(1, policy.psi_bins) / policy.psi_bins))
    if _constant(validated):
        return _not_judged("psi", "the validated pnl has too few distinct values to bin")
    bins = edges.size + 1
    counts_v = np.bincount(np.searchsorted(edges, validated, side="right"), minlength=bins) + 0.5
    counts_l = np.bincount(np.searchsorted(edges, live, side="right"), minlength=bins) + 0.5
    share_v, share_l = counts_v / counts_v.sum(), counts_l / counts_l.sum()
    psi = math.fsum(((share_l - share_v) * np.log(share_l / share_v)).tolist())
    limit = policy.psi_max * policy.window_days / _n_eff(validated, live)
    breached = psi > limit
    detail = (f"PSI {psi:.3g} over {bins} validated-quantile bins vs {limit:.3g} ({policy.psi_max:g} for a full "
              f"window, scaled to {live.size} vs {validated.size} days)")
    return DriftStatistic("psi", psi, None, limit, breached, True, detail)
