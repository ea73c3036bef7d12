"""The ridge model value object: preprocessing, prediction on any keys, canonical bytes and their refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.keys import FrameKeys
from ml_platform.models import RIDGE_FORMAT, LinearSignalModel, load_model_bytes
from ml_platform.models.frames import date_starts, standardize_by_date
from ml_platform.window import DataWindow

WEEKLY = FrameKeys("week", ("exchange", "ticker"))

DAY = dt.date(2022, 3, 1)


def cross_section(values: dict[str, list[float | None]], day: dt.date = DAY) -> pl.DataFrame:
    n = len(next(iter(values.values())))
    return pl.DataFrame(
        {"date": [day] * n, "instrument": [f"N{i}" for i in range(n)], **values},
        schema_overrides={"date": pl.Date, **{k: pl.Float64 for k in values}},
    )


def zscores(column: list[float | None], winsor_z: float = 5.0) -> list[float]:
    values = np.array([[math.nan if v is None else v] for v in column], dtype=np.float64)
    return standardize_by_date(values, np.array([0], dtype=np.intp), winsor_z)[:, 0].tolist()


# --- preprocessing -------------------------------------------------------------------------------


def test_zscore_uses_population_std():
    assert zscores([1.0, 2.0, 3.0]) == pytest.approx([-math.sqrt(1.5), 0.0, math.sqrt(1.5)], abs=1e-15)


def test_nulls_are_neutral_and_do_not_move_the_others():
    assert zscores([1.0, None, 3.0]) == pytest.approx([-1.0, 0.0, 1.0], abs=1e-15)


@pytest.mark.parametrize("column", [[0.1, 0.1, 0.1], [7.0, None, None], [None, None], [2.5]])
def test_uninformative_cross_sections_are_exactly_zero(column):
    # 0.1 * 3 / 3 != 0.1 in float64: constancy is judged on the raw values, not on a rounded std.
    assert zscores(column) == [0.0] * len(column)


def test_outliers_are_clipped_at_winsor_z():
    column = [0.0] * 49 + [1e6]  # unclipped z of the outlier: sqrt(49) = 7
    z = zscores(column, winsor_z=5.0)
    assert z[-1] == 5.0 and z[0] == pytest.approx(-1 / 7)
    assert zscores(column, winsor_z=math.inf)[-1] == pytest.approx(7.0)


def test_each_date_is_standardized_on_its_own():
    frame = pl.concat([cross_section({"x": [1.0, 2.0, 3.0]}),
                       cross_section({"x": [100.0, 200.0, 300.0]}, DAY + dt.timedelta(days=1))])
    z = standardize_by_date(frame.select("x").to_numpy(), date_starts(frame["date"]), 5.0)[:, 0]
    assert z[:3].tolist() == z[3:].tolist()


# --- prediction ----------------------------------------------------------------------------------


def test_predict_is_the_linear_map_of_the_zscores():
    model = LinearSignalModel(("a", "b"), (2.0, -1.0), 0.5)
    frame = cross_section({"a": [1.0, 2.0, 3.0], "b": [5.0, None, 5.0], "extra": [0.0, 0.0, 0.0]})
    scores = model.predict(frame.reverse())
    assert scores.columns == ["date", "instrument", "score"]
    assert scores["instrument"].to_list() == ["N0", "N1", "N2"]
    spread = 2 * math.sqrt(1.5)  # coefficient 2 times the z-scores of 1, 2, 3; b is neutral throughout
    assert scores["score"].to_list() == pytest.approx([0.5 - spread, 0.5, 0.5 + spread])


def test_predict_lists_every_missing_column():
    model = LinearSignalModel(("a", "b", "c"), (1.0, 1.0, 1.0), 0.0)
    with pytest.raises(DataError, match=r"lacks columns \['a', 'c'\]"):
        model.predict(cross_section({"b": [1.0, 2.0]}))


def test_predict_refuses_non_finite_features():
    model = LinearSignalModel(("a",), (1.0,), 0.0)
    with pytest.raises(DataError, match=r"'a' holds 1 non-finite values \(0 NaN, 1 inf\)"):
        model.predict(cross_section({"a": [1.0, math.inf]}))


def test_predict_on_no_rows_gives_an_empty_typed_frame():
    model = LinearSignalModel(("a",), (1.0,), 0.0)
    empty = model.predict(cross_section({"a": [1.0]}).clear())
    assert empty.height == 0 and empty.schema == pl.Schema({"date": pl.Date, "instrument": pl.String,
                                                             "score": pl.Float64})


def weekly_frame() -> pl.DataFrame:
    """Two weeks as UTC timestamps, two exchanges, integer tickers (repeated across exchanges), shuffled."""
    rows = [(dt.datetime(2022, 3, 7 + 7 * w, 16, tzinfo=dt.UTC), ex, t, float((w + 1) * (t + 1) + (ex == "X") * 10))
            for w in range(2) for ex in ("X", "Y") for t in range(3)]
    frame = pl.DataFrame(rows, schema={"week": pl.Datetime("us", "UTC"), "exchange": pl.String,
                                       "ticker": pl.Int64, "a": pl.Float64}, orient="row")
    return frame.sample(fraction=1.0, shuffle=True, seed=5)


def test_predict_on_other_keys_standardizes_per_time_value_and_sorts_by_every_key():
    model = LinearSignalModel(("a",), (1.0,), 0.0, keys=WEEKLY)
    frame = weekly_frame()
    scores = model.predict(frame)
    assert scores.columns == ["week", "exchange", "ticker", "score"]
    assert scores.schema["week"] == pl.Datetime("us", "UTC") and scores.schema["ticker"] == pl.Int64
    assert scores.select("week", "exchange", "ticker").rows() == sorted(frame.select("week", "exchange", "ticker").rows())
    for week in scores.partition_by("week"):  # each week is one cross-section of six names
        z = week["score"].to_numpy()
        assert abs(z.sum()) < 1e-12 and math.isclose(float((z * z).mean()), 1.0, rel_tol=1e-12)
    ordered = frame.sort("week", "exchange", "ticker")
    again = LinearSignalModel(("a",), (1.0,), 0.0, keys=FrameKeys("week", ("ticker", "exchange"))).predict(frame)
    assert again.select("week", "ticker", "exchange").rows() == ordered.sort("week", "ticker", "exchange").select(
        "week", "ticker", "exchange").rows()


def test_predict_refuses_a_frame_keyed_otherwise():
    model = LinearSignalModel(("a",), (1.0,), 0.0, keys=WEEKLY)
    with pytest.raises(DataError, match=r"lacks columns \['week', 'exchange', 'ticker'\]"):
        model.predict(cross_section({"a": [1.0, 2.0]}))
    frame = weekly_frame()
    with pytest.raises(DataError, match="time column 'week' is Int64, expected Date or Datetime"):
        model.predict(frame.with_columns(pl.col("ticker").alias("week")))
    with pytest.raises(DataError, match=r"4 rows whose \(week, exchange, ticker\) key repeats"):
        model.predict(frame.with_columns(pl.lit("X").alias("exchange")).filter(pl.col("ticker") < 1))
    with pytest.raises(DataError, match="key column 'ticker' holds 1 nulls"):
        model.predict(frame.with_columns(pl.when(pl.col("a") == 3.0).then(None).otherwise(pl.col("ticker"))
                                         .alias("ticker")))


def test_a_feature_named_like_a_key_is_refused():
    with pytest.raises(ConfigurationError, match=r"include the key column\(s\) \['ticker'\]"):
        LinearSignalModel(("ticker",), (1.0,), 0.0, keys=WEEKLY)


# --- construction --------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"coefficients": (1.0,)}, "1 coefficients for 2 feature columns"),
    ({"keys": ("date", "instrument")}, "keys must be a FrameKeys"),
    ({"intercept": math.nan}, "finite"),
    ({"feature_columns": ("a", "a")}, "repeat"),
    ({"winsor_z": -1.0}, "winsor_z"),
    ({"alpha": 0.0}, "alpha"),
    ({"label_column": "a"}, "label_column 'a' cannot also be a feature"),
    ({"n_rows": -1}, "negative"),
    ({"training_window": "2022-01-01..2022-02-01"}, "DataWindow"),
])
def test_malformed_models_are_refused(kwargs, message):
    fields = {"feature_columns": ("a", "b"), "coefficients": (1.0, 2.0), "intercept": 0.0, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        LinearSignalModel(**fields)


def test_numpy_numbers_are_normalized_to_python_floats():
    model = LinearSignalModel(("a",), (np.float64(0.25),), np.float32(0.5))
    assert type(model.coefficients[0]) is float and type(model.intercept) is float
    assert model == LinearSignalModel(("a",), (0.25,), 0.5)


# --- canonical bytes -----------------------------------------------------------------------------

MODEL = LinearSignalModel(("mom_5d", "vol_21d"), (0.1, -3e-310), -0.0, seed=3, alpha=2.0,
                          training_window=DataWindow.parse("2021-01-04..2021-06-30"), n_days=120, n_rows=1200,
                          label_column="fwd_ret_1d", keys=WEEKLY)


def test_bytes_are_sorted_key_json_with_hex_floats_and_the_keys():
    data = MODEL.to_bytes()
    payload = json.loads(data)
    assert list(payload) == sorted(payload)
    assert payload["format"] == MODEL.format_id == RIDGE_FORMAT == "ml_platform.ridge/v2"
    assert payload["keys"] == {"time": "week", "entities": ["exchange", "ticker"]}
    assert payload["coefficients"] == [(0.1).hex(), (-3e-310).hex()]
    assert payload["training_window"] == {"start": "2021-01-04", "end": "2021-06-30"}
    assert b" " not in data
    assert MODEL.sha256 == "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_keys_are_part_of_the_identity():
    other = dataclasses.replace(MODEL, keys=FrameKeys("week", ("ticker", "exchange")))
    assert other != MODEL and other.sha256 != MODEL.sha256


def test_bytes_round_trip_bit_for_bit():
    again = LinearSignalModel.from_bytes(MODEL.to_bytes())
    assert again == MODEL and again.to_bytes() == MODEL.to_bytes()
    assert math.copysign(1.0, again.intercept) == -1.0  # -0.0 survives
    loaded = load_model_bytes(RIDGE_FORMAT, MODEL.to_bytes())
    frame = weekly_frame().rename({"a": "mom_5d"}).with_columns(vol_21d=pl.col("ticker").cast(pl.Float64))
    first, second = MODEL.predict(frame), loaded.predict(frame)
    assert first["score"].to_list() == second["score"].to_list()  # exact equality, not approx
    assert first.equals(second)


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(coefficients=st.lists(finite, min_size=1, max_size=4), intercept=finite,
       seed=st.integers(-(2**40), 2**40))
def test_any_model_round_trips(coefficients, intercept, seed):
    names = tuple(f"f{i}" for i in range(len(coefficients)))
    model = LinearSignalModel(names, tuple(coefficients), intercept, seed=seed, winsor_z=math.inf)
    data = model.to_bytes()
    assert LinearSignalModel.from_bytes(data).to_bytes() == data


def _edited(**changes: object) -> bytes:
    payload = {**json.loads(MODEL.to_bytes()), **changes}
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("data, message", [
    (b"\x00\xffgarbage", "not ASCII JSON"),
    (b"{not json", "not ASCII JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (_edited(format="sklearn.pickle"), "unknown model format 'sklearn.pickle'"),
    (_edited(format="ml_platform.models.LinearSignalModel", format_version=1), "version-1 ridge model bytes"),
    (_edited(format_version=2), r"unexpected \['format_version'\]"),
    (_edited(keys={"time": "week"}), r"corrupt model bytes: .*a FrameKeys record"),
    (_edited(keys={"time": "week", "entities": "ticker"}), "not in canonical form"),
    (_edited(extra=1), r"unexpected \['extra'\]"),
    (_edited(intercept="zero"), "corrupt model bytes"),
    (_edited(seed="3"), "corrupt model bytes"),
    (_edited(coefficients=["0x1p-1"]), "1 coefficients for 2"),
    (_edited(training_window={"start": "2021-13-01", "end": "2021-12-31"}), "corrupt model bytes"),
    (MODEL.to_bytes().replace(b",", b", ", 1), "not in canonical form"),
])
def test_corrupt_or_foreign_bytes_are_refused(data, message):
    with pytest.raises(DataError, match=message):
        LinearSignalModel.from_bytes(data)


def test_missing_fields_are_named():
    payload = json.loads(MODEL.to_bytes())
    del payload["alpha"]
    with pytest.raises(DataError, match=r"missing \['alpha'\]"):
        LinearSignalModel.from_bytes(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
