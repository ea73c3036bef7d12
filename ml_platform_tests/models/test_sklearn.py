"""The scikit-learn adapter: any regressor, seeded and single-threaded, bit-exact bytes, every refusal."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
from typing import Any

import numpy as np
import polars as pl
import pytest
import sklearn
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.cluster import KMeans
from sklearn.ensemble import BaggingRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor
from threadpoolctl import threadpool_info

from ml_platform.errors import ConfigurationError, DataError, EnvironmentMismatch
from ml_platform.keys import FrameKeys
from ml_platform.models import (
    SKLEARN_FORMAT,
    ModelInputs,
    RidgeTrainer,
    SklearnSignalModel,
    SklearnTrainer,
    load_model_bytes,
)
from ml_platform.models.sklearn import PICKLE_PROTOCOL
from ml_platform_tests.models.conftest import FEATURES, INPUTS, KEYS, LABEL, make_set, make_weekly_set


class ThreadRecorder(RegressorMixin, BaseEstimator):
    """Fits a mean; records the thread counts of every native thread pool while fitting."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> ThreadRecorder:
        self.threads_ = sorted({pool["num_threads"] for pool in threadpool_info()})
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(X.shape[0], self.mean_)


class Untagged(BaseEstimator):
    """fit, predict and get_params, but no estimator type: neither a regressor nor a classifier."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Untagged:
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(X.shape[0])


class Duck:
    """Quacks like an estimator without scikit-learn's tag machinery."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Duck:
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.zeros(X.shape[0])

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}


def forest(**kwargs: Any) -> RandomForestRegressor:
    return RandomForestRegressor(n_estimators=8, max_depth=4, **kwargs)


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    return make_set(n_days=30, n_names=10, null_fraction=0.05)


# --- round trip ----------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", [HistGradientBoostingRegressor(max_iter=20), forest(), Ridge(alpha=3.0)],
                         ids=["hgb", "forest", "ridge"])
def test_bytes_round_trip_and_scores_are_bit_exact(data: pl.DataFrame, estimator: Any) -> None:
    model = SklearnTrainer(estimator, min_days=20).fit(data, INPUTS)
    data_bytes = model.to_bytes()
    loaded = load_model_bytes(SKLEARN_FORMAT, data_bytes)
    assert isinstance(loaded, SklearnSignalModel) and loaded == model
    assert loaded.to_bytes() == data_bytes and loaded.sha256 == model.sha256
    assert model.sha256 == "sha256:" + hashlib.sha256(data_bytes).hexdigest()
    first, second = model.predict(data), loaded.predict(data)
    assert first["score"].to_list() == second["score"].to_list()  # exact equality, not approx
    assert first.columns == ["date", "instrument", "score"] and first["score"].n_unique() > 10
    assert type(loaded.estimator) is type(estimator) and loaded.estimator is not model.estimator


def test_the_fit_learns_the_planted_relation_on_the_ridge_preprocessing(data: pl.DataFrame) -> None:
    """scikit-learn's Ridge on the adapter's design equals the platform ridge up to rounding.

    Same z-scores, same demeaned target: the adapter reuses the ridge's preprocessing.
    """
    ours = RidgeTrainer(alpha=3.0, min_days=20).fit(data, INPUTS)
    theirs = SklearnTrainer(Ridge(alpha=3.0), min_days=20).fit(data, INPUTS)
    np.testing.assert_allclose(theirs.estimator.coef_, ours.coefficients, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(theirs.predict(data)["score"].to_numpy(), ours.predict(data)["score"].to_numpy(),
                               rtol=1e-9, atol=1e-15)


def test_same_rows_in_any_order_give_the_same_bytes(data: pl.DataFrame) -> None:
    trainer = SklearnTrainer(forest(), min_days=20)
    first = trainer.fit(data, INPUTS)
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=4)
    assert not shuffled.equals(data)
    assert trainer.fit(shuffled, INPUTS).to_bytes() == first.to_bytes()


