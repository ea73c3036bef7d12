"""Alpha drift statistics: each statistic finds its drift, stationary streams do not drift, bad input
is a skip reason or a ConfigurationError, never a crash."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from ml_platform.errors import ConfigurationError
from ml_platform.keys import FrameKeys
from ml_platform.models.backtest import backtest, daily_turnover, max_drawdown, sharpe_ratio
from ml_platform.monitoring.alerts import AlphaDriftFinding
from ml_platform.monitoring.drift import (
    STATISTIC_NAMES,
    DriftEvaluation,
    DriftPolicy,
    DriftStatistic,
    daily_performance,
    evaluate_drift,
    finding_of,
)

KEYS = FrameKeys("date", ("instrument",))
VALIDATED_START = dt.date(2020, 1, 1)
LIVE_START = dt.date(2022, 6, 1)
POLICY = DriftPolicy()


def stream(seed: int, n: int, *, start: dt.date = LIVE_START, mean: float = 0.002, std: float = 0.01,
           ic_mean: float = 0.05, ic_std: float = 0.1, hit: np.ndarray | None = None,
           turnover_mean: float = 0.6, turnover_std: float = 0.05, pnl: np.ndarray | None = None) -> pl.DataFrame:
    """A daily_performance-shaped frame of ``n`` consecutive days with Gaussian pnl, IC and turnover."""
    rng = np.random.default_rng(seed)
    values = rng.normal(mean, std, n) if pnl is None else np.asarray(pnl, dtype=float)
    turnover = rng.normal(turnover_mean, turnover_std, n)
    return pl.DataFrame({
        "date": [start + dt.timedelta(days=i) for i in range(n)],
        "pnl": values,
        "ic": rng.normal(ic_mean, ic_std, n),
        "hit": values > 0.0 if hit is None else hit,
        "turnover": [None, *turnover[1:].tolist()],
    }, schema_overrides={"date": pl.Date, "turnover": pl.Float64})


def validated(seed: int = 1, n: int = 504, **kwargs: object) -> pl.DataFrame:
    return stream(seed, n, start=VALIDATED_START, **kwargs)  # type: ignore[arg-type]


def evaluate(validated_frame: pl.DataFrame, live_frame: pl.DataFrame, policy: DriftPolicy = POLICY) -> DriftEvaluation:
    return evaluate_drift(validated_frame, live_frame, policy, time_column="date")


def stat(evaluation: DriftEvaluation, name: str) -> DriftStatistic:
    return next(s for s in evaluation.statistics if s.name == name)


# --- daily_performance ---------------------------------------------------------------------------

DAYS = [dt.date(2022, 3, d) for d in (1, 2, 3)]


def test_daily_performance_by_hand():
    signals = pl.DataFrame({
        "date": [DAYS[0]] * 2 + [DAYS[1]] * 2 + [DAYS[2]] * 2,
        "instrument": ["A", "B"] * 3,
        "score": [1.0, -1.0, 1.0, -1.0, -1.0, 1.0],
        "weight": [0.5, -0.5, 0.5, -0.5, -0.5, 0.5],
    })
    labels = pl.DataFrame({"date": signals["date"], "instrument": signals["instrument"],
                           "fwd_ret_1d": [0.02, 0.0, -0.03, 0.01, 0.04, 0.0]})
    perf = daily_performance(signals.reverse(), labels, label_column="fwd_ret_1d", keys=KEYS)
    assert perf.columns == ["date", "pnl", "ic", "hit", "turnover"]
    assert perf["date"].to_list() == DAYS
    assert perf["pnl"].to_list() == pytest.approx([0.01, -0.02, -0.02], abs=1e-15)
    assert perf["ic"].to_list() == pytest.approx([1.0, -1.0, -1.0])
    assert perf["hit"].to_list() == [True, False, False]
    # the book is the same on days 0 and 1 (turnover 0), then flips: |-0.5-0.5| + |0.5+0.5| = 2
    assert perf["turnover"].to_list() == [None, 0.0, 2.0]


def test_daily_performance_is_the_backtest_day_by_day():
    rng = np.random.default_rng(3)
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(30)]
    names = [f"N{i}" for i in range(8)]
    frame = pl.DataFrame({"date": [d for d in days for _ in names], "instrument": names * len(days),
                          "score": rng.normal(size=240), "weight": rng.normal(size=240) / 8,
                          "fwd_ret_1d": rng.normal(0.0, 0.02, 240)})
    frame = frame.filter(~((pl.col("date") == days[5]) & (pl.col("instrument") == "N3")))  # a name leaves a day
    signals, labels = frame.drop("fwd_ret_1d"), frame.select("date", "instrument", "fwd_ret_1d")
    perf = daily_performance(signals, labels, label_column="fwd_ret_1d", keys=KEYS)
    report = backtest(signals, labels, label_column="fwd_ret_1d", keys=KEYS)
    pnl = perf["pnl"].to_list()
    assert perf.height == report.n_days == 30
    assert sharpe_ratio(pnl) == report.sharpe
    assert max_drawdown(pnl) == report.max_drawdown
    assert perf["hit"].mean() == report.hit_rate
    assert math.fsum(perf["turnover"].drop_nulls().to_list()) / 29 == pytest.approx(report.turnover, rel=1e-15)
    assert perf["ic"].drop_nulls().mean() == pytest.approx(report.ic_mean, rel=1e-12)
    direct = daily_turnover(signals, labels, label_column="fwd_ret_1d", keys=KEYS)
    assert direct["turnover"].to_list() == perf["turnover"].to_list()


# --- stationary streams --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_a_stationary_stream_does_not_drift(seed):
    evaluation = evaluate(validated(seed=100 + seed), stream(seed, 63))
    assert evaluation.skipped is None
    assert [s.name for s in evaluation.statistics] == list(STATISTIC_NAMES)
    assert all(s.judged for s in evaluation.statistics), evaluation.summary()
    assert not evaluation.drifted, evaluation.summary()
    assert finding_of(evaluation, model="alpha", version="3") is None


def test_only_the_last_window_days_are_judged():
    crash = stream(5, 100, mean=-0.01)  # a disaster, then a recovery: only the recovery is in the window
    recovered = pl.concat([crash.head(37), stream(6, 63, start=LIVE_START + dt.timedelta(days=37))])
    evaluation = evaluate(validated(), recovered)
    assert evaluation.n_live_days == 63
    assert evaluation.live_window == f"{LIVE_START + dt.timedelta(days=37)}..{LIVE_START + dt.timedelta(days=99)}"
    assert not evaluation.drifted, evaluation.summary()
    assert evaluate(validated(), crash).drifted


# --- each statistic ------------------------------------------------------------------------------


def test_a_sharpe_drop_is_found_by_the_band_computed_by_hand():
    v, live = validated(), stream(7, 63, mean=-0.002)
    evaluation = evaluate(v, live)
    sharpe = stat(evaluation, "sharpe")
    sr_v = sharpe_ratio(v["pnl"].to_list(), 1)
    se = math.sqrt((1 + sr_v ** 2 / 2) * (1 / 63 + 1 / 504))
    lower = (sr_v - NormalDist().inv_cdf(0.999) * se) * math.sqrt(252)
    assert sharpe.threshold == pytest.approx(lower, rel=1e-12)
    assert sharpe.reference == pytest.approx(sr_v * math.sqrt(252), rel=1e-12)
    assert sharpe.value == pytest.approx(sharpe_ratio(live["pnl"].to_list()), rel=1e-12)
    assert sharpe.breached and sharpe.value < sharpe.threshold
    assert "sharpe" in {s.name for s in evaluation.findings}


def test_a_small_sharpe_dip_stays_inside_the_band():
    sharpe = stat(evaluate(validated(), stream(7, 63, mean=0.0012)), "sharpe")
    assert sharpe.judged and not sharpe.breached and sharpe.value < sharpe.reference


def test_a_variance_shift_is_found_by_the_distribution_tests():
    evaluation = evaluate(validated(), stream(8, 63, std=0.03))
    breached = {s.name for s in evaluation.findings}
    assert {"ks", "wasserstein", "psi"} <= breached, evaluation.summary()


def test_a_shape_shift_with_the_same_mean_and_variance_is_found():
    two_point = np.where(np.arange(63) % 2 == 0, 0.012, -0.008)  # mean 0.002, std about 0.01, like validated
    evaluation = evaluate(validated(), stream(9, 63, pnl=two_point))
    breached = {s.name for s in evaluation.findings}
    assert {"ks", "psi"} <= breached, evaluation.summary()
    assert "sharpe" not in breached


def test_ic_decay_is_found_when_material_and_significant():
    evaluation = evaluate(validated(), stream(10, 63, ic_mean=-0.01))
    ic = stat(evaluation, "rank_ic")
    assert ic.breached and ic.threshold == pytest.approx(0.5 * ic.reference)
    assert "rank_ic" in {s.name for s in evaluation.findings}


def test_an_ic_fall_that_is_not_significant_or_not_material_is_no_finding():
    noisy = stat(evaluate(validated(), stream(10, 20, ic_mean=0.015, ic_std=0.3)), "rank_ic")
    assert noisy.judged and noisy.value < noisy.threshold and not noisy.breached  # material, not significant
    calm = stat(evaluate(validated(ic_std=0.001), stream(10, 63, ic_mean=0.04, ic_std=0.001)), "rank_ic")
    assert calm.judged and calm.value > calm.threshold and not calm.breached  # significant, not material
    assert "z " in calm.detail and "fall" in calm.detail


def test_a_drawdown_beyond_the_validated_one_is_found():
    v = validated()
    dd_v = max_drawdown(v["pnl"].to_list())
    losses = np.full(63, 0.002)
    losses[10:30] = -2.5 * dd_v / 20  # a fall of 2.5 x the validated drawdown
    evaluation = evaluate(v, stream(11, 63, pnl=losses))
    drawdown = stat(evaluation, "max_drawdown")
    assert drawdown.reference == pytest.approx(dd_v)
    assert drawdown.value == pytest.approx(2.5 * dd_v)
    assert drawdown.threshold == pytest.approx(2.0 * dd_v)
    assert drawdown.breached
    losses[10:30] = -1.5 * dd_v / 20
    assert not stat(evaluate(v, stream(11, 63, pnl=losses)), "max_drawdown").breached


def test_a_hit_rate_drop_is_found():
    rng = np.random.default_rng(12)
    v = validated(hit=rng.random(504) < 0.6)
    evaluation = evaluate(v, stream(12, 63, hit=rng.random(63) < 0.3))
    hit = stat(evaluation, "hit_rate")
    assert hit.breached and hit.reference - hit.value > 0.2
    small = stat(evaluate(v, stream(12, 63, hit=np.arange(63) % 100 < 36)), "hit_rate")  # 0.57: a small fall
    assert small.judged and not small.breached


@pytest.mark.parametrize(("factor", "breached"), [(2.0, True), (0.3, True), (1.3, False), (0.8, False)])
def test_a_turnover_change_either_way_is_found(factor, breached):
    evaluation = evaluate(validated(), stream(13, 63, turnover_mean=0.6 * factor))
    turnover = stat(evaluation, "turnover")
    assert turnover.judged and turnover.breached is breached, turnover.detail
    assert turnover.threshold == pytest.approx(turnover.reference * (1.5 if factor > 1 else 0.5))


def test_distribution_thresholds_rise_for_short_windows():
    short = evaluate(validated(), stream(14, 20))
    full = evaluate(validated(), stream(14, 63))
    for name in ("wasserstein", "psi"):
        assert stat(short, name).threshold > stat(full, name).threshold
    n_eff = 63 * 504 / (63 + 504)
    assert stat(full, "wasserstein").threshold == pytest.approx(0.4 * math.sqrt(63 / n_eff))
    assert stat(full, "psi").threshold == pytest.approx(0.5 * 63 / n_eff)


# --- skips and degenerate data -------------------------------------------------------------------


@pytest.mark.parametrize(("validated_frame", "live_frame", "reason"), [
    (pl.DataFrame(), stream(1, 63), "model has no validation metrics"),
    (validated().head(0), stream(1, 63), "model has no validation metrics"),
    (pl.DataFrame(), pl.DataFrame(), "model has no validation metrics"),
    (validated(), pl.DataFrame(), "empty live window"),
    (validated(), stream(1, 63).head(0), "empty live window"),
    (validated(), stream(1, 19), "only 19 live days, fewer than min_days=20"),
    (validated(n=59), stream(1, 63), "only 59 validated days, fewer than min_validation_days=60"),
    (validated(), stream(1, 63).with_columns(pnl=pl.when(pl.col("date") == LIVE_START).then(None)
                                             .otherwise(pl.col("pnl"))), "the live pnl holds 1 null"),
    (validated().with_columns(pnl=pl.lit(float("nan"))), stream(1, 63), "the validated pnl holds 504 null"),
])
def test_each_skip_reason_is_recorded(validated_frame, live_frame, reason):
    evaluation = evaluate(validated_frame, live_frame)
    assert evaluation.skipped is not None and reason in evaluation.skipped
    assert evaluation.statistics == () and not evaluation.drifted
    assert evaluation.summary() == f"alpha drift not evaluated: {evaluation.skipped}"
    assert finding_of(evaluation, model="alpha", version="3") is None
    json.dumps(evaluation.to_dict(), allow_nan=False)


def test_degenerate_data_is_not_judged_and_never_raises():
    flat_v = validated(pnl=np.full(504, 0.001)).with_columns(ic=pl.lit(None, pl.Float64),
                                                              turnover=pl.lit(0.0))
    flat_l = stream(2, 63, pnl=np.full(63, 0.001)).with_columns(ic=pl.lit(None, pl.Float64))
    evaluation = evaluate(flat_v, flat_l)
    assert evaluation.skipped is None
    not_judged = {s.name for s in evaluation.statistics if not s.judged}
    assert not_judged == {"sharpe", "rank_ic", "turnover", "ks", "wasserstein", "psi"}
    assert not evaluation.drifted
    assert all(s.detail for s in evaluation.statistics)
    assert "not judged" in evaluation.summary()
    json.dumps(evaluation.to_dict(), allow_nan=False)


def test_a_validated_model_without_ic_is_not_judged_on_ic():
    ic = stat(evaluate(validated(ic_mean=-0.02), stream(3, 63)), "rank_ic")
    assert not ic.judged and not ic.breached and "not positive" in ic.detail


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: f.drop("ic"), "lacks columns ['ic']"),
    (lambda f: f.with_columns(pl.col("date").cast(pl.String)), "expected Date or Datetime"),
    (lambda f: f.with_columns(hit=pl.lit(1)), "expected Boolean"),
    (lambda f: f.with_columns(pnl=pl.lit("x")), "expected a number"),
    (lambda f: pl.concat([f, f.tail(1)]), "repeats a value"),
])
def test_malformed_frames_are_configuration_errors(change, message):
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        evaluate(validated(), change(stream(1, 63)))
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        evaluate(change(validated()), stream(1, 63))


def test_a_wrong_time_column_or_policy_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="lacks columns \\['day'\\]"):
        evaluate_drift(validated(), stream(1, 63), POLICY, time_column="day")
    with pytest.raises(ConfigurationError, match="policy must be a DriftPolicy"):
        evaluate_drift(validated(), stream(1, 63), {"window_days": 63}, time_column="date")  # type: ignore[arg-type]


def test_datetime_time_columns_and_any_row_order_are_accepted():
    v, live = validated(), stream(4, 63, mean=-0.003)
    as_datetime = [f.with_columns(pl.col("date").cast(pl.Datetime("us"))) for f in (v, live)]
    base = evaluate(v, live).to_dict()
    assert evaluate(*as_datetime).to_dict() == base
    assert evaluate(v.reverse(), live.sample(fraction=1.0, shuffle=True, seed=1)).to_dict() == base


# --- policy --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("window_days", 1, "[2, 100000]"),
    ("window_days", 63.0, "[2, 100000]"),
    ("window_days", True, "[2, 100000]"),
    ("min_days", 0, "[2, 100000]"),
    ("min_days", 64, "[2, window_days=63]"),
    ("min_validation_days", "60", "[2, 100000]"),
    ("psi_bins", 1, "[2, 100]"),
    ("periods_per_year", 0, "[1, 100000]"),
    ("sharpe_confidence", 1.0, "(0.5, 1)"),
    ("sharpe_confidence", 0.4, "(0.5, 1)"),
    ("test_confidence", math.nan, "(0.5, 1)"),
    ("ic_decay", 0.0, "(0, 2]"),
    ("ic_decay", -0.5, "(0, 2]"),
    ("hit_rate_drop", 1.0, "(0, 1)"),
    ("turnover_change", math.inf, "(0, 100]"),
    ("drawdown_multiple", 0, "(0, 100]"),
    ("ks_alpha", 0.5, "(0, 0.5)"),
    ("ks_alpha", None, "(0, 0.5)"),
    ("wasserstein_max", -1.0, "(0, 100]"),
    ("psi_max", False, "(0, 100]"),
])
def test_a_bad_policy_field_names_itself_its_range_and_the_value(field, value, allowed):
    with pytest.raises(ConfigurationError) as caught:
        DriftPolicy(**{field: value})
    text = str(caught.value)
    assert f"DriftPolicy.{field}" in text and allowed in text and repr(value) in text


def test_the_policy_round_trips_and_refuses_unknown_fields():
    policy = DriftPolicy(window_days=126, min_days=40, ic_decay=1, sharpe_confidence=0.99)
    data = policy.to_dict()
    assert data["ic_decay"] == 1.0 and isinstance(data["ic_decay"], float)
    assert DriftPolicy.from_dict(json.loads(json.dumps(data))) == policy
    with pytest.raises(ConfigurationError, match="unknown DriftPolicy field"):
        DriftPolicy.from_dict({"window": 63})
    assert policy.significance_budget == pytest.approx(0.01 + 3 * 0.001 + 0.001)


def test_a_stricter_policy_judges_with_its_own_thresholds():
    v, live = validated(), stream(7, 63, mean=0.0005)
    assert not evaluate(v, live).drifted
    loose = DriftPolicy(sharpe_confidence=0.6)
    assert "sharpe" in {s.name for s in evaluate(v, live, loose).findings}


# --- results -------------------------------------------------------------------------------------


def test_the_same_input_gives_the_same_report():
    first = evaluate(validated(), stream(15, 63, mean=-0.002, std=0.02)).to_dict()
    again = evaluate(validated(), stream(15, 63, mean=-0.002, std=0.02)).to_dict()
    assert first == again
    assert json.dumps(first, allow_nan=False, sort_keys=True) == json.dumps(again, allow_nan=False, sort_keys=True)
    assert first["drifted"] and first["findings"] and list(first["statistics"]) == list(STATISTIC_NAMES)
    assert first["policy"] == POLICY.to_dict()


def test_a_finding_is_a_research_alert_keyed_by_its_breached_statistics():
    evaluation = evaluate(validated(), stream(8, 63, std=0.03, mean=-0.004))
    finding = finding_of(evaluation, model="alpha_ridge", version="12")
    assert isinstance(finding, AlphaDriftFinding) and finding.route == "research"
    names = sorted(s.name for s in evaluation.findings)
    assert len(names) >= 3
    assert finding.key == "alpha_ridge:12:drift:" + ".".join(names)
    assert finding.live_window == evaluation.live_window and finding.validation_window == evaluation.validated_window
    assert finding.statistics == evaluation.to_dict()["statistics"]
    assert finding.summary == evaluation.summary() and finding.summary.startswith("alpha drift on live ")
    assert AlphaDriftFinding.from_dict(json.loads(json.dumps(finding.to_dict()))) == finding


def test_summaries_say_what_moved_or_that_nothing_did():
    calm = evaluate(validated(), stream(0, 63))
    assert calm.summary().startswith("no alpha drift on live ") and "8 statistics within bounds" in calm.summary()
    moved = evaluate(validated(), stream(7, 63, mean=-0.002))
    assert "sharpe: annualized Sharpe" in moved.summary() and "\n" not in moved.summary()


def test_a_significant_but_immaterial_hit_rate_fall_is_no_finding():
    v = validated(hit=np.arange(504) % 10 < 6)  # 0.60
    lenient = DriftPolicy(test_confidence=0.6)  # z > 0.25 is enough to be significant
    hit = stat(evaluate(v, stream(12, 63, hit=np.arange(63) < 36), lenient), "hit_rate")  # 0.571: 3 points
    assert "z 0.4" in hit.detail and not hit.breached
    hit = stat(evaluate(v, stream(12, 63, hit=np.arange(63) < 31), lenient), "hit_rate")  # 0.492: 11 points
    assert hit.breached


def test_psi_by_hand_with_its_smoothed_bins():
    v = validated(pnl=np.arange(504) / 504.0)  # median edge 0.499: 252 days each side
    live = stream(16, 63, pnl=np.full(63, 2.0))  # every live day above it
    psi = stat(evaluate(v, live, DriftPolicy(psi_bins=2)), "psi")
    share_v = np.array([252.5, 252.5]) / 505.0
    share_l = np.array([0.5, 63.5]) / 64.0
    assert psi.value == pytest.approx(float(np.sum((share_l - share_v) * np.log(share_l / share_v))), rel=1e-12)
    assert psi.breached


def test_an_empty_psi_bin_in_a_short_window_is_not_a_finding():
    v, live = validated(), stream(1, 20)  # two of its ten bins are empty
    edges = np.quantile(v["pnl"].to_numpy(), np.arange(1, 10) / 10)
    counts = np.bincount(np.searchsorted(edges, live["pnl"].to_numpy(), side="right"), minlength=10)
    assert (counts == 0).any()  # the case an unsmoothed PSI turns into an infinite (or huge) term
    psi = stat(evaluate(v, live), "psi")
    assert psi.judged and not psi.breached, psi.detail
