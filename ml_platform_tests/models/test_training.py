"""Training: bit-exact determinism, recovery of a planted relation, every refusal."""

from __future__ import annotations

import datetime as dt
import io
import math

import polars as pl
import pytest

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.models import LinearSignalModel, TrainingConfig, backtest, split_window, to_signals, train
from ml_platform.window import DataWindow

FEATURES = ("mom_5d", "mom_21d", "noise")
CONFIG = TrainingConfig(feature_columns=FEATURES, min_days=20)


def ipc_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer, compression="uncompressed")
    return buffer.getvalue()


def test_two_trainings_give_identical_bytes_and_signals(synthetic_set):
    data = synthetic_set(null_fraction=0.05)
    first, second = train(data, CONFIG), train(data, CONFIG)
    assert first.to_bytes() == second.to_bytes()
    assert first.sha256 == second.sha256
    assert ipc_bytes(to_signals(first.predict(data))) == ipc_bytes(to_signals(second.predict(data)))


def test_row_order_does_not_change_the_bytes(synthetic_set):
    data = synthetic_set(null_fraction=0.05)
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=11)
    assert not shuffled.equals(data)
    reference = train(data, CONFIG)
    assert train(shuffled, CONFIG).to_bytes() == reference.to_bytes()
    from_shuffled, from_sorted = to_signals(reference.predict(shuffled)), to_signals(reference.predict(data))
    assert ipc_bytes(from_shuffled) == ipc_bytes(from_sorted)


def test_planted_linear_relation_is_recovered(synthetic_set):
    model = train(synthetic_set(), CONFIG)
    coefficients = dict(zip(model.feature_columns, model.coefficients, strict=True))
    # Features are ~N(0, 1) so their z-scores are close to the raw values: slopes come back near size.
    assert 0.008 < coefficients["mom_5d"] < 0.012
    assert -0.006 < coefficients["mom_21d"] < -0.004
    assert abs(coefficients["noise"]) < 0.001
    assert abs(model.intercept) < 1e-12  # demeaned target, z-scored features: nothing left to explain


def test_model_records_how_it_was_trained(synthetic_set):
    data = synthetic_set(n_days=30, n_names=5)
    config = TrainingConfig(feature_columns=FEATURES, alpha=2.5, seed=42, min_days=20, winsor_z=4.0)
    model = train(data, config)
    assert model.training_window == DataWindow(dt.date(2021, 1, 4), dt.date(2021, 2, 2))
    assert (model.n_days, model.n_rows) == (29, 29 * 5)  # the last day's label is null
    assert (model.alpha, model.seed, model.winsor_z, model.label_column) == (2.5, 42, 4.0, "fwd_ret_1d")
    assert LinearSignalModel.from_bytes(model.to_bytes()) == model


def test_larger_penalty_shrinks_the_coefficients(synthetic_set):
    data = synthetic_set()
    loose = train(data, CONFIG)
    tight = train(data, TrainingConfig(feature_columns=FEATURES, min_days=20, alpha=1e5))
    assert abs(tight.coefficients[0]) < abs(loose.coefficients[0]) / 5


def test_null_labels_and_thin_days_are_dropped(synthetic_set):
    data = synthetic_set(n_days=25, n_names=4)
    base = train(data, TrainingConfig(feature_columns=FEATURES, min_days=20))
    second_day = data["date"].unique().sort()[1]
    # Leave one labelled name on the second day: with min_rows_per_day=2 that day goes.
    thinned = data.with_columns(
        pl.when((pl.col("date") == second_day) & (pl.col("instrument") != "N000"))
        .then(None).otherwise(pl.col("fwd_ret_1d")).alias("fwd_ret_1d")
    )
    model = train(thinned, TrainingConfig(feature_columns=FEATURES, min_days=20))
    assert (base.n_days, model.n_days) == (24, 23)
    assert model.n_rows == base.n_rows - 4
    strict = TrainingConfig(feature_columns=FEATURES, min_days=20, min_rows_per_day=5)
    with pytest.raises(DataError, match=r"found 0 dates .* need 20"):
        train(data, strict)


def test_training_with_a_seed_is_the_same_fit_whatever_the_seed(synthetic_set):
    data = synthetic_set(n_days=30)
    one = train(data, TrainingConfig(feature_columns=FEATURES, min_days=20, seed=1))
    two = train(data, TrainingConfig(feature_columns=FEATURES, min_days=20, seed=2))
    assert one.coefficients == two.coefficients  # the closed-form fit draws no random numbers
    assert one.sha256 != two.sha256  # but the recorded seed is part of the model's identity


def test_out_of_sample_signals_make_money_on_a_planted_relation(synthetic_set):
    data = synthetic_set(n_days=90)
    fit_part, validation = split_window(data, 0.3)
    model = train(fit_part, CONFIG)
    report = backtest(to_signals(model.predict(validation)), validation)
    assert report.sharpe > 5.0 and report.ic_mean > 0.5 and report.hit_rate > 0.9


# --- refusals ------------------------------------------------------------------------------------


def test_empty_training_set_is_refused(synthetic_set):
    with pytest.raises(DataError, match="empty"):
        train(synthetic_set().clear(), CONFIG)


def test_missing_columns_are_all_listed(synthetic_set):
    data = synthetic_set().drop("mom_21d", "fwd_ret_1d")
    with pytest.raises(DataError, match=r"\['mom_21d', 'fwd_ret_1d'\]"):
        train(data, CONFIG)


