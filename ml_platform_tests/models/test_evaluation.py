"""train_and_validate over any trainer, and the determinism check that refuses irreproducible models."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

from ml_platform.errors import ConfigurationError, DataError, NonDeterministicModel
from ml_platform.keys import FrameKeys
from ml_platform.models import (
    RIDGE_FORMAT,
    SKLEARN_FORMAT,
    LinearSignalModel,
    ModelInputs,
    RidgeTrainer,
    SklearnTrainer,
    train_and_validate,
)
from ml_platform.window import DataWindow
from ml_platform_tests.models.conftest import FEATURES, INPUTS, LABEL, make_set, make_weekly_set

SHA = r"sha256:[0-9a-f]{64}"


class UnseededNoiseRegressor(RegressorMixin, BaseEstimator):
    """Least squares plus noise from an unseeded generator: no random_state the trainer could set."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> UnseededNoiseRegressor:
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        self.coef_ = coef + np.random.default_rng().normal(scale=1e-6, size=coef.shape)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef_


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    return make_set(n_days=60, n_names=10)


@pytest.mark.parametrize("trainer", [RidgeTrainer(min_days=30),
                                     SklearnTrainer(HistGradientBoostingRegressor(max_iter=20), min_days=30)],
                         ids=["ridge", "sklearn"])
def test_outcome_holds_the_model_its_report_and_windows(data: pl.DataFrame, trainer: Any) -> None:
    outcome = train_and_validate(data, trainer, INPUTS, validation_fraction=0.25, embargo_days=2)
    assert outcome.model.format_id == trainer.format_id and outcome.inputs == INPUTS
    assert outcome.training_window == DataWindow.parse("2021-01-04..2021-02-15")  # 43 days, then 2 embargoed
    assert outcome.validation_window == DataWindow.parse("2021-02-18..2021-03-04")  # the last 15
    assert outcome.report.window == DataWindow.parse("2021-02-18..2021-03-03")  # the last day has no label
    assert outcome.report.ic_mean > 0.5  # the planted relation is found out of sample
    assert set(outcome.metrics()) == {"n_days", "sharpe", "ic_mean", "ic_tstat", "hit_rate", "turnover",
                                      "max_drawdown", "total_return", "n_ic_days"}
    again = train_and_validate(data.reverse(), trainer, INPUTS)
    assert again.model.to_bytes() == outcome.model.to_bytes() and again.report == outcome.report


def test_other_keys_validate_too() -> None:
    weekly = make_weekly_set(n_weeks=60, n_tickers=10)
    inputs = ModelInputs(FrameKeys("week", ("ticker",)), FEATURES, LABEL)
    outcome = train_and_validate(weekly, RidgeTrainer(min_days=30), inputs)
    assert outcome.model.keys == inputs.keys and outcome.report.n_days == 14  # 15 weeks, the last unlabelled


def test_an_unseeded_estimator_is_refused_naming_the_format_and_both_hashes(data: pl.DataFrame) -> None:
    trainer = SklearnTrainer(UnseededNoiseRegressor(), min_days=30)
    first, second = trainer.fit(data, INPUTS), trainer.fit(data, INPUTS)
    assert first.sha256 != second.sha256  # genuinely non-deterministic: the check below cannot pass vacuously
    with pytest.raises(NonDeterministicModel) as caught:
        train_and_validate(data, trainer, INPUTS)
    message = str(caught.value)
    assert message.startswith("[NON_DETERMINISTIC_MODEL] two fits of SklearnTrainer (format 'ml_platform.sklearn/v1')")
    hashes = re.findall(SHA, message)
    assert len(hashes) == 2 and hashes[0] != hashes[1]
    assert "seed every source of randomness (random_state" in message and "deterministic estimator" in message
    assert train_and_validate(data, trainer, INPUTS, check_determinism=False).model.format_id == SKLEARN_FORMAT


def test_a_forest_refused_unseeded_and_accepted_seeded(data: pl.DataFrame) -> None:
    estimator = RandomForestRegressor(n_estimators=5, max_depth=3, bootstrap=True, random_state=None)
    unseeded = SklearnTrainer(estimator, min_days=30, seed_estimator=False)
    assert unseeded.fit(data, INPUTS).sha256 != unseeded.fit(data, INPUTS).sha256
    with pytest.raises(NonDeterministicModel, match=f"{SHA} then {SHA}"):
        train_and_validate(data, unseeded, INPUTS)
    seeded = train_and_validate(data, SklearnTrainer(estimator, min_days=30), INPUTS)
    assert seeded.model.estimator.random_state == INPUTS.seed


@dataclasses.dataclass(frozen=True)
class MislabelledTrainer:
    """Claims the sklearn format but returns ridge models."""

    format_id: ClassVar[str] = SKLEARN_FORMAT

    def fit(self, training_set: pl.DataFrame, inputs: ModelInputs) -> LinearSignalModel:
        return RidgeTrainer(min_days=30).fit(training_set, inputs)

    def params(self) -> dict[str, bool | int | float | str]:
        return {}


def test_trainers_that_break_the_protocol_are_refused(data: pl.DataFrame) -> None:
    with pytest.raises(ConfigurationError, match=f"returned a model of format '{RIDGE_FORMAT}'.*expected "
                                                 f"'{SKLEARN_FORMAT}'"):
        train_and_validate(data, MislabelledTrainer(), INPUTS)
    with pytest.raises(ConfigurationError, match="trainer must implement the Trainer protocol"):
        train_and_validate(data, RandomForestRegressor(), INPUTS)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="inputs must be a ModelInputs"):
        train_and_validate(data, RidgeTrainer(), FEATURES)  # type: ignore[arg-type]


def test_too_few_days_says_what_the_split_left(data: pl.DataFrame) -> None:
    with pytest.raises(DataError, match=r"need 60.*the training set has 60 date values; holding out 25% for validation "
                                        r"and an embargo of 2 leaves 43 for training"):
        train_and_validate(data, RidgeTrainer(), INPUTS)
