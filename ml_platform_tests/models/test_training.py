"""Ridge training: bit-exact determinism, recovery of a planted relation, any keys, every refusal."""

from __future__ import annotations

import datetime as dt
import io
import math

import polars as pl
import pytest

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.keys import FrameKeys
from ml_platform.models import (
    LinearSignalModel,
    ModelInputs,
    RidgeTrainer,
    backtest,
    load_model_bytes,
    split_window,
    to_signals,
)
from ml_platform.window import DataWindow
from ml_platform_tests.models.conftest import FEATURES, INPUTS, KEYS, LABEL, make_weekly_set

RIDGE = RidgeTrainer(alpha=1.0, min_days=20)


def train(data: pl.DataFrame, trainer: RidgeTrainer = RIDGE, inputs: ModelInputs = INPUTS) -> LinearSignalModel:
    return trainer.fit(data, inputs)


def ipc_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    return buffer.getvalue()


def test_two_trainings_give_identical_bytes_and_signals(synthetic_set):
    data = synthetic_set(null_fraction=0.05)
    first, second = train(data), train(data)
    assert first.to_bytes() == second.to_bytes()
    assert first.sha256 == second.sha256
    assert ipc_bytes(to_signals(first.predict(data), KEYS)) == ipc_bytes(to_signals(second.predict(data), KEYS))


def test_row_order_does_not_change_the_bytes(synthetic_set):
    data = synthetic_set(null_fraction=0.05)
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=11)
    assert not shuffled.equals(data)
    reference = train(data)
    assert train(shuffled).to_bytes() == reference.to_bytes()
    from_shuffled, from_sorted = to_signals(reference.predict(shuffled), KEYS), to_signals(reference.predict(data), KEYS)
    assert ipc_bytes(from_shuffled) == ipc_bytes(from_sorted)


def test_planted_linear_relation_is_recovered(synthetic_set):
    model = train(synthetic_set())
    coefficients = dict(zip(model.feature_columns, model.coefficients, strict=True))
    # Features are ~N(0, 1) so their z-scores are close to the raw values: slopes come back near size.
    assert 0.008 < coefficients["mom_5d"] < 0.012
    assert -0.006 < coefficients["mom_21d"] < -0.004
    assert abs(coefficients["noise"]) < 0.001
    assert abs(model.intercept) < 1e-12  # demeaned target, z-scored features: nothing left to explain


def test_model_records_how_it_was_trained(synthetic_set):
    data = synthetic_set(n_days=30, n_names=5)
    trainer = RidgeTrainer(alpha=2.5, min_days=20, winsor_z=4.0)
    model = train(data, trainer, ModelInputs(KEYS, FEATURES, LABEL, seed=42))
    assert model.training_window == DataWindow(dt.date(2021, 1, 4), dt.date(2021, 2, 2))
    assert (model.n_days, model.n_rows) == (29, 29 * 5)  # the last day's label is null
    assert (model.alpha, model.seed, model.winsor_z, model.label_column) == (2.5, 42, 4.0, "fwd_ret_1d")
    assert (model.keys, model.format_id) == (KEYS, trainer.format_id)
    assert LinearSignalModel.from_bytes(model.to_bytes()) == model
    assert trainer.params() == {"alpha": 2.5, "winsor_z": 4.0, "min_days": 20, "min_rows_per_day": 2}


def test_any_keys_train_the_same_model_as_date_and_instrument(synthetic_set):
    """An integer entity and a weekly Date time column: the fit sees the same rows, so the same coefficients."""
    weekly = make_weekly_set(n_weeks=40, n_tickers=8)
    keys = FrameKeys("week", ("ticker",))
    model = train(weekly, inputs=ModelInputs(keys, FEATURES, LABEL))
    daily = train(synthetic_set(n_days=40, n_names=8, seed=3))
    assert model.coefficients == daily.coefficients and model.intercept == daily.intercept  # exact, not approx
    assert model.keys == keys and model.n_days == 39
    assert model.training_window == DataWindow(dt.date(2021, 1, 4), dt.date(2021, 1, 4) + dt.timedelta(weeks=39))
    assert model.sha256 != daily.sha256  # the keys are part of the identity
    scores = model.predict(weekly)
    assert scores.columns == ["week", "ticker", "score"] and scores.schema["ticker"] == pl.Int32
    loaded = load_model_bytes(model.format_id, model.to_bytes())
    assert loaded.predict(weekly)["score"].to_list() == scores["score"].to_list()
    with pytest.raises(DataError, match=r"the training set lacks columns \['date', 'instrument'\]"):
        train(weekly)