@pytest.mark.parametrize("column", ["noise", "fwd_ret_1d"])
def test_all_null_column_is_named(synthetic_set, column):
    data = synthetic_set().with_columns(pl.lit(None, dtype=pl.Float64).alias(column))
    with pytest.raises(DataError, match=f"'{column}' holds no usable value"):
        train(data, CONFIG)


@pytest.mark.parametrize("column", ["mom_5d", "fwd_ret_1d"])
def test_nan_only_column_is_named(synthetic_set, column):
    data = synthetic_set().with_columns(pl.lit(math.nan, dtype=pl.Float64).alias(column))
    with pytest.raises(DataError, match=f"'{column}' holds no usable value"):
        train(data, CONFIG)


@pytest.mark.parametrize("bad, counts", [(math.nan, r"3 non-finite values \(3 NaN, 0 inf\)"),
                                         (math.inf, r"3 non-finite values \(0 NaN, 3 inf\)")])
def test_non_finite_values_are_counted(synthetic_set, bad, counts):
    data = synthetic_set().with_row_index("_i").with_columns(
        pl.when(pl.col("_i") < 3).then(bad).otherwise(pl.col("mom_21d")).alias("mom_21d")
    ).drop("_i")
    with pytest.raises(DataError, match=f"'mom_21d' holds {counts}"):
        train(data, CONFIG)


def test_too_few_days_says_found_and_needed(synthetic_set):
    with pytest.raises(DataError, match=r"found 9 dates.*need 60"):
        train(synthetic_set(n_days=10), TrainingConfig(feature_columns=FEATURES))


def test_repeated_keys_are_refused(synthetic_set):
    data = synthetic_set()
    with pytest.raises(DataError, match="repeats"):
        train(pl.concat([data, data.head(2)]), CONFIG)


def test_wrong_key_and_feature_types_are_refused(synthetic_set):
    data = synthetic_set()
    with pytest.raises(DataError, match="'date' is String"):
        train(data.with_columns(pl.col("date").cast(pl.String)), CONFIG)
    with pytest.raises(DataError, match="'noise' is String"):
        train(data.with_columns(pl.col("noise").cast(pl.String)), CONFIG)


def test_integer_and_float32_features_are_accepted(synthetic_set):
    data = synthetic_set(n_days=25)
    cast = data.with_columns(pl.col("mom_5d").cast(pl.Float32), (pl.col("noise") * 100).cast(pl.Int64))
    model = train(cast, TrainingConfig(feature_columns=FEATURES, min_days=20))
    assert model.coefficients[0] > 0


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, -1.0, math.nan, math.inf])
def test_alpha_must_be_positive_and_finite(alpha):
    with pytest.raises(ConfigurationError, match="alpha"):
        TrainingConfig(feature_columns=FEATURES, alpha=alpha)


@pytest.mark.parametrize("columns, message", [((), "empty"), ("mom_5d", "sequence"), (("a", "a"), "repeat"),
                                              (("date",), "key column"), (("fwd_ret_1d",), "cannot also be")])
def test_feature_list_is_checked(columns, message):
    with pytest.raises(ConfigurationError, match=message):
        TrainingConfig(feature_columns=columns)


@pytest.mark.parametrize("field, value", [("min_days", 0), ("min_rows_per_day", 1), ("seed", 1.5),
                                          ("winsor_z", 0.0), ("min_days", True)])
def test_numeric_settings_are_checked(field, value):
    with pytest.raises(ConfigurationError, match=field):
        TrainingConfig(feature_columns=FEATURES, **{field: value})


def test_config_round_trips_through_a_dict():
    config = TrainingConfig(feature_columns=FEATURES, alpha=3.0, seed=9)
    assert TrainingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigurationError, match="unknown keys"):
        TrainingConfig.from_dict({**config.to_dict(), "learning_rate": 0.1})


# --- split_window --------------------------------------------------------------------------------


def test_split_is_by_date_without_overlap(synthetic_set):
    data = synthetic_set(n_days=10, n_names=3)
    fit_part, validation = split_window(data.reverse(), 0.3)
    dates = data["date"].unique().sort().to_list()
    assert fit_part["date"].unique().sort().to_list() == dates[:7]
    assert validation["date"].unique().sort().to_list() == dates[7:]
    assert fit_part.height + validation.height == data.height
    assert fit_part.equals(data.filter(pl.col("date") <= dates[6]))  # canonical order restored


def test_split_keeps_at_least_one_date_on_each_side_and_honours_the_embargo(synthetic_set):
    data = synthetic_set(n_days=5, n_names=2)
    dates = data["date"].unique().sort().to_list()
    assert split_window(data, 0.01)[1]["date"].unique().to_list() == dates[-1:]
    assert split_window(data, 0.99)[0]["date"].unique().to_list() == dates[:1]
    fit_part, validation = split_window(data, 0.4, embargo_days=1)
    assert fit_part["date"].unique().sort().to_list() == dates[:2]
    assert validation["date"].unique().sort().to_list() == dates[3:]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5, math.nan])
def test_validation_fraction_must_lie_strictly_inside_zero_one(synthetic_set, fraction):
    with pytest.raises(ConfigurationError, match="validation_fraction"):
        split_window(synthetic_set(n_days=5), fraction)


def test_split_refuses_too_few_dates(synthetic_set):
    with pytest.raises(DataError, match="cannot split 1 dates"):
        split_window(synthetic_set(n_days=1), 0.5)
    with pytest.raises(DataError, match="need at least 5 dates"):
        split_window(synthetic_set(n_days=4), 0.5, embargo_days=3)
