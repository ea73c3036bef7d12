"""Signal models of any family, deterministic training, signals and backtest metrics. Pure: no Dagster, no MLflow.

How it works, and why: docs/architecture.md, "ml_platform/models/__init__.py".
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