def test_a_datetime_time_column_trains_and_its_window_is_in_days(synthetic_set):
    data = synthetic_set(n_days=25).with_columns(
        (pl.col("date").cast(pl.Datetime("us", "America/New_York")) + pl.duration(hours=16)).alias("ts"))
    keys = FrameKeys("ts", ("instrument",))
    model = train(data.drop("date"), inputs=ModelInputs(keys, FEATURES, LABEL))
    assert model.coefficients == train(data).coefficients
    assert model.training_window == DataWindow(dt.date(2021, 1, 4), dt.date(2021, 1, 28))


def test_larger_penalty_shrinks_the_coefficients(synthetic_set):
    data = synthetic_set()
    loose = train(data)
    tight = train(data, RidgeTrainer(min_days=20, alpha=1e5))
    assert abs(tight.coefficients[0]) < abs(loose.coefficients[0]) / 5


def test_null_labels_and_thin_days_are_dropped(synthetic_set):
    data = synthetic_set(n_days=25, n_names=4)
    base = train(data)
    second_day = data["date"].unique().sort()[1]
    # Leave one labelled name on the second day: with min_rows_per_day=2 that day goes.
    thinned = data.with_columns(
        pl.when((pl.col("date") == second_day) & (pl.col("instrument") != "N000"))
        .then(None).otherwise(pl.col("fwd_ret_1d")).alias("fwd_ret_1d")
    )
    model = train(thinned)
    assert (base.n_days, model.n_days) == (24, 23)
    assert model.n_rows == base.n_rows - 4
    strict = RidgeTrainer(min_days=20, min_rows_per_day=5)
    with pytest.raises(DataError, match=r"too few date values to train: found 0 .* need 20"):
        train(data, strict)


def test_training_with_a_seed_is_the_same_fit_whatever_the_seed(synthetic_set):
    data = synthetic_set(n_days=30)
    one = train(data, inputs=ModelInputs(KEYS, FEATURES, LABEL, seed=1))
    two = train(data, inputs=ModelInputs(KEYS, FEATURES, LABEL, seed=2))
    assert one.coefficients == two.coefficients  # the closed-form fit draws no random numbers
    assert one.sha256 != two.sha256  # but the recorded seed is part of the model's identity


def test_out_of_sample_signals_make_money_on_a_planted_relation(synthetic_set):
    data = synthetic_set(n_days=90)
    fit_part, validation = split_window(data, 0.3, keys=KEYS)
    model = train(fit_part)
    report = backtest(to_signals(model.predict(validation), KEYS), validation, label_column=LABEL, keys=KEYS)
    assert report.sharpe > 5.0 and report.ic_mean > 0.5 and report.hit_rate > 0.9


# --- refusals ------------------------------------------------------------------------------------


def test_empty_training_set_is_refused(synthetic_set):
    with pytest.raises(DataError, match="empty"):
        train(synthetic_set().clear())


def test_missing_columns_are_all_listed(synthetic_set):
    data = synthetic_set().drop("mom_21d", "fwd_ret_1d")
    with pytest.raises(DataError, match=r"\['mom_21d', 'fwd_ret_1d'\]"):
        train(data)


@pytest.mark.parametrize("column", ["noise", "fwd_ret_1d"])
def test_all_null_column_is_named(synthetic_set, column):
    data = synthetic_set().with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    with pytest.raises(DataError, match=f"'{column}' holds no usable value"):
        train(data)


@pytest.mark.parametrize("column", ["mom_5d", "fwd_ret_1d"])
def test_nan_only_column_is_named(synthetic_set, column):
    data = synthetic_set().with_columns(pl.lit(math.nan, dtype=pl.Float64).alias(column))
    with pytest.raises(DataError, match=f"'{column}' holds no usable value"):
        train(data)


@pytest.mark.parametrize("bad, counts", [(math.nan, r"3 non-finite values \(3 NaN, 0 inf\)"),
                                         (math.inf, r"3 non-finite values \(0 NaN, 3 inf\)")])
def test_non_finite_values_are_counted(synthetic_set, bad, counts):
    data = synthetic_set().with_row_index("_i").with_columns(
        pl.when(pl.col("_i") < 3).then(bad).otherwise(pl.col("mom_21d")).alias("mom_21d")
    ).drop("_i")
    with pytest.raises(DataError, match=f"'mom_21d' holds {counts}"):
        train(data)


def test_too_few_days_says_found_and_needed(synthetic_set):
    with pytest.raises(DataError, match=r"found 9 with at least 2 labelled rows \(of 10 in the set\), need 60"):
        train(synthetic_set(n_days=10), RidgeTrainer())


def test_repeated_keys_are_refused(synthetic_set):
    data = synthetic_set()
    with pytest.raises(DataError, match="repeats"):
        train(pl.concat([data, data.head(2)]))


