"""The promotion gates as pure functions, at their edges: rationale, four eyes, thresholds, report, policy.

The promote_model job tests run each gate once through Dagster; these pin where each one draws its line
(a margin met exactly, a rationale one character short, a copy at exactly the similarity bar) directly.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np
import polars as pl
import pytest

from ml_platform.errors import ConfigurationError, DataError, GateFailed
from ml_platform.models import LinearSignalModel
from ml_platform.models.backtest import BacktestReport
from ml_platform.promotion import gates as G
from ml_platform.promotion.policy import PromotionPolicy
from ml_platform.window import DataWindow
from ml_platform_tests.promotion.conftest import FEATURES, KEYS, LABEL, TRAIN

WINDOW = DataWindow.parse("2021-03-01..2021-03-31")
NAMES = [f"N{k:02d}" for k in range(6)]
SHORT = PromotionPolicy(min_rationale_chars=10)


def refused(gate: str, match: str) -> pytest.RaisesContext[GateFailed]:
    return pytest.raises(GateFailed, match=f"(?s)^\\[GATE_FAILED\\] promotion gate '{gate}' refused: .*{match}")


# -- the failure every gate raises -----------------------------------------------------------------


def test_a_refusal_names_its_gate_in_the_message_and_as_an_attribute() -> None:
    error = G.gate_failed("four_eyes", "no approver")
    assert isinstance(error, GateFailed) and error.args == ("promotion gate 'four_eyes' refused: no approver",)
    assert error.gate == "four_eyes"  # type: ignore[attr-defined]
    assert G.GATE_ORDER == ("report", "rationale", "contract", "four_eyes", "thresholds")


# -- rationale ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\t ", None, 42])
def test_an_empty_rationale_is_refused(text: object) -> None:
    with refused("rationale", "the rationale is empty"):
        G.check_rationale(text, policy=SHORT)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["TODO", "  n/a. ", "N/A!!", "---", "....", "???", "Same as before",
                                  "n/a\n---", "tbd\n\n  ...  \nnone"])
def test_a_placeholder_rationale_is_refused_as_such(text: str) -> None:
    with refused("rationale", re.escape(f"the rationale is a placeholder ({text.strip()[:40]!r})")):
        G.check_rationale(text, policy=SHORT)


def test_a_rationale_with_one_real_line_among_placeholder_lines_is_not_a_placeholder() -> None:
    text = "n/a\nThe challenger's rank IC is steadier on the same dates."
    assert G.check_rationale(text, policy=SHORT).passed


@pytest.mark.parametrize(("text", "word"), [
    ("The Sharpe is higher on the same dates, TODO: add the turnover numbers.", "TODO"),
    ("Lorem ipsum keeps the desk happy for the whole validation window.", "Lorem ipsum"),
    ("Better rank IC on every week of the window; fixme before the review.", "fixme"),
])
def test_a_rationale_holding_a_placeholder_word_is_refused_naming_it(text: str, word: str) -> None:
    with refused("rationale", f"contains the placeholder {word!r}; finish it"):
        G.check_rationale(text, policy=SHORT)


def test_the_shortest_accepted_rationale_is_exactly_the_policy_minimum_stripped() -> None:
    policy = PromotionPolicy(min_rationale_chars=30)
    exact = "Higher rank IC on the same dat"
    assert len(exact) == 30
    result = G.check_rationale(f"  \n{exact}\n  ", policy=policy)
    assert (result.name, result.passed, result.detail) == ("rationale", True, "30 characters")
    assert result.facts == {"chars": 30, "override": False}
    with refused("rationale", "the rationale has 29 characters, the policy asks for at least 30"):
        G.check_rationale(exact[:-1], policy=policy)


def test_a_copied_rationale_is_refused_at_the_similarity_bar_and_not_below() -> None:
    mine = "b" * 90 + "c" * 10
    at_the_bar = "b" * 90 + "d" * 10  # 90 of 100 characters match: a ratio of exactly 0.9
    below = "b" * 89 + "d" * 11
    with refused("rationale", r"a copy \(90% identical\) of an earlier rationale"):
        G.check_rationale(mine, previous=[at_the_bar], policy=SHORT)
    assert G.check_rationale(mine, previous=[below], policy=SHORT).passed


def test_a_copy_is_found_whatever_its_case_spacing_and_place_among_the_earlier_ones() -> None:
    text = "The challenger earns more per unit of turnover on the same dates."
    spaced = "  THE challenger   earns more per unit\nof turnover on the same dates.  "
    with refused("rationale", r"a copy \(100% identical\)"):
        G.check_rationale(text, previous=["", "   ", "Something else entirely, about the drawdown.", spaced],
                          policy=SHORT)
    assert G.check_rationale(text, previous=["", "  "], policy=SHORT).passed


def test_an_override_is_declared_by_a_line_starting_with_the_prefix() -> None:
    policy = PromotionPolicy()
    assert G.declares_override("Sharpe is lower.\n  override: the desk wants it live  \nmore", policy) == \
        "the desk wants it live"
    assert G.declares_override("OVERRIDE:\nOVERRIDE:   second line gives the reason", policy) == \
        "second line gives the reason"
    assert G.declares_override("OVERRIDE:   \n", policy) is None
    assert G.declares_override("no override: this line does not start with it", policy) is None
    custom = PromotionPolicy(override_prefix="Exception granted -")
    assert G.declares_override("exception GRANTED - by risk", custom) == "by risk"
    assert G.declares_override("OVERRIDE: by risk", custom) is None


def test_a_rationale_declaring_an_override_says_so() -> None:
    text = "Weaker backtest, deliberate experiment.\nOVERRIDE: the desk accepts the lower Sharpe for two weeks"
    result = G.check_rationale(text, policy=SHORT)
    assert result.detail == f"{len(text)} characters, declares an override"
    assert result.facts == {"chars": len(text), "override": True}
    assert result.to_dict() == {"name": "rationale", "passed": True, "detail": result.detail,
                                "facts": {"chars": len(text), "override": True}}


# -- four eyes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("approver", ["", "   ", None])
def test_four_eyes_needs_an_approver(approver: object) -> None:
    with refused("four_eyes", "no approver named; a second person must approve"):
        G.check_four_eyes(approver, "alice")  # type: ignore[arg-type]


@pytest.mark.parametrize("approver", ["alice", "  ALICE ", "Alice"])
def test_four_eyes_refuses_the_trainer_whatever_the_case_and_spacing(approver: str) -> None:
    with refused("four_eyes", f"the approver {approver.strip()!r} trained this version"):
        G.check_four_eyes(approver, "Alice")
    with refused("four_eyes", "trained this version"):
        G.check_four_eyes("Alice  van  Dyke", "alice van\tdyke")


def test_four_eyes_passes_another_person() -> None:
    result = G.check_four_eyes("  bob ", "alice")
    assert (result.name, result.passed, result.detail) == ("four_eyes", True, "approved by 'bob', trained by 'alice'")
    assert result.facts == {"approver": "bob", "trained_by": "alice"}


# -- thresholds -----------------------------------------------------------------------------------


def backtest_report(**values: float) -> BacktestReport:
    base = {"sharpe": 1.0, "ic_mean": 0.05, "ic_tstat": 3.0, "hit_rate": 0.55, "turnover": 0.4,
            "max_drawdown": 0.2, "total_return": 0.1}
    return BacktestReport(window=WINDOW, n_days=20, **{**base, **values})


def numeric(challenger: BacktestReport, incumbent: BacktestReport | None) -> G.NumericReport:
    empty = pl.DataFrame({"date": [], "pnl": [], "ic": []})
    return G.NumericReport(
        model="m", challenger=G.ModelSeries("2", challenger, empty),
        incumbent=None if incumbent is None else G.ModelSeries("1", incumbent, empty),
        window=WINDOW, rows=120, time_column="date")


@pytest.mark.parametrize(("metric", "margin", "incumbent", "at_margin"), [
    ("sharpe", 0.25, 1.0, 0.75),
    ("ic_mean", 0.01, 0.05, 0.04),
    ("ic_tstat", 2.0, 3.0, 1.0),
    ("hit_rate", 0.05, 0.55, 0.5),
])
def test_each_metric_may_drop_by_exactly_its_margin_and_no_more(metric: str, margin: float, incumbent: float,
                                                               at_margin: float) -> None:
    policy = PromotionPolicy()
    assert getattr(policy, f"max_{metric}_drop") == margin and incumbent - at_margin == pytest.approx(margin)
    inc = backtest_report(**{metric: incumbent})
    assert G.threshold_breaches(numeric(backtest_report(**{metric: at_margin}), inc), policy) == []
    assert G.threshold_breaches(numeric(backtest_report(**{metric: incumbent + 5.0}), inc), policy) == []
    worse = at_margin - 1e-6
    breaches = G.threshold_breaches(numeric(backtest_report(**{metric: worse}), inc), policy)
    assert breaches == [(f"{metric} {worse:.4f} vs incumbent {incumbent:.4f}: drop {incumbent - worse:.4f} > "
                         f"allowed {margin:g}")]


def test_a_margin_of_zero_refuses_any_drop_and_accepts_a_tie() -> None:
    strict = PromotionPolicy(max_sharpe_drop=0.0, max_ic_mean_drop=0.0, max_ic_tstat_drop=0.0,
                             max_hit_rate_drop=0.0, max_drawdown_increase=0.0, min_drawdown_margin=0.0,
                             max_turnover_increase=0.0)
    same = backtest_report()
    assert G.threshold_breaches(numeric(same, same), strict) == []
    worse = backtest_report(sharpe=0.999, ic_mean=0.0499, ic_tstat=2.999, hit_rate=0.549, max_drawdown=0.2001,
                            turnover=0.4001)
    found = G.threshold_breaches(numeric(worse, same), strict)
    assert [b.split(" ")[0] for b in found] == ["sharpe", "ic_mean", "ic_tstat", "hit_rate", "max_drawdown",
                                                "turnover"]


def test_the_drawdown_may_deepen_by_the_relative_margin_or_the_absolute_one_whichever_is_larger() -> None:
    policy = PromotionPolicy(max_drawdown_increase=0.25, min_drawdown_margin=0.01)
    deep = backtest_report(max_drawdown=0.2)  # relative: 0.2 * 1.25 = 0.25 beats 0.2 + 0.01
    assert G.threshold_breaches(numeric(backtest_report(max_drawdown=0.25), deep), policy) == []
    over = G.threshold_breaches(numeric(backtest_report(max_drawdown=0.2501), deep), policy)
    assert over == ["max_drawdown 0.2501 vs incumbent 0.2000: above the allowed 0.2500 (+25%)"]
    shallow = backtest_report(max_drawdown=0.02)  # absolute: 0.02 + 0.01 = 0.03 beats 0.02 * 1.25
    assert G.threshold_breaches(numeric(backtest_report(max_drawdown=0.03), shallow), policy) == []
    assert G.threshold_breaches(numeric(backtest_report(max_drawdown=0.0301), shallow), policy) == [
        "max_drawdown 0.0301 vs incumbent 0.0200: above the allowed 0.0300 (+25%)"]
    assert G.threshold_breaches(numeric(backtest_report(max_drawdown=0.0), deep), policy) == []


def test_turnover_is_checked_only_when_the_policy_bounds_it() -> None:
    incumbent = backtest_report(turnover=0.4)
    churn = backtest_report(turnover=4.0)
    assert G.threshold_breaches(numeric(churn, incumbent), PromotionPolicy()) == []
    bounded = PromotionPolicy(max_turnover_increase=0.5)  # at most 0.4 * 1.5 = 0.6
    assert G.threshold_breaches(numeric(backtest_report(turnover=0.6), incumbent), bounded) == []
    assert G.threshold_breaches(numeric(churn, incumbent), bounded) == [
        "turnover 4.0000 vs incumbent 0.4000: above the allowed 0.6000"]
    assert len(G.threshold_breaches(numeric(backtest_report(turnover=0.6001), incumbent), bounded)) == 1


def test_the_thresholds_pass_a_first_promotion_and_a_challenger_within_the_margins() -> None:
    policy = PromotionPolicy()
    first = G.check_thresholds(numeric(backtest_report(sharpe=-3.0), None), policy, override=None)
    assert (first.name, first.passed, first.detail) == ("thresholds", True,
                                                        "first promotion: no incumbent to compare with")
    assert first.facts == {"override": False, "breaches": []}
    within = G.check_thresholds(numeric(backtest_report(sharpe=0.9), backtest_report()), policy, override="x")
    assert within.detail == "within the margins of incumbent version 1" and within.facts["override"] is False


def test_the_thresholds_refuse_a_worse_challenger_unless_the_rationale_overrides() -> None:
    policy = PromotionPolicy()
    report = numeric(backtest_report(sharpe=0.5, ic_mean=0.01), backtest_report())
    breaches = G.threshold_breaches(report, policy)
    assert [b.split(" ")[0] for b in breaches] == ["sharpe", "ic_mean"]
    with refused("thresholds", "worse than incumbent version 1 beyond the policy's margins: "
                               + "; ".join(breaches).replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")
                               + r"\. Improve it, or declare an override in the rationale \(a line starting "
                               "'OVERRIDE:'\\)"):
        G.check_thresholds(report, policy, override=None)
    overridden = G.check_thresholds(report, policy, override="the desk accepts it")
    assert overridden.passed and overridden.detail == f"OVERRIDDEN (the desk accepts it): {'; '.join(breaches)}"
    assert overridden.facts == {"override": True, "breaches": breaches}


def test_finite_keeps_numbers_and_drops_nan_and_infinities() -> None:
    assert G.finite(1.5) == 1.5 and G.finite(-0.0) == 0.0
    assert G.finite(math.nan) is None and G.finite(math.inf) is None and G.finite(-math.inf) is None


# -- the numeric report ---------------------------------------------------------------------------


def test_the_report_table_shows_both_models_and_their_signed_differences() -> None:
    report = numeric(backtest_report(sharpe=1.25, turnover=0.5), backtest_report())
    assert report.differences == pytest.approx({"sharpe": 0.25, "ic_mean": 0.0, "ic_tstat": 0.0, "hit_rate": 0.0,
                                                "turnover": 0.1, "max_drawdown": 0.0, "total_return": 0.0})
    lines = report.markdown().splitlines()
    assert lines[0] == f"**Validation window {WINDOW}** (120 rows; the thresholds apply here)"
    assert lines[2:5] == ["| metric | challenger v2 | incumbent v1 | difference |", "|---|---:|---:|---:|",
                          "| sharpe | 1.2500 | 1.0000 | +0.2500 |"]
    assert "| turnover | 0.5000 | 0.4000 | +0.1000 |" in lines
    assert "| n_days | 20 | 20 | - |" in lines
    first = numeric(backtest_report(max_drawdown=0.125), None)
    assert first.differences == {}
    table = first.markdown().splitlines()
    assert table[2] == "| metric | challenger v2 | incumbent (none) | difference |"
    assert "| max_drawdown | 0.1250 | - | - |" in table
    assert first.to_dict()["incumbent_version"] is None and first.to_dict()["incumbent"] is None
    assert report.to_dict()["differences"]["sharpe"] == pytest.approx(0.25)
    assert report.to_dict()["incumbent_version"] == "1" and report.to_dict()["rows"] == 120


def test_a_live_section_holds_both_series_or_a_reason_never_both_nor_neither() -> None:
    series = G.ModelSeries("2", backtest_report(), pl.DataFrame())
    with pytest.raises(ValueError, match="either both models' series or the reason"):
        G.LiveSection("1", dt.date(2021, 3, 1))
    with pytest.raises(ValueError, match="either both models' series or the reason"):
        G.LiveSection("1", dt.date(2021, 3, 1), window=WINDOW, rows=3, challenger=series, incumbent=series,
                      reason="why")
    with pytest.raises(ValueError, match="either both"):
        G.LiveSection("1", dt.date(2021, 3, 1), window=WINDOW, rows=3, challenger=series)
    live = G.LiveSection("1", dt.date(2021, 3, 1), window=WINDOW, rows=3, challenger=series, incumbent=series)
    assert live.available and live.days == 20 and live.summary == f"{WINDOW}: 20 days, 3 rows ({G.LIVE_NOT_GATED})"
    assert live.title == "Live days since incumbent v1 became champion on 2021-03-01"
    absent = G.LiveSection("1", None, reason="nothing stored")
    assert (absent.days, absent.differences, absent.summary) == (0, {}, "nothing stored")
    assert absent.title == "Live days of incumbent v1"
    assert G.LiveSection(None, None, reason="first").title == "Live days: none (no incumbent)"
    assert absent.markdown() == f"**Live days of incumbent v1** ({G.LIVE_NOT_GATED})\n\nnothing stored"
    assert absent.to_dict()["incumbent_champion_since"] is None and absent.to_dict()["window"] is None


# -- the rows the report is computed on -----------------------------------------------------------


def days_frame(first: dt.date, last: dt.date, *, seed: int = 1) -> pl.DataFrame:
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    rng = np.random.default_rng(seed)
    n = len(days) * len(NAMES)
    f1, f2 = rng.normal(size=n), rng.normal(size=n)
    return pl.DataFrame({"date": [d for d in days for _ in NAMES], "instrument": NAMES * len(days), "f1": f1,
                         "f2": f2, LABEL: 0.01 * f1 + 0.004 * rng.normal(size=n)},
                        schema_overrides={"date": pl.Date})


def test_validation_rows_are_those_of_the_window_both_ends_included() -> None:
    frame = days_frame(dt.date(2021, 2, 27), dt.date(2021, 4, 2))
    rows = G.validation_rows(frame, WINDOW, KEYS)
    assert (rows["date"].min(), rows["date"].max()) == (WINDOW.start, WINDOW.end)
    assert rows.height == 31 * len(NAMES)
    stamped = frame.with_columns(pl.col("date").cast(pl.Datetime("us")) + pl.duration(hours=15))
    assert G.validation_rows(stamped, WINDOW, KEYS).height == 31 * len(NAMES)
    with pytest.raises(DataError, match="the training set has no time column 'date'"):
        G.validation_rows(frame.drop("date"), WINDOW, KEYS)


def linear(coefs: tuple[float, float]) -> LinearSignalModel:
    return LinearSignalModel(FEATURES, coefs, 0.0, training_window=TRAIN, n_days=70, n_rows=700,
                             label_column=LABEL, keys=KEYS)


def report_of(frame: pl.DataFrame, policy: PromotionPolicy, incumbent: LinearSignalModel | None = None,
              window: DataWindow = WINDOW) -> G.NumericReport:
    return G.compute_numeric_report(
        model="m", challenger=linear((1.0, 0.0)), challenger_version="2", incumbent=incumbent,
        incumbent_version=None if incumbent is None else "1", training_set=frame, window=window, keys=KEYS,
        label_column=LABEL, policy=policy)


def test_the_report_needs_the_policy_minimum_of_evaluated_days_and_accepts_exactly_it() -> None:
    frame = days_frame(dt.date(2021, 3, 1), dt.date(2021, 3, 5))
    exact = report_of(frame, PromotionPolicy(min_validation_days=5))
    assert exact.challenger.report.n_days == 5 and exact.incumbent is None and exact.rows == 5 * len(NAMES)
    assert (exact.window, exact.time_column, exact.model) == (WINDOW, "date", "m")
    with refused("report", f"the validation window {WINDOW} gives 5 evaluated days, the policy needs at least 6"):
        report_of(frame, PromotionPolicy(min_validation_days=6))


def test_the_report_scores_both_models_on_the_same_rows() -> None:
    frame = days_frame(dt.date(2021, 3, 1), dt.date(2021, 3, 12))
    report = report_of(frame, PromotionPolicy(), incumbent=linear((0.0, 1.0)))
    assert report.incumbent is not None and report.incumbent.version == "1" and report.challenger.version == "2"
    assert report.challenger.report.n_days == report.incumbent.report.n_days == 12
    assert report.challenger.report.sharpe != report.incumbent.report.sharpe
    assert report.challenger.daily.columns == ["date", "pnl", "ic"] and report.challenger.daily.height == 12
    assert report.challenger.daily["date"].is_sorted()


def test_the_report_gate_refuses_what_it_cannot_compute() -> None:
    frame = days_frame(dt.date(2021, 3, 1), dt.date(2021, 3, 12))
    with refused("report", "has no label column 'fwd'"):
        report_of(frame.drop(LABEL), PromotionPolicy())
    with refused("report", "has no time column 'date'"):
        report_of(frame.drop("date"), PromotionPolicy())
    with refused("report", "holds no rows in its validation window 2021-04-01..2021-04-30"):
        report_of(frame, PromotionPolicy(), window=DataWindow.parse("2021-04-01..2021-04-30"))
    with refused("report", f"the incumbent \\(version 1\\) cannot be evaluated on the challenger's validation "
                           f"rows {WINDOW}"):
        report_of(frame, PromotionPolicy(), incumbent=LinearSignalModel(
            ("f1", "f3"), (1.0, 1.0), 0.0, training_window=TRAIN, n_days=70, n_rows=700, label_column=LABEL,
            keys=KEYS))


def test_live_rows_are_strictly_after_the_day_and_only_with_a_finite_label() -> None:
    frame = days_frame(dt.date(2021, 3, 1), dt.date(2021, 3, 4))
    x, y = frame.drop(LABEL), frame.select("date", "instrument", LABEL)
    y = y.with_columns(
        pl.when((pl.col("date") == dt.date(2021, 3, 3)) & (pl.col("instrument") == "N00")).then(float("nan"))
        .when((pl.col("date") == dt.date(2021, 3, 3)) & (pl.col("instrument") == "N01")).then(float("inf"))
        .otherwise(pl.col(LABEL)).alias(LABEL))
    rows = G.live_rows(x, y, after=dt.date(2021, 3, 2), keys=KEYS, label_column=LABEL)
    assert rows["date"].unique().sort().to_list() == [dt.date(2021, 3, 3), dt.date(2021, 3, 4)]
    assert rows.height == 2 * len(NAMES) - 2 and rows[LABEL].is_finite().all()
    assert rows.columns == ["date", "instrument", "f1", "f2", LABEL]
    with pytest.raises(DataError, match=r"the stored model input partitions lack the column\(s\) \['instrument'\]"):
        G.live_rows(x.drop("instrument"), y, after=dt.date(2021, 3, 2), keys=KEYS, label_column=LABEL)
    with pytest.raises(DataError, match=r"the stored label partitions lack the column\(s\) \['fwd'\]"):
        G.live_rows(x, y.drop(LABEL), after=dt.date(2021, 3, 2), keys=KEYS, label_column=LABEL)
    with pytest.raises(DataError, match="cannot be joined on"):
        G.live_rows(x, y.with_columns(pl.col("instrument").cast(pl.Categorical)).with_columns(
            pl.col("date").cast(pl.Utf8)), after=dt.date(2021, 3, 2), keys=KEYS, label_column=LABEL)


def test_two_live_days_are_enough_and_the_section_names_how_the_incumbent_became_champion() -> None:
    frame = days_frame(dt.date(2021, 3, 1), dt.date(2021, 3, 3))
    x, y = frame.drop(LABEL), frame.select("date", "instrument", LABEL)

    def live(**overrides: object) -> G.LiveSection:
        arguments = {"challenger": linear((1.0, 0.0)), "challenger_version": "2", "incumbent": linear((0.0, 1.0)),
                     "incumbent_version": 1, "since": dt.date(2021, 3, 1), "model_input": x, "labels": y,
                     "keys": KEYS, "label_column": LABEL, "moved": "restored by a rollback", **overrides}
        return G.compute_live_section(**arguments)  # type: ignore[arg-type]

    two = live()
    assert two.available and two.days == 2 and two.incumbent_version == "1"
    assert two.window == DataWindow(dt.date(2021, 3, 2), dt.date(2021, 3, 3))
    one = live(since=dt.date(2021, 3, 2))
    assert one.reason == ("only one live day with a known label stored since version 1 was restored by a rollback "
                          "on 2021-03-02 (2021-03-03); the metrics need at least 2")
    assert live(incumbent_version=None).reason.startswith("no live days to compare: first promotion")
    assert live(since=None).incumbent_version is None
    with refused("report", "the stored model input partitions have no time column 'date'"):
        live(model_input=x.rename({"date": "day"}))
    with refused("report", "the live days since version 1 was restored by a rollback on 2021-03-01 cannot be read: "
                           ".*cannot be joined on"):  # a label partition whose day is text, not a date
        live(labels=y.with_columns(pl.col("date").cast(pl.Utf8)))
    assert live(labels=y.head(0)).reason.startswith("no live days with a known label stored since version 1 was "
                                                    "restored by a rollback on 2021-03-01: 2 model-input day(s)")


# -- the policy -----------------------------------------------------------------------------------


def test_the_policy_accepts_its_range_ends_and_stores_margins_as_floats() -> None:
    low = PromotionPolicy(max_sharpe_drop=0, max_ic_mean_drop=0, max_ic_tstat_drop=0, max_hit_rate_drop=0,
                          max_drawdown_increase=0, min_drawdown_margin=0, max_turnover_increase=0,
                          min_rationale_chars=1, min_validation_days=2, override_prefix="!")
    assert low.max_sharpe_drop == 0.0 and isinstance(low.max_sharpe_drop, float)
    assert isinstance(low.max_turnover_increase, float)
    high = PromotionPolicy(max_sharpe_drop=10, max_ic_mean_drop=1, max_ic_tstat_drop=100, max_hit_rate_drop=1,
                           max_drawdown_increase=10, min_drawdown_margin=10, max_turnover_increase=100,
                           min_rationale_chars=100_000, min_validation_days=100_000, override_prefix="x" * 40)
    assert high.to_dict()["max_ic_tstat_drop"] == 100.0 and high.to_dict()["min_validation_days"] == 100_000
    assert PromotionPolicy().to_dict() == {
        "max_sharpe_drop": 0.25, "max_ic_mean_drop": 0.01, "max_ic_tstat_drop": 2.0, "max_hit_rate_drop": 0.05,
        "max_drawdown_increase": 0.25, "min_drawdown_margin": 0.01, "max_turnover_increase": None,
        "min_rationale_chars": 200, "min_validation_days": 5, "override_prefix": "OVERRIDE:"}


@pytest.mark.parametrize(("field", "value"), [
    ("max_sharpe_drop", 10.01), ("max_ic_mean_drop", -0.001), ("max_ic_tstat_drop", 100.5),
    ("max_hit_rate_drop", 1.01), ("max_drawdown_increase", 10.5), ("min_drawdown_margin", -1e-9),
    ("max_turnover_increase", 100.01), ("max_sharpe_drop", math.nan), ("max_sharpe_drop", math.inf),
    ("max_sharpe_drop", True), ("max_sharpe_drop", "0.1"), ("max_sharpe_drop", None),
])
def test_a_margin_out_of_its_range_is_refused_naming_field_and_range(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=f"PromotionPolicy.{field} must be a number from "):
        PromotionPolicy(**{field: value})  # type: ignore[arg-type]


def test_the_margin_error_gives_the_range_and_its_meaning() -> None:
    with pytest.raises(ConfigurationError, match=r"max_ic_mean_drop must be a number from 0 to 1 \(rank-IC mean the "
                                                 r"challenger may lose\), got 2"):
        PromotionPolicy(max_ic_mean_drop=2)


@pytest.mark.parametrize(("field", "value", "bounds"), [
    ("min_rationale_chars", 0, "1 to 100000"), ("min_rationale_chars", 100_001, "1 to 100000"),
    ("min_validation_days", 1, "2 to 100000"), ("min_validation_days", 100_001, "2 to 100000"),
    ("min_validation_days", 5.0, "2 to 100000"), ("min_rationale_chars", True, "1 to 100000"),
])
def test_the_counts_are_integers_in_their_range(field: str, value: object, bounds: str) -> None:
    with pytest.raises(ConfigurationError, match=f"PromotionPolicy.{field} must be an integer from {bounds}, "):
        PromotionPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "   ", "x" * 41, "OVER\nRIDE:", 3])
def test_the_override_prefix_is_a_short_one_line_marker(prefix: object) -> None:
    with pytest.raises(ConfigurationError, match="override_prefix must be a short one-line marker"):
        PromotionPolicy(override_prefix=prefix)  # type: ignore[arg-type]


# -- survivors of the first mutation run ----------------------------------------------------------------


def test_the_contract_gate_checks_the_live_graph_schema_and_environment() -> None:
    import dataclasses

    from ml_platform.environment import capture_environment
    from ml_platform_tests.registry import conftest as R

    contract = R.make_contract("m", R.make_model())
    running = capture_environment()
    passed = G.check_contract_gate(contract, live_graph_hash=R.GRAPH_HASH, live_schema=R.feature_schema(),
                                   keys=R.KEYS, running_env=running, policy="strict")
    assert passed == G.GateResult("contract", True, f"feature graph {R.GRAPH_HASH} and schema match",
                                  {"environment_differences": []})
    with refused("contract", f"feature_graph_hash: contract {R.GRAPH_HASH} != live {R.OTHER_GRAPH_HASH}"):
        G.check_contract_gate(contract, live_graph_hash=R.OTHER_GRAPH_HASH, live_schema=R.feature_schema(),
                              keys=R.KEYS, running_env=running, policy="strict")
    moved = dataclasses.replace(running, packages=tuple((n, "0.0.1" if n == "polars" else v)
                                                        for n, v in running.packages))
    tolerated = G.check_contract_gate(contract, live_graph_hash=R.GRAPH_HASH, live_schema=R.feature_schema(),
                                      keys=R.KEYS, running_env=moved, policy="warn")
    assert tolerated.detail == (f"feature graph {R.GRAPH_HASH} and schema match; 1 environment difference(s) "
                                "tolerated by policy")
    assert [d for d in tolerated.facts["environment_differences"]] == [
        f"package polars: {running.package_versions['polars']} -> 0.0.1"]
    with refused("contract", "polars"):
        G.check_contract_gate(contract, live_graph_hash=R.GRAPH_HASH, live_schema=R.feature_schema(),
                              keys=R.KEYS, running_env=moved, policy="strict")


def test_refusals_end_with_what_to_do() -> None:
    with refused("rationale", "the rationale is empty; write why this version should become champion$"):
        G.check_rationale(" ", policy=SHORT)
    text = "The challenger earns more per unit of turnover on the same dates."
    with refused("rationale", "of this model; write one for this version$"):
        G.check_rationale(text, previous=[text], policy=SHORT)
    with refused("four_eyes", "no approver named; a second person must approve the promotion$"):
        G.check_four_eyes("", "alice")
    with refused("four_eyes", "another person must approve it$"):
        G.check_four_eyes("alice", "alice")
    long_placeholder = "n/a\n" * 15
    with refused("rationale", re.escape(f"({long_placeholder.strip()[:40]!r}); write the actual reason") + "$"):
        G.check_rationale(long_placeholder, policy=SHORT)
    with pytest.raises(ValueError, match="^a LiveSection holds either both models' series or the reason there are "
                                         "none$"):
        G.LiveSection("1", None)


def test_a_long_copy_is_found_however_often_its_characters_repeat() -> None:
    # difflib's automatic junk heuristic ignores characters frequent in a text of 200 or more: in a text made
    # only of such characters a copy would look 0% identical. The heuristic is off.
    text = "dab cab bad " * 30
    with refused("rationale", r"is a copy \(100% identical\)"):
        G.check_rationale("cab" + text[3:], previous=[text], policy=PromotionPolicy())


def test_an_overridden_thresholds_result_is_the_thresholds_gate() -> None:
    report = numeric(backtest_report(sharpe=0.1), backtest_report())
    result = G.check_thresholds(report, PromotionPolicy(), override="accepted")
    assert (result.name, result.passed) == ("thresholds", True)


def test_a_live_section_to_dict_and_markdown_whole() -> None:
    daily = pl.DataFrame({"date": [], "pnl": [], "ic": []})
    challenger = G.ModelSeries("2", backtest_report(sharpe=1.5), daily)
    incumbent = G.ModelSeries("1", backtest_report(), daily)
    live = G.LiveSection("1", dt.date(2021, 3, 1), window=WINDOW, rows=40, challenger=challenger,
                         incumbent=incumbent)
    assert live.to_dict() == {
        "available": True, "incumbent_version": "1", "incumbent_champion_since": "2021-03-01",
        "window": str(WINDOW), "days": 20, "rows": 40, "challenger": challenger.report.to_dict(),
        "incumbent": incumbent.report.to_dict(), "differences": live.differences, "reason": None,
        "thresholds_apply": False}
    assert live.differences["sharpe"] == pytest.approx(0.5)
    lines = live.markdown().split("\n")
    assert lines[:5] == [f"**Live days since incumbent v1 became champion on 2021-03-01** ({G.LIVE_NOT_GATED})", "",
                         f"{WINDOW}: 20 days, 40 rows", "",
                         "| metric | challenger v2 | incumbent v1 | difference |"]
    assert "| sharpe | 1.5000 | 1.0000 | +0.5000 |" in lines
    absent = G.LiveSection("1", dt.date(2021, 3, 1), reason="why").to_dict()
    assert (absent["window"], absent["challenger"], absent["incumbent"], absent["days"]) == (None, None, None, 0)


def test_the_numeric_report_to_dict_and_markdown_whole() -> None:
    report = numeric(backtest_report(sharpe=1.25), backtest_report())
    data = report.to_dict()
    assert list(data) == ["model", "challenger_version", "incumbent_version", "window", "rows", "challenger",
                          "incumbent", "differences", "thresholds_apply_to", "live"]
    assert (data["model"], data["challenger_version"], data["window"]) == ("m", "2", str(WINDOW))
    assert data["incumbent"] == backtest_report().to_dict() and data["live"]["reason"] == G.LIVE_NOT_COMPUTED
    lines = report.markdown().split("\n")
    assert lines[1] == "" and lines[-4] == ""
    assert report.markdown().endswith(f"\n\n**Live days of incumbent v1** ({G.LIVE_NOT_GATED})\n\n"
                                      f"{G.LIVE_NOT_COMPUTED}")


def test_the_report_annualizes_with_the_periods_given_and_keeps_days_without_an_ic() -> None:
    from ml_platform.models.backtest import backtest
    from ml_platform.models.signals import to_signals

    frame = days_frame(dt.date(2021, 3, 1), dt.date(2021, 3, 12))
    frame = frame.with_columns(pl.when(pl.col("date") == dt.date(2021, 3, 3)).then(0.5).otherwise(pl.col(LABEL))
                               .alias(LABEL))  # every label tied on one day: no IC that day
    monthly = G.compute_numeric_report(
        model="m", challenger=linear((1.0, 0.0)), challenger_version="2", incumbent=None, incumbent_version=None,
        training_set=frame, window=WINDOW, keys=KEYS, label_column=LABEL, policy=PromotionPolicy(),
        periods_per_year=12)
    rows = G.validation_rows(frame, WINDOW, KEYS)
    signals = to_signals(linear((1.0, 0.0)).predict(rows), KEYS)
    assert monthly.challenger.report == backtest(signals, rows.select("date", "instrument", LABEL), label_column=LABEL,
                                                 keys=KEYS, periods_per_year=12)
    assert report_of(frame, PromotionPolicy()).challenger.report.sharpe != monthly.challenger.report.sharpe
    daily = monthly.challenger.daily
    assert daily.height == 12 and daily.filter(pl.col("date") == dt.date(2021, 3, 3))["ic"].null_count() == 1
    with refused("report", "the challenger \\(version 2\\) cannot be evaluated"):
        G.compute_numeric_report(
            model="m", challenger=LinearSignalModel(("f1", "f9"), (1.0, 1.0), 0.0, training_window=TRAIN, n_days=70,
                                                    n_rows=700, label_column=LABEL, keys=KEYS),
            challenger_version="2", incumbent=None, incumbent_version=None, training_set=frame, window=WINDOW,
            keys=KEYS, label_column=LABEL, policy=PromotionPolicy())


def test_live_rows_drop_a_stale_label_from_the_model_input_and_treat_text_labels_as_unknown() -> None:
    frame = days_frame(dt.date(2021, 3, 1), dt.date(2021, 3, 4))
    x = frame.with_columns(pl.lit(9.9).alias(LABEL))  # a model input that carries a stale label column
    y = frame.select("date", "instrument", pl.col(LABEL).cast(pl.Utf8))
    y = y.with_columns(pl.when(pl.col("instrument") == "N00").then(pl.lit("n/a")).otherwise(pl.col(LABEL))
                       .alias(LABEL))
    rows = G.live_rows(x, y, after=dt.date(2021, 3, 1), keys=KEYS, label_column=LABEL)
    assert rows.columns == ["date", "instrument", "f1", "f2", LABEL]
    assert rows.height == 3 * (len(NAMES) - 1) and "n/a" not in rows[LABEL].to_list()


def test_live_sections_without_a_comparison_keep_the_incumbent_and_day_and_say_why_exactly() -> None:
    frame = days_frame(dt.date(2021, 3, 1), dt.date(2021, 3, 3))
    x, y = frame.drop(LABEL), frame.select("date", "instrument", LABEL)
    since = dt.date(2021, 3, 1)

    def live(**overrides: object) -> G.LiveSection:
        arguments = {"challenger": linear((1.0, 0.0)), "challenger_version": "2", "incumbent": linear((0.0, 1.0)),
                     "incumbent_version": "1", "since": since, "model_input": x, "labels": y, "keys": KEYS,
                     "label_column": LABEL, **overrides}
        return G.compute_live_section(**arguments)  # type: ignore[arg-type]

    assert live(incumbent=None).reason == ("no live days to compare: first promotion, there is no incumbent "
                                           "champion")
    unknown = live(labels=None)
    assert (unknown.incumbent_version, unknown.since) == ("1", since)
    assert unknown.reason == ("no live days with a known label stored since version 1 was promoted on 2021-03-01: 2 "
                              "model-input day(s) stored, their labels are not known yet")
    one_row = live(model_input=x.filter(pl.col("date") == dt.date(2021, 3, 2)).head(1))
    assert one_row.reason is not None and one_row.reason.startswith("only one live day with a known label")
    broken = live(incumbent=LinearSignalModel(("f1", "f9"), (1.0, 1.0), 0.0, training_window=TRAIN, n_days=70,
                                              n_rows=700, label_column=LABEL, keys=KEYS))
    assert broken.reason is not None and "the incumbent (version 1) cannot score them" in broken.reason
    both = live()
    assert (both.challenger.version, both.incumbent.version) == ("2", "1")  # type: ignore[union-attr]