def test_other_keys_and_an_integer_entity(data: pl.DataFrame) -> None:
    weekly = make_weekly_set(n_weeks=30, n_tickers=10)
    keys = FrameKeys("week", ("ticker",))
    model = SklearnTrainer(HistGradientBoostingRegressor(max_iter=10), min_days=20).fit(
        weekly, ModelInputs(keys, FEATURES, LABEL))
    assert model.keys == keys and json.loads(model.to_bytes().partition(b"\n")[0])["keys"] == keys.to_dict()
    scores = model.predict(weekly)
    assert scores.columns == ["week", "ticker", "score"] and scores.schema["ticker"] == pl.Int32
    assert load_model_bytes(SKLEARN_FORMAT, model.to_bytes()).predict(weekly).equals(scores)
    with pytest.raises(DataError, match=r"lacks columns \['week', 'ticker'\]"):
        model.predict(data)


def test_empty_frame_scores_to_an_empty_typed_frame(data: pl.DataFrame) -> None:
    model = SklearnTrainer(Ridge(), min_days=20).fit(data, INPUTS)
    empty = model.predict(data.clear())
    assert empty.height == 0 and empty.schema == pl.Schema(
        {"date": pl.Date, "instrument": pl.String, "score": pl.Float64})


# --- seeded, single-threaded ---------------------------------------------------------------------


def test_random_state_and_n_jobs_are_forced_nested_ones_included(data: pl.DataFrame) -> None:
    given = BaggingRegressor(estimator=DecisionTreeRegressor(max_depth=3), n_estimators=4, n_jobs=-1)
    model = SklearnTrainer(given, min_days=20).fit(data, ModelInputs(KEYS, FEATURES, LABEL, seed=11))
    params = model.estimator.get_params()
    assert (params["random_state"], params["estimator__random_state"], params["n_jobs"]) == (11, 11, 1)
    assert given.get_params()["random_state"] is None and given.n_jobs == -1  # the caller's object is untouched
    other_seed = SklearnTrainer(given, min_days=20).fit(data, ModelInputs(KEYS, FEATURES, LABEL, seed=12))
    assert other_seed.sha256 != model.sha256  # the seed reaches the randomness


def test_seed_estimator_false_keeps_a_hand_set_random_state(data: pl.DataFrame) -> None:
    model = SklearnTrainer(forest(random_state=5), min_days=20, seed_estimator=False).fit(
        data, ModelInputs(KEYS, FEATURES, LABEL, seed=11))
    assert model.estimator.random_state == 5 and model.estimator.n_jobs == 1


def test_fit_and_predict_run_single_threaded(data: pl.DataFrame) -> None:
    assert threadpool_info(), "no native thread pool is loaded: this test would prove nothing"
    model = SklearnTrainer(ThreadRecorder(), min_days=20).fit(data, INPUTS)
    assert model.estimator.threads_ == [1]


def test_a_seed_scikit_learn_cannot_take_is_refused(data: pl.DataFrame) -> None:
    with pytest.raises(ConfigurationError, match=r"seed -1 cannot seed scikit-learn"):
        SklearnTrainer(forest(), min_days=20).fit(data, ModelInputs(KEYS, FEATURES, LABEL, seed=-1))


# --- standardize ---------------------------------------------------------------------------------


def test_raw_features_reach_the_estimator_with_nulls_as_nan(data: pl.DataFrame) -> None:
    raw = SklearnTrainer(HistGradientBoostingRegressor(max_iter=10), standardize=False, min_days=20).fit(data, INPUTS)
    standardized = SklearnTrainer(HistGradientBoostingRegressor(max_iter=10), min_days=20).fit(data, INPUTS)
    assert raw.standardize is False and raw.sha256 != standardized.sha256
    assert load_model_bytes(SKLEARN_FORMAT, raw.to_bytes()).predict(data).equals(raw.predict(data))
    with pytest.raises(DataError, match="(?s)LinearRegression refused the training set: .*NaN.*use standardize=True"):
        SklearnTrainer(LinearRegression(), standardize=False, min_days=20).fit(data, INPUTS)


