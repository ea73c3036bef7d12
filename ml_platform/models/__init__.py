"""Signal models of any family, deterministic training, signals and backtest metrics. Pure: no Dagster, no MLflow.

The flow, each step a pure function of its inputs::

    inputs = ModelInputs(keys, feature_columns=FEATURES, label_column="fwd_ret_1d", seed=0)
    model = RidgeTrainer(alpha=10.0).fit(training_set, inputs)         # or SklearnTrainer(estimator)
    signals = to_signals(model.predict(validation_features), keys)      # dollar-neutral weights
    report = backtest(signals, validation_labels, label_column="fwd_ret_1d", keys=keys)

or all at once, with the determinism check, ``train_and_validate(training_set, trainer, inputs)``.
The same rows give the same ``model.to_bytes()`` (and so ``model.sha256``) and the same signals,
bit for bit, whatever the row order of the input. ``load_model_bytes(format_id, data)`` reads any
registered format back.

:class:`SklearnTrainer` and :class:`SklearnSignalModel` are imported lazily (with scikit-learn) on
first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ml_platform.models.backtest import (
    DAILY_COLUMNS,
    TRADING_DAYS_PER_YEAR,
    BacktestReport,
    backtest,
    daily_ic,
    daily_pnl,
)
from ml_platform.models.evaluation import TrainingOutcome, fit_checked, train_and_validate
from ml_platform.models.model import DEFAULT_WINSOR_Z, LinearSignalModel
from ml_platform.models.protocol import (
    RIDGE_FORMAT,
    SKLEARN_FORMAT,
    ModelInputs,
    SignalModel,
    Trainer,
    known_model_formats,
    load_model_bytes,
    register_model_format,
)
from ml_platform.models.signals import SIGNAL_COLUMNS, check_signals, to_signals
from ml_platform.models.training import RidgeTrainer, split_window

if TYPE_CHECKING:
    from ml_platform.models.sklearn import SklearnSignalModel, SklearnTrainer

__all__ = [
    "DAILY_COLUMNS",
    "DEFAULT_WINSOR_Z",
    "RIDGE_FORMAT",
    "SIGNAL_COLUMNS",
    "SKLEARN_FORMAT",
    "TRADING_DAYS_PER_YEAR",
    "BacktestReport",
    "LinearSignalModel",
    "ModelInputs",
    "RidgeTrainer",
    "SignalModel",
    "SklearnSignalModel",
    "SklearnTrainer",
    "Trainer",
    "TrainingOutcome",
    "backtest",
    "check_signals",
    "daily_ic",
    "daily_pnl",
    "fit_checked",
    "known_model_formats",
    "load_model_bytes",
    "register_model_format",
    "split_window",
    "to_signals",
    "train_and_validate",
]

_LAZY = {"SklearnSignalModel": "ml_platform.models.sklearn", "SklearnTrainer": "ml_platform.models.sklearn"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ml_platform.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
