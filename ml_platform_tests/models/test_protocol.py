"""The SignalModel and Trainer protocols and the format registry that loads bytes by format id."""

from __future__ import annotations

import dataclasses
import json
from typing import ClassVar

import polars as pl
import pytest
from sklearn.linear_model import Ridge

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.keys import FrameKeys
from ml_platform.models import (
    RIDGE_FORMAT,
    SKLEARN_FORMAT,
    LinearSignalModel,
    RidgeTrainer,
    SignalModel,
    SklearnTrainer,
    Trainer,
    known_model_formats,
    load_model_bytes,
    protocol,
    register_model_format,
)
from ml_platform_tests.models.conftest import INPUTS, KEYS, make_set

CONSTANT_FORMAT = "tests.constant/v1"


@dataclasses.dataclass(frozen=True)
class ConstantModel:
    """The smallest family outside ml_platform: every row scores ``value``."""

    format_id: ClassVar[str] = CONSTANT_FORMAT
    value: float
    keys: FrameKeys = KEYS
    feature_columns: tuple[str, ...] = ("mom_5d",)

    def predict(self, features: pl.DataFrame) -> pl.DataFrame:
        return features.select(*self.keys.columns).sort(self.keys.columns).with_columns(score=pl.lit(self.value))

    def to_bytes(self) -> bytes:
        return json.dumps({"value": self.value}).encode()

    @property
    def sha256(self) -> str:
        return "sha256:" + "0" * 64

    @classmethod
    def from_bytes(cls, data: bytes) -> ConstantModel:
        return cls(json.loads(data)["value"])


@pytest.fixture(autouse=True)
def isolated_formats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "_REGISTERED", {})


def test_the_built_in_families_satisfy_the_protocols() -> None:
    assert isinstance(RidgeTrainer(), Trainer) and isinstance(SklearnTrainer(Ridge()), Trainer)
    assert isinstance(LinearSignalModel(("a",), (1.0,), 0.0), SignalModel)
    assert isinstance(ConstantModel(1.0), SignalModel)
    assert not isinstance(Ridge(), SignalModel) and not isinstance(Ridge(), Trainer)
    assert known_model_formats() == (RIDGE_FORMAT, SKLEARN_FORMAT)


def test_an_unknown_format_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown model format 'acme.gbm/v3'; known formats: "
                                                 r"\['ml_platform.ridge/v2', 'ml_platform.sklearn/v1'\].*"
                                                 r"register_model_format"):
        load_model_bytes("acme.gbm/v3", b"{}")
    with pytest.raises(ConfigurationError, match="model format id 'ridge' is malformed; write '<family>/v<version>'"):
        load_model_bytes("ridge", b"{}")


def test_a_registered_family_loads_by_its_format_id() -> None:
    register_model_format(CONSTANT_FORMAT, ConstantModel.from_bytes)
    register_model_format(CONSTANT_FORMAT, ConstantModel.from_bytes)  # the same loader again: a no-op
    assert known_model_formats() == (RIDGE_FORMAT, SKLEARN_FORMAT, CONSTANT_FORMAT)
    loaded = load_model_bytes(CONSTANT_FORMAT, ConstantModel(2.5).to_bytes())
    assert loaded == ConstantModel(2.5)


def test_registrations_that_would_change_what_bytes_mean_are_refused() -> None:
    register_model_format(CONSTANT_FORMAT, ConstantModel.from_bytes)
    with pytest.raises(ConfigurationError, match="already has the loader .*bump the version"):
        register_model_format(CONSTANT_FORMAT, lambda data: ConstantModel(0.0))
    with pytest.raises(ConfigurationError, match="'ml_platform.ridge/v2' is built into ml_platform"):
        register_model_format(RIDGE_FORMAT, ConstantModel.from_bytes)
    with pytest.raises(ConfigurationError, match="must be callable"):
        register_model_format("tests.other/v1", "ConstantModel.from_bytes")  # type: ignore[arg-type]


def test_bytes_of_one_format_read_as_another_are_refused() -> None:
    ridge = RidgeTrainer(min_days=20).fit(make_set(n_days=25), INPUTS)
    sklearn_model = SklearnTrainer(Ridge(), min_days=20).fit(make_set(n_days=25), INPUTS)
    with pytest.raises(DataError, match="no JSON header line"):
        load_model_bytes(SKLEARN_FORMAT, ridge.to_bytes())
    with pytest.raises(DataError, match="not ASCII JSON"):
        load_model_bytes(RIDGE_FORMAT, sklearn_model.to_bytes())
    register_model_format("tests.liar/v1", lambda data: ConstantModel(1.0))
    with pytest.raises(DataError, match="recorded as model format 'tests.liar/v1' decode to a model of format "
                                        "'tests.constant/v1'"):
        load_model_bytes("tests.liar/v1", b"{}")
    register_model_format("tests.junk/v1", lambda data: object())  # type: ignore[arg-type, return-value]
    with pytest.raises(ConfigurationError, match="returned a object, not a SignalModel"):
        load_model_bytes("tests.junk/v1", b"{}")
    with pytest.raises(DataError, match="model bytes must be bytes, got str"):
        load_model_bytes(RIDGE_FORMAT, "{}")  # type: ignore[arg-type]
