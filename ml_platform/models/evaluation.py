"""Train on the earlier part of a window, validate on the later part: one pure step. No Dagster, no MLflow."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ml_platform.errors import DataError
from ml_platform.market.schema import KEYS
from ml_platform.models.backtest import BacktestReport, backtest
from ml_platform.models.model import LinearSignalModel
from ml_platform.models.signals import to_signals
from ml_platform.models.training import TrainingConfig, split_window, train
from ml_platform.window import DataWindow


def _window(frame: pl.DataFrame, what: str) -> DataWindow:
    if frame.height == 0:
        raise DataError(f"the {what} part of the training set is empty; widen the window")
    return DataWindow(frame["date"].min(), frame["date"].max())  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrainingOutcome:
    """A trained model and its out-of-sample report on the validation part of the same window."""

    model: LinearSignalModel
    report: BacktestReport
    config: TrainingConfig
    training_window: DataWindow
    validation_window: DataWindow

    def metrics(self) -> dict[str, float]:
        """The report's numbers, ready to log as MLflow metrics."""
        return {k: float(v) for k, v in self.report.to_dict().items() if k != "window"}


def train_and_validate(training_set: pl.DataFrame, config: TrainingConfig, *, validation_fraction: float = 0.25,
                       embargo_days: int = 2) -> TrainingOutcome:
    """Split by date (with an embargo so no label straddles the split), train, score the validation days.

    Args:
        training_set: keys, feature columns and the label, sorted by (date, instrument).
        config: the training configuration (features, label, penalty, seed).
        validation_fraction: share of the window's dates held out, the latest ones.
        embargo_days: dates dropped between the parts (the label looks one bar ahead).
    """
    train_part, valid_part = split_window(training_set, validation_fraction, embargo_days=embargo_days)
    try:
        model = train(train_part, config)
    except DataError as exc:
        n_set, n_train = training_set["date"].n_unique(), train_part["date"].n_unique()
        raise DataError(
            f"{exc} -- the training set has {n_set} dates; holding out {validation_fraction:.0%} for validation "
            f"and an embargo of {embargo_days} leaves {n_train} for training"
        ) from exc
    scores = model.predict(valid_part.select(*KEYS, *config.feature_columns))
    signals = to_signals(scores)
    report = backtest(signals, valid_part.select(*KEYS, config.label_column), label_column=config.label_column)
    return TrainingOutcome(
        model=model, report=report, config=config,
        training_window=_window(train_part, "training"), validation_window=_window(valid_part, "validation"),
    )