# --- refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("estimator", "message"), [
    (LogisticRegression(), "LogisticRegression is a classifier: a signal model scores with real numbers"),
    (KMeans(n_clusters=2), "KMeans is a clusterer"),
    (StandardScaler(), "StandardScaler is not a scikit-learn regressor: it has no predict method"),
    (object(), "builtins.object is not a scikit-learn regressor: it has no fit, predict, get_params method"),
    (Untagged(), "Untagged is not a regressor: a signal model scores with real numbers"),
    (Duck(), "Duck does not declare scikit-learn estimator tags; derive it from sklearn.base.RegressorMixin"),
    (Ridge, "must be an instance, got the class sklearn.linear_model._ridge.Ridge; write Ridge"),
])
def test_non_regressors_are_refused(estimator: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        SklearnTrainer(estimator)


@pytest.mark.parametrize(("field", "value"), [("standardize", 1), ("seed_estimator", "yes"), ("min_days", 0),
                                              ("winsor_z", -1.0), ("min_rows_per_day", 1)])
def test_settings_are_checked(field: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=field):
        SklearnTrainer(Ridge(), **{field: value})


def test_an_unfitted_estimator_is_not_a_model() -> None:
    with pytest.raises(ConfigurationError, match="Ridge is not fitted"):
        SklearnSignalModel.from_estimator(Ridge(), keys=KEYS, feature_columns=FEATURES, label_column=LABEL)


def test_params_are_flat_and_name_the_estimator() -> None:
    params = SklearnTrainer(forest(max_features=None), min_days=20).params()
    assert params["estimator"] == "sklearn.ensemble._forest.RandomForestRegressor"
    assert (params["estimator.n_estimators"], params["estimator.max_features"]) == (8, "null")
    assert (params["standardize"], params["seed_estimator"], params["min_days"]) == (True, True, 20)
    assert all(isinstance(v, (bool, int, float, str)) for v in params.values())


# --- the bytes -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_bytes(data: pl.DataFrame) -> bytes:
    return SklearnTrainer(forest(), min_days=20).fit(data, INPUTS).to_bytes()


def _with_header(data: bytes, **changes: object) -> bytes:
    line, _, payload = data.partition(b"\n")
    header = {**json.loads(line), **changes}
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii") + b"\n" + payload


def test_header_is_canonical_json_describing_the_payload(model_bytes: bytes) -> None:
    line, newline, payload = model_bytes.partition(b"\n")
    header = json.loads(line)
    assert newline and list(header) == sorted(header) and b" " not in line
    assert header["format"] == SKLEARN_FORMAT and header["sklearn_version"] == sklearn.__version__
    assert header["estimator_class"] == "sklearn.ensemble._forest.RandomForestRegressor"
    assert header["estimator_params"]["random_state"] == 0 and header["estimator_params"]["n_jobs"] == 1
    assert header["pickle_protocol"] == PICKLE_PROTOCOL == 5 and payload[:2] == b"\x80\x05"  # PROTO 5 opcode
    assert isinstance(pickle.loads(payload), RandomForestRegressor)
    assert header["payload_sha256"] == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert header["winsor_z"] == (5.0).hex() and header["keys"] == KEYS.to_dict()


def test_another_scikit_learn_version_is_refused_before_unpickling(model_bytes: bytes) -> None:
    edited = _with_header(model_bytes, sklearn_version="0.24.2")
    with pytest.raises(EnvironmentMismatch, match=rf"pickled by scikit-learn 0.24.2 but {sklearn.__version__} is "
                                                  r"installed.*scikit-learn==0.24.2"):
        SklearnSignalModel.from_bytes(edited)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda b: b[:-10] + b"0123456789", "payload does not match the hash in its header"),
    (lambda b: b.partition(b"\n")[0], "no JSON header line"),
    (lambda b: b"\xff" + b, "the header is not ASCII JSON"),
    (lambda b: _with_header(b, format="ml_platform.ridge/v2"), "unknown model format 'ml_platform.ridge/v2'"),
    (lambda b: _with_header(b, extra=1), r"unexpected \['extra'\]"),
    (lambda b: _with_header(b, estimator_class="sklearn.linear_model._ridge.Ridge"),
     "header does not describe the pickled estimator"),
    (lambda b: _with_header(b, seed="0"), "corrupt scikit-learn model bytes: .*seed must be an integer"),
    (lambda b: b.replace(b'"n_days":', b'"n_days" :', 1), "not in canonical form"),
])
def test_corrupt_bytes_are_refused(model_bytes: bytes, edit: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        SklearnSignalModel.from_bytes(edit(model_bytes))


def test_later_changes_to_the_fitted_estimator_do_not_reach_the_model(data: pl.DataFrame) -> None:
    estimator = Ridge().fit(np.eye(3), np.arange(3.0))
    model = SklearnSignalModel.from_estimator(estimator, keys=KEYS, feature_columns=FEATURES, label_column=LABEL)
    before = model.to_bytes()
    estimator.coef_[:] = math.pi
    assert model.to_bytes() == before and not np.any(model.estimator.coef_ == math.pi)
