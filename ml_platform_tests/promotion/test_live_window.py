"""The report's second comparison: challenger vs incumbent on the live days since the incumbent's promotion.

Unit tests of the pure computation (gates.compute_live_section, the report's sections) and one run of the
promote_model job where model-input and label partitions are stored after the incumbent's promotion.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from ml_platform import platform_resources
from ml_platform.errors import GateFailed, GraphError
from ml_platform.models import LinearSignalModel
from ml_platform.models.backtest import backtest
from ml_platform.models.signals import to_signals
from ml_platform.promotion import gates
from ml_platform.promotion.job import build_promotion_job, promotion_resources
from ml_platform.promotion.policy import PromotionPolicy
from ml_platform.promotion.report import render_report
from ml_platform_tests.promotion.conftest import (
    FEATURES,
    KEYS,
    LABEL,
    MODEL,
    TRAIN,
    VALID,
    Project,
    make_project,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SINCE = dt.date(2021, 5, 10)  # the day the incumbent became champion
NAMES = [f"N{k:02d}" for k in range(8)]


def model(coefs: tuple[float, float]) -> LinearSignalModel:
    return LinearSignalModel(FEATURES, coefs, 0.0, training_window=TRAIN, n_days=70, n_rows=700, label_column=LABEL,
                             keys=KEYS)


CHALLENGER, INCUMBENT = model((1.0, -0.4)), model((0.01, 0.0))


def frames(days: list[dt.date], *, seed: int = 3) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The model-input frame [date, instrument, f1, f2] and label frame [date, instrument, fwd] of ``days``."""
    rng = np.random.default_rng(seed)
    n = len(days) * len(NAMES)
    f1, f2 = rng.normal(size=n), rng.normal(size=n)
    base = {"date": [d for d in days for _ in NAMES], "instrument": NAMES * len(days)}
    x = pl.DataFrame({**base, "f1": f1, "f2": f2}, schema_overrides={"date": pl.Date})
    y = pl.DataFrame({**base, LABEL: 0.01 * f1 - 0.004 * f2 + 0.004 * rng.normal(size=n)},
                     schema_overrides={"date": pl.Date})
    return x, y