def test_wrong_key_and_feature_types_are_refused(synthetic_set):
    data = synthetic_set()
    with pytest.raises(DataError, match="time column 'date' is String, expected Date or Datetime"):
        train(data.with_columns(pl.col("date").cast(pl.String)))
    with pytest.raises(DataError, match="'noise' is String"):
        train(data.with_columns(pl.col("noise").cast(pl.String)))


def test_integer_and_float32_features_are_accepted(synthetic_set):
    data = synthetic_set(n_days=25)
    cast = data.with_columns(pl.col("mom_5d").cast(pl.Float32), (pl.col("noise") * 100).cast(pl.Int64))
    model = train(cast)
    assert model.coefficients[0] > 0


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, -1.0, math.nan, math.inf, "1"])
def test_alpha_must_be_positive_and_finite(alpha):
    with pytest.raises(ConfigurationError, match="alpha"):
        RidgeTrainer(alpha=alpha)


@pytest.mark.parametrize("columns, message", [((), "empty"), ("mom_5d", "sequence"), (("a", "a"), "repeat"),
                                              (("date",), "key column"), (("fwd_ret_1d",), "cannot also be")])
def test_feature_list_is_checked(columns, message):
    with pytest.raises(ConfigurationError, match=message):
        ModelInputs(KEYS, columns, LABEL)


def test_inputs_are_checked():
    with pytest.raises(ConfigurationError, match="keys must be a FrameKeys"):
        ModelInputs(("date", "instrument"), FEATURES, LABEL)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="label_column 'instrument' cannot also be a feature or key"):
        ModelInputs(KEYS, FEATURES, "instrument")
    with pytest.raises(ConfigurationError, match="seed must be an integer"):
        ModelInputs(KEYS, FEATURES, LABEL, seed=1.5)  # type: ignore[arg-type]
    assert ModelInputs(KEYS, list(FEATURES), LABEL).feature_columns == FEATURES  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="inputs must be a ModelInputs"):
        RIDGE.fit(make_weekly_set(), {"keys": KEYS})  # type: ignore[arg-type]


@pytest.mark.parametrize("field, value", [("min_days", 0), ("min_rows_per_day", 1), ("winsor_z", 0.0),
                                          ("min_days", True), ("winsor_z", "5")])
def test_numeric_settings_are_checked(field, value):
    with pytest.raises(ConfigurationError, match=field):
        RidgeTrainer(**{field: value})


# --- split_window --------------------------------------------------------------------------------


def test_split_is_by_date_without_overlap(synthetic_set):
    data = synthetic_set(n_days=10, n_names=3)
    fit_part, validation = split_window(data.reverse(), 0.3, keys=KEYS)
    dates = data["date"].unique().sort().to_list()
    assert fit_part["date"].unique().sort().to_list() == dates[:7]
    assert validation["date"].unique().sort().to_list() == dates[7:]
    assert fit_part.height + validation.height == data.height
    assert fit_part.equals(data.filter(pl.col("date") <= dates[6]))  # canonical order restored


def test_split_keeps_at_least_one_date_on_each_side_and_honours_the_embargo(synthetic_set):
    data = synthetic_set(n_days=5, n_names=2)
    dates = data["date"].unique().sort().to_list()
    assert split_window(data, 0.01, keys=KEYS)[1]["date"].unique().to_list() == dates[-1:]
    assert split_window(data, 0.99, keys=KEYS)[0]["date"].unique().to_list() == dates[:1]
    fit_part, validation = split_window(data, 0.4, keys=KEYS, embargo_days=1)
    assert fit_part["date"].unique().sort().to_list() == dates[:2]
    assert validation["date"].unique().sort().to_list() == dates[3:]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5, math.nan])
def test_validation_fraction_must_lie_strictly_inside_zero_one(synthetic_set, fraction):
    with pytest.raises(ConfigurationError, match="validation_fraction"):
        split_window(synthetic_set(n_days=5), fraction, keys=KEYS)


def test_split_refuses_too_few_dates(synthetic_set):
    with pytest.raises(DataError, match="cannot split 1 date values"):
        split_window(synthetic_set(n_days=1), 0.5, keys=KEYS)
    with pytest.raises(DataError, match="embargo of 3; need at least 5"):
        split_window(synthetic_set(n_days=4), 0.5, keys=KEYS, embargo_days=3)


def test_split_on_other_keys():
    weekly = make_weekly_set(n_weeks=10, n_tickers=3)
    fit_part, validation = split_window(weekly, 0.2, keys=FrameKeys("week", ("ticker",)), embargo_days=1)
    weeks = weekly["week"].unique().sort().to_list()
    assert fit_part["week"].unique().sort().to_list() == weeks[:7]
    assert validation["week"].unique().sort().to_list() == weeks[8:]
    assert validation.select("week", "ticker").rows() == sorted(validation.select("week", "ticker").rows())
