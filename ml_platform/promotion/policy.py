"""The promotion policy of one model: how much worse than the incumbent a challenger may be. Pure.

A :class:`PromotionPolicy` is code, reviewed like code: one per model, given to
:func:`~ml_platform.promotion.job.build_promotion_job`. Every margin is validated on construction;
an out-of-range value is a :class:`~ml_platform.errors.ConfigurationError` naming the field and its range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from ml_platform.errors import ConfigurationError

__all__ = ["DEFAULT_MIN_RATIONALE_CHARS", "PromotionPolicy"]

DEFAULT_MIN_RATIONALE_CHARS = 200

#: field -> (lowest, highest, meaning)
_RANGES: dict[str, tuple[float, float, str]] = {
    "max_sharpe_drop": (0.0, 10.0, "annualized Sharpe units the challenger may lose"),
    "max_ic_mean_drop": (0.0, 1.0, "rank-IC mean the challenger may lose"),
    "max_ic_tstat_drop": (0.0, 100.0, "IC t-statistic the challenger may lose"),
    "max_hit_rate_drop": (0.0, 1.0, "hit rate (fraction of days) the challenger may lose"),
    "max_drawdown_increase": (0.0, 10.0, "relative increase of the max drawdown (0.25 = 25% deeper)"),
    "min_drawdown_margin": (0.0, 10.0, "absolute drawdown increase always allowed (PnL units)"),
    "max_turnover_increase": (0.0, 100.0, "relative increase of the daily turnover (1.0 = twice as much)"),
}


@dataclass(frozen=True)
class PromotionPolicy:
    """Margins by which a challenger may be worse than the incumbent on the same dates.

    Attributes:
        max_sharpe_drop: incumbent Sharpe - challenger Sharpe may not exceed this.
        max_ic_mean_drop: incumbent rank-IC mean - challenger's may not exceed this.
        max_ic_tstat_drop: incumbent IC t-stat - challenger's may not exceed this.
        max_hit_rate_drop: incumbent hit rate - challenger's may not exceed this.
        max_drawdown_increase: challenger max drawdown may not exceed incumbent's x (1 + this).
        max_turnover_increase: challenger turnover may not exceed incumbent's x (1 + this); ``None``: unchecked.
        min_rationale_chars: shortest accepted rationale, in characters (stripped).
        min_validation_days: fewest evaluated days the numeric report needs.
        override_prefix: a rationale line starting with this (case-insensitive) declares an override of
            the thresholds; the ledger records ``override=True``.
    """

    max_sharpe_drop: float = 0.25
    max_ic_mean_drop: float = 0.01
    max_ic_tstat_drop: float = 2.0
    max_hit_rate_drop: float = 0.05
    max_drawdown_increase: float = 0.25
    min_drawdown_margin: float = 0.01
    max_turnover_increase: float | None = None
    min_rationale_chars: int = DEFAULT_MIN_RATIONALE_CHARS
    min_validation_days: int = 5
    override_prefix: str = "OVERRIDE:"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _RANGES:
                low, high, meaning = _RANGES[f.name]
                if value is None and f.name == "max_turnover_increase":
                    continue
                if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                        or not low <= value <= high):
                    raise ConfigurationError(
                        f"PromotionPolicy.{f.name} must be a number from {low:g} to {high:g} ({meaning}), "
                        f"got {value!r}")
                object.__setattr__(self, f.name, float(value))
        for name, low, high in (("min_rationale_chars", 1, 100_000), ("min_validation_days", 2, 100_000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigurationError(f"PromotionPolicy.{name} must be an integer from {low} to {high}, "
                                         f"got {value!r}")
        prefix = self.override_prefix
        if not isinstance(prefix, str) or not prefix.strip() or len(prefix) > 40 or "\n" in prefix:
            raise ConfigurationError(f"PromotionPolicy.override_prefix must be a short one-line marker such as "
                                     f"'OVERRIDE:', got {prefix!r}")

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
