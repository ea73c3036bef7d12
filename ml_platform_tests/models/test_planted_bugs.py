"""Tests that catch bugs planted in the models which the rest of the suite let through (issue 8).

* ``predict`` scores are compared bit for bit (``float.hex``), never approximately: a reordered sum,
  a BLAS dot product or a float32 round trip changes the last bits and the signals with them;
* the ``min_rows_per_day`` boundary: a time value with exactly ``min_rows_per_day`` labelled rows is
  kept, one with one fewer is dropped, for every trainer.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge

from ml_platform.models import LinearSignalModel, RidgeTrainer, SklearnTrainer
from ml_platform.models.frames import canonical_sort, date_starts, numeric_matrix, standardize_by_date
from ml_platform.models.training import prepare_training
from ml_platform_tests.models.conftest import FEATURES, INPUTS, KEYS, LABEL, make_set


def bits(values: list[float] | np.ndarray) -> list[str]:
    """Exact spellings of floats: equal lists mean equal bits (``-0.0`` and ``0.0`` differ)."""
    return [float(v).hex() for v in values]


# --- predict, bit for bit ------------------------------------------------------------------------


def test_predict_of_a_simple_cross_section_is_exact() -> None:
    model = LinearSignalModel(("a", "b"), (2.0, -1.0), 0.5)
    frame = pl.DataFrame(
        {"date": [dt.date(2022, 3, 1)] * 3, "instrument": ["N0", "N1", "N2"], "a": [1.0, 2.0, 3.0],
         "b": [5.0, None, 5.0]},
        schema_overrides={"date": pl.Date},
    )
    # a: mean 2, deviations -1, 0, 1, population std sqrt(2/3); b is constant, so neutral (0)
    z = 1.0 / math.sqrt(2.0 / 3.0)
    expected = [0.5 - 2.0 * z, 0.5, 0.5 + 2.0 * z]
    assert bits(model.predict(frame.reverse())["score"].to_list()) == bits(expected)


PREDICT_FRAME = {
    "date": [dt.date(2022, 3, 1)] * 5 + [dt.date(2022, 3, 2)] * 5,
    "instrument": ["N0", "N1", "N2", "N3", "N4"] * 2,
    "a": [0.1, 0.2, 0.3, None, 10.0, 1.0, 1.0, 1.0, 1.0, 1.0],  # an outlier to clip; a constant day
    "b": [1e-3, -2.5, 3.25, 7.0, 0.3, -1.0, None, 2.0, 1e10, 0.7],
    "c": [1.0 / 3, 2.0 / 3, None, None, 5.5, 0.1, 0.2, 0.3, 0.4, 0.5],
}
PREDICT_MODEL = LinearSignalModel(("a", "b", "c"), (0.1, -0.3, 0.7), 0.1, winsor_z=1.5)
#: The scores of PREDICT_MODEL on PREDICT_FRAME, in (date, instrument) order, as produced when pinned.
EXPECTED_SCORES = [
    "-0x1.6bd0169fb6e42p-2",
    "-0x1.813e479945228p-6",
    "-0x1.b4746628c51dap-4",
    "-0x1.6666666666666p-2",
    "0x1.5bee094b9debep+0",
    "-0x1.6ef91fa918c9ap-1",
    "-0x1.94744291886e8p-2",
    "0x1.17c3129a19f8ep-2",
    "0x1.28e8852310dddp-3",
    "0x1.435e1922e0f05p+0",
]


def test_predict_known_answer_is_bit_exact() -> None:
    frame = pl.DataFrame(PREDICT_FRAME, schema_overrides={"date": pl.Date})
    scores = PREDICT_MODEL.predict(frame.sample(fraction=1.0, shuffle=True, seed=1))
    assert scores["instrument"].to_list() == PREDICT_FRAME["instrument"]
    assert bits(scores["score"].to_list()) == EXPECTED_SCORES


def test_predict_accumulates_feature_by_feature_then_adds_the_intercept() -> None:
    """The documented order: ``((0 + z_0 c_0) + z_1 c_1) + ... + intercept``, element-wise, in float64."""
    frame = canonical_sort(pl.DataFrame(PREDICT_FRAME, schema_overrides={"date": pl.Date}), KEYS)
    columns = PREDICT_MODEL.feature_columns
    z = standardize_by_date(numeric_matrix(frame, columns, what="test"), date_starts(frame["date"]), 1.5)
    expected = []
    for row in z.tolist():
        score = 0.0
        for value, coefficient in zip(row, PREDICT_MODEL.coefficients, strict=True):
            score = score + value * coefficient
        expected.append(score + PREDICT_MODEL.intercept)
    assert bits(PREDICT_MODEL.predict(frame)["score"].to_list()) == bits(expected)


@pytest.mark.parametrize(
    ("estimator", "standardize"),
    [(Ridge(alpha=3.0), True), (HistGradientBoostingRegressor(max_iter=15), False)],
    ids=["ridge-standardized", "hgb-raw"],
)
def test_sklearn_predict_is_the_estimators_prediction_bit_for_bit(estimator: object, standardize: bool) -> None:
    data = make_set(n_days=40, n_names=10, null_fraction=0.05)
    model = SklearnTrainer(estimator, min_days=20, standardize=standardize, winsor_z=1.5).fit(data, INPUTS)
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=9)
    ordered = canonical_sort(data, KEYS)
    matrix = numeric_matrix(ordered, FEATURES, what="test")
    design = standardize_by_date(matrix, date_starts(ordered["date"]), model.winsor_z) if standardize else matrix
    expected = np.asarray(model.estimator.predict(design), dtype=np.float64)
    scores = model.predict(shuffled)
    assert scores.select("date", "instrument").rows() == ordered.select("date", "instrument").rows()
    assert bits(scores["score"].to_numpy()) == bits(expected)


def test_ridge_predict_on_its_training_set_is_bit_exact_against_its_own_coefficients() -> None:
    data = make_set(n_days=30, n_names=6, null_fraction=0.1)
    model = RidgeTrainer(alpha=2.0, min_days=20).fit(data, INPUTS)
    ordered = canonical_sort(data, KEYS)
    z = standardize_by_date(numeric_matrix(ordered, FEATURES, what="test"), date_starts(ordered["date"]),
                            model.winsor_z)
    expected = np.zeros(ordered.height)
    for j, coefficient in enumerate(model.coefficients):
        expected = expected + z[:, j] * coefficient
    expected = expected + model.intercept
    assert bits(model.predict(data)["score"].to_numpy()) == bits(expected)


# --- the min_rows_per_day boundary ---------------------------------------------------------------


def thinned(data: pl.DataFrame, day_index: int, labelled: int) -> pl.DataFrame:
    """``data`` with only the first ``labelled`` names of one day keeping their label."""
    day = data["date"].unique().sort()[day_index]
    keep = [f"N{k:03d}" for k in range(labelled)]
    return data.with_columns(
        pl.when((pl.col("date") == day) & ~pl.col("instrument").is_in(keep))
        .then(None)
        .otherwise(pl.col(LABEL))
        .alias(LABEL)
    )


@pytest.mark.parametrize("min_rows", [2, 3, 4])
def test_a_day_with_exactly_min_rows_per_day_is_kept_and_one_fewer_is_dropped(min_rows: int) -> None:
    data = make_set(n_days=25, n_names=4)  # 24 labelled days of 4 rows (the last day has no label)
    exact = thinned(data, 1, min_rows)
    short = thinned(exact, 2, min_rows - 1)
    kept = prepare_training(exact, INPUTS, min_days=20, min_rows_per_day=min_rows)
    assert (kept.n_days, kept.n_rows) == (24, 24 * 4 - (4 - min_rows))
    dropped = prepare_training(short, INPUTS, min_days=20, min_rows_per_day=min_rows)
    assert (dropped.n_days, dropped.n_rows) == (23, 24 * 4 - (4 - min_rows) - 4)
    assert int(kept.starts[1]) == 4 and int(np.diff(kept.starts)[1]) == min_rows  # day 2 keeps its rows


@pytest.mark.parametrize(
    "trainer",
    [RidgeTrainer(alpha=1.0, min_days=20, min_rows_per_day=4),
     SklearnTrainer(Ridge(alpha=1.0), min_days=20, min_rows_per_day=4)],
    ids=["ridge", "sklearn"],
)
def test_every_trainer_keeps_days_at_the_boundary(trainer: object) -> None:
    data = make_set(n_days=25, n_names=4)  # every labelled day has exactly 4 rows
    model = trainer.fit(data, INPUTS)  # type: ignore[attr-defined]
    assert (model.n_days, model.n_rows) == (24, 96)
    thin = trainer.fit(thinned(data, 3, 3), INPUTS)  # type: ignore[attr-defined]
    assert (thin.n_days, thin.n_rows) == (23, 92)