def span(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def section(x: pl.DataFrame | None, y: pl.DataFrame | None, *, incumbent: LinearSignalModel | None = INCUMBENT,
            since: dt.date | None = SINCE) -> gates.LiveSection:
    return gates.compute_live_section(
        challenger=CHALLENGER, challenger_version="2", incumbent=incumbent,
        incumbent_version=None if incumbent is None else "1", since=since, model_input=x, labels=y, keys=KEYS,
        label_column=LABEL)


def validation_report(live: gates.LiveSection | None) -> gates.NumericReport:
    x, y = frames(span(VALID.start, VALID.end), seed=5)
    report = gates.compute_numeric_report(
        model=MODEL, challenger=CHALLENGER, challenger_version="2", incumbent=INCUMBENT, incumbent_version="1",
        training_set=x.join(y, on=list(KEYS.columns)), window=VALID, keys=KEYS, label_column=LABEL,
        policy=PromotionPolicy())
    return report if live is None else report.with_live(live)


# -- the pure computation ------------------------------------------------------------------------


def test_live_section_compares_both_models_on_the_days_strictly_after_the_promotion_day() -> None:
    x, y = frames(span(SINCE - dt.timedelta(days=4), SINCE + dt.timedelta(days=6)))
    live = section(x, y)
    assert live.available and live.reason is None
    assert live.window is not None and (live.window.start, live.window.end) == (SINCE + dt.timedelta(days=1),
                                                                                SINCE + dt.timedelta(days=6))
    assert (live.days, live.rows) == (6, 6 * len(NAMES))  # the promotion day and those before it are left out
    assert live.incumbent_version == "1" and live.since == SINCE
    # the same metrics as the validation window's: a backtest of each model on exactly those rows
    rows = x.join(y, on=list(KEYS.columns)).filter(pl.col("date") > SINCE)
    for series, m in ((live.challenger, CHALLENGER), (live.incumbent, INCUMBENT)):
        assert series is not None
        assert series.report == backtest(to_signals(m.predict(rows), KEYS), rows, label_column=LABEL, keys=KEYS)
    assert set(live.differences) == set(gates.COMPARED_METRICS)
    assert live.differences["sharpe"] == pytest.approx(live.challenger.report.sharpe - live.incumbent.report.sharpe)


def test_rows_with_a_null_label_are_left_out_and_the_window_ends_at_the_newest_known_label() -> None:
    x, y = frames(span(SINCE + dt.timedelta(days=1), SINCE + dt.timedelta(days=8)))
    last_known = SINCE + dt.timedelta(days=6)
    y = y.with_columns(
        pl.when((pl.col("date") > last_known) | ((pl.col("date") == SINCE + dt.timedelta(days=2))
                                                 & pl.col("instrument").is_in(["N00", "N01", "N02"])))
        .then(None).otherwise(pl.col(LABEL)).alias(LABEL))
    y = y.filter(~((pl.col("date") == SINCE + dt.timedelta(days=3)) & (pl.col("instrument") == "N07")))  # absent
    live = section(x, y)
    assert live.available and live.window is not None and live.window.end == last_known
    assert live.days == 6 and live.rows == 6 * len(NAMES) - 3 - 1
    rows = gates.live_rows(x, y, after=SINCE, keys=KEYS, label_column=LABEL)
    assert rows[LABEL].null_count() == 0 and rows.height == live.rows


def test_no_incumbent_says_first_promotion() -> None:
    x, y = frames(span(SINCE, SINCE + dt.timedelta(days=5)))
    live = section(x, y, incumbent=None, since=None)
    assert not live.available and live.days == 0 and "first promotion" in str(live.reason)


@pytest.mark.parametrize("stored", ["nothing", "only_before", "empty"])
def test_nothing_stored_after_the_promotion_says_so(stored: str) -> None:
    x, y = frames(span(SINCE - dt.timedelta(days=5), SINCE))
    if stored == "nothing":
        x = y = None
    elif stored == "empty":
        x, y = x.head(0), y.head(0)
    live = section(x, y)
    assert not live.available and live.window is None and live.challenger is None
    assert live.reason == f"no live days stored since version 1 was promoted on {SINCE.isoformat()}"


def test_model_input_without_known_labels_says_the_labels_are_not_known_yet() -> None:
    x, y = frames(span(SINCE + dt.timedelta(days=1), SINCE + dt.timedelta(days=3)))
    for labels in (None, y.with_columns(pl.lit(None, pl.Float64).alias(LABEL))):
        live = section(x, labels)
        assert not live.available
        assert "no live days with a known label stored since version 1 was promoted on 2021-05-10" in str(live.reason)
        assert "3 model-input day(s)" in str(live.reason)


def test_one_live_day_is_too_few_and_says_so() -> None:
    x, y = frames(span(SINCE, SINCE + dt.timedelta(days=1)))
    live = section(x, y)
    assert not live.available and "only one live day" in str(live.reason) and "2021-05-11" in str(live.reason)


def test_a_model_that_cannot_score_the_live_rows_is_named_not_hidden() -> None:
    x, y = frames(span(SINCE + dt.timedelta(days=1), SINCE + dt.timedelta(days=4)))
    live = section(x.drop("f2"), y)
    assert not live.available and "cannot score" in str(live.reason) and "challenger (version 2)" in str(live.reason)


def test_a_label_frame_without_the_label_column_fails_the_report_gate() -> None:
    x, y = frames(span(SINCE + dt.timedelta(days=1), SINCE + dt.timedelta(days=4)))
    with pytest.raises(GateFailed, match="promotion gate 'report'.*lack the column"):
        section(x, y.rename({LABEL: "other"}))


# -- the report's two sections --------------------------------------------------------------------


def test_report_shows_both_sections_labelled_and_thresholds_on_the_validation_window() -> None:
    x, y = frames(span(SINCE + dt.timedelta(days=1), SINCE + dt.timedelta(days=7)))
    report = validation_report(section(x, y))
    data = report.to_dict()
    assert data["thresholds_apply_to"] == f"validation window {VALID}"
    live = data["live"]
    assert live["available"] and live["days"] == 7 and live["incumbent_champion_since"] == "2021-05-10"
    assert live["thresholds_apply"] is False and set(live["differences"]) == set(gates.COMPARED_METRICS)
    assert live["challenger"]["window"] == "2021-05-11..2021-05-17" != data["challenger"]["window"]
    md = report.markdown()
    assert f"**Validation window {VALID}**" in md and "thresholds apply here" in md
    assert "**Live days since incumbent v1 became champion on 2021-05-10**" in md
    assert "thresholds apply to the validation window only" in md and md.count("| sharpe |") == 2
    rendered = render_report(report, created_at="20210520T000000000000Z")
    page = rendered.html_bytes.decode()
    assert page.count("<table") == 2 and "Validation window" in page and "Live days since incumbent v1" in page
    assert json.loads(rendered.json_bytes)["live"]["rows"] == 7 * len(NAMES)
    assert rendered.png_bytes[:4] == b"\x89PNG"
    without = render_report(validation_report(section(None, None)), created_at="20210520T000000000000Z")
    assert len(rendered.png_bytes) != len(without.png_bytes)  # the live cumulative PnL panel


def test_report_without_live_days_says_why_in_every_format() -> None:
    reason = "no live days stored since version 1 was promoted on 2021-05-10"
    report = validation_report(section(None, None))
    assert report.to_dict()["live"] == {**report.to_dict()["live"], "available": False, "reason": reason, "days": 0}
    assert reason in report.markdown()
    rendered = render_report(report, created_at="20210520T000000000000Z")
    assert reason in rendered.html_bytes.decode() and json.loads(rendered.json_bytes)["live"]["reason"] == reason
    bare = validation_report(None)  # a report built without a live section still names its absence
    assert bare.to_dict()["live"]["reason"] == gates.LIVE_NOT_COMPUTED and gates.LIVE_NOT_COMPUTED in bare.markdown()


def test_build_promotion_job_refuses_an_unknown_label_node(tmp_path: Path, dagster_instance: dg.DagsterInstance) -> None:
    project = make_project(tmp_path, dagster_instance)
    with pytest.raises(GraphError, match="label='nope' is not a node"):
        build_promotion_job(project.graph, model_input="model_inputs", label="nope", label_column=LABEL,
                            training_node="train_rows", model_name=MODEL)
    with pytest.raises(GraphError, match="must be a partitioned node"):
        build_promotion_job(project.graph, model_input="model_inputs", label="train_rows", label_column=LABEL,
                            training_node="train_rows", model_name=MODEL)


# -- through the promote_model job ------------------------------------------------------------------


@pytest.fixture
def live_project(tmp_path: Path, dagster_instance: dg.DagsterInstance, mlflow_template: Path) -> Project:
    """The promotion tests' project, its job built with the label node (the live comparison on)."""
    project = make_project(tmp_path, dagster_instance, mlflow_template=mlflow_template)
    job = build_promotion_job(project.graph, model_input="model_inputs", label="next_ret", label_column=LABEL,
                              training_node="train_rows", model_name=MODEL)
    project.defs = dg.Definitions(jobs=[job], resources={**platform_resources(project.settings),
                                                         **promotion_resources()})
    return project


def _report_json(project: Project) -> dict:
    ref = project.head().report_ref
    run_id, _, path = ref[len("runs:/"):].partition("/")
    root = project.registry.client.get_run(run_id).info.artifact_uri
    return json.loads((Path(root[len("file://"):]) / path).read_text())


def test_the_promote_job_reports_the_live_days_stored_since_the_incumbents_promotion(live_project: Project) -> None:
    project = live_project
    v1, v2 = project.register((0.01, 0.0)), project.register()
    first = project.run(v1)
    assert first.success
    assert _report_json(project)["live"]["reason"].startswith("no live days to compare: first promotion")
    since = project.head().recorded_at.astimezone(dt.UTC).date()
    # the promotion day and two before it (left out), six after it of which the last two have no label yet
    x, y = frames(span(since - dt.timedelta(days=2), since + dt.timedelta(days=6)), seed=9)
    y = y.with_columns(pl.when(pl.col("date") > since + dt.timedelta(days=4)).then(None)
                       .otherwise(pl.col(LABEL)).alias(LABEL))
    for day in span(since - dt.timedelta(days=2), since + dt.timedelta(days=6)):
        partition = day.isoformat()
        project.store.write("model_inputs", partition, x.filter(pl.col("date") == day))
        if day <= since + dt.timedelta(days=5):  # the newest label partition is not stored yet
            project.store.write("next_ret", partition, y.filter(pl.col("date") == day))
    result = project.run(v2, tail="Second promotion, now with the live days in the report.")
    assert result.success
    data = _report_json(project)
    live = data["live"]
    assert live["available"] and live["days"] == 4 and live["rows"] == 4 * len(NAMES)
    assert live["incumbent_version"] == v1 and live["incumbent_champion_since"] == since.isoformat()
    assert live["window"] == f"{since + dt.timedelta(days=1)}..{since + dt.timedelta(days=4)}"
    assert live["challenger"]["n_days"] == live["incumbent"]["n_days"] == 4
    assert data["window"] == str(VALID) and data["thresholds_apply_to"] == f"validation window {VALID}"
    report = result.output_for_node("promotion_report")
    assert "**Live days since incumbent v1 became champion on" in report.report_markdown
    assert report.gates[0].facts["live_days"] == 4


def test_the_promote_job_says_no_live_days_were_stored_since_the_promotion(live_project: Project) -> None:
    project = live_project
    v1, v2 = project.register((0.01, 0.0)), project.register()
    assert project.run(v1).success
    since = project.head().recorded_at.astimezone(dt.UTC).date()
    x, _ = frames([since], seed=9)  # only the promotion day itself: no live day
    project.store.write("model_inputs", since.isoformat(), x)
    assert project.run(v2, tail="Second promotion, nothing stored since the first.").success
    live = _report_json(project)["live"]
    assert not live["available"]
    assert live["reason"] == f"no live days stored since version {v1} was promoted on {since.isoformat()}"
