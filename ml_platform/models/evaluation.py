"""Train on the earlier part of a window, validate on the later part: one pure step. No Dagster, no MLflow.

:func:`train_and_validate` works with any :class:`~ml_platform.models.protocol.Trainer`. With
``check_determinism`` (the default) it fits twice on the same rows and refuses a trainer whose two
models differ by a single byte: a model the registry cannot reproduce from its recorded inputs
must never be registered.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ml_platform.errors import ConfigurationError, DataError, NonDeterministicModel
from ml_platform.models.backtest import BacktestReport, backtest
from ml_platform.models.frames import time_window
from ml_platform.models.protocol import ModelInputs, SignalModel, Trainer
from ml_platform.models.signals import to_signals
from ml_platform.models.training import split_window
from ml_platform.window import DataWindow

__all__ = ["TrainingOutcome", "fit_checked", "train_and_validate"]


def _window(frame: pl.DataFrame, inputs: ModelInputs, what: str) -> DataWindow:
    if frame.height == 0:
        raise DataError(f"the {what} part of the training set is empty; widen the window")
    return time_window(frame[inputs.keys.time])


@dataclass(frozen=True)
class TrainingOutcome:
    """A trained model and its out-of-sample report on the validation part of the same window."""

    model: SignalModel
    report: BacktestReport
    inputs: ModelInputs
    training_window: DataWindow
    validation_window: DataWindow

    def metrics(self) -> dict[str, float]:
        """The report's numbers, ready to log as MLflow metrics."""
        return {k: float(v) for k, v in self.report.to_dict().items() if k != "window"}


def fit_checked(trainer: Trainer, training_set: pl.DataFrame, inputs: ModelInputs, *,
                check_determinism: bool = True) -> SignalModel:
    """Fit ``trainer`` and check the model is what the protocol promises (and, if asked, reproducible).

    Raises:
        ConfigurationError: ``trainer`` is not a Trainer, or its model is not a SignalModel of the
            trainer's format, keys and feature columns.
        NonDeterministicModel: with ``check_determinism``, a second fit gave other bytes.
    """
    if not isinstance(trainer, Trainer):
        raise ConfigurationError(
            f"trainer must implement the Trainer protocol (format_id, fit, params), got {type(trainer).__name__}; "
            "use RidgeTrainer(), SklearnTrainer(estimator) or your own"
        )
    if not isinstance(inputs, ModelInputs):
        raise ConfigurationError(f"inputs must be a ModelInputs, got {type(inputs).__name__}")
    model = trainer.fit(training_set, inputs)
    if not isinstance(model, SignalModel):
        raise ConfigurationError(f"{type(trainer).__name__}.fit returned a {type(model).__name__}, not a SignalModel")
    if (model.format_id, model.keys, tuple(model.feature_columns)) != (
            trainer.format_id, inputs.keys, inputs.feature_columns):
        raise ConfigurationError(
            f"{type(trainer).__name__}.fit returned a model of format {model.format_id!r}, keys ({model.keys}) and "
            f"features {list(model.feature_columns)}; expected {trainer.format_id!r}, ({inputs.keys}) and "
            f"{list(inputs.feature_columns)}"
        )
    if check_determinism:
        again = trainer.fit(training_set, inputs)
        first, second = model.sha256, again.sha256
        if first != second:
            raise NonDeterministicModel(
                f"two fits of {type(trainer).__name__} (format {model.format_id!r}) on the same {training_set.height} "
                f"rows gave different model bytes: {first} then {second}. The registry only accepts models it can "
                "rebuild from their recorded inputs: seed every source of randomness (random_state from "
                "inputs.seed; SklearnTrainer does it unless seed_estimator=False), avoid estimators that draw from "
                "an unseeded generator or depend on thread timing, or use a deterministic estimator"
            )
    return model


def train_and_validate(training_set: pl.DataFrame, trainer: Trainer, inputs: ModelInputs, *,
                       validation_fraction: float = 0.25, embargo_days: int = 2,
                       check_determinism: bool = True) -> TrainingOutcome:
    """Split by time (with an embargo so no label straddles the split), train, score the validation part.

    Args:
        training_set: keys, feature columns and the label (any row order).
        trainer: the model family and hyper-parameters.
        inputs: the keys, features, label and seed.
        validation_fraction: share of the window's time values held out for validation, the latest ones.
        embargo_days: time values dropped between the parts (the label looks ahead).
        check_determinism: fit twice and refuse different bytes (:class:`NonDeterministicModel`).

    Raises:
        ConfigurationError / NonDeterministicModel: see :func:`fit_checked`.
        DataError: too few time values to split, train or backtest, with the counts.
    """
    if not isinstance(inputs, ModelInputs):
        raise ConfigurationError(f"inputs must be a ModelInputs, got {type(inputs).__name__}")
    keys, label = inputs.keys, inputs.label_column
    train_part, valid_part = split_window(training_set, validation_fraction, keys=keys, embargo_days=embargo_days)
    try:
        model = fit_checked(trainer, train_part, inputs, check_determinism=check_determinism)
    except DataError as exc:
        n_set, n_train = training_set[keys.time].n_unique(), train_part[keys.time].n_unique()
        raise DataError(
            f"{exc.args[0]} -- the training set has {n_set} {keys.time} values; holding out {validation_fraction:.0%} for "
            f"validation and an embargo of {embargo_days} leaves {n_train} for training"
        ) from exc
    scores = model.predict(valid_part.select(*keys.columns, *inputs.feature_columns))
    signals = to_signals(scores, keys)
    report = backtest(signals, valid_part.select(*keys.columns, label), label_column=label, keys=keys)
    return TrainingOutcome(
        model=model, report=report, inputs=inputs,
        training_window=_window(train_part, inputs, "training"),
        validation_window=_window(valid_part, inputs, "validation"),
    )
