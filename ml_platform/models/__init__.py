"""Deterministic training, signals and backtest metrics. Pure: no Dagster, no MLflow.

The flow, each step a pure function of its inputs::

    model = train(training_set, TrainingConfig(feature_columns=FEATURES))   # cross-sectional ridge
    signals = to_signals(model.predict(validation_features))                # dollar-neutral weights
    report = backtest(signals, validation_labels)                           # Sharpe, IC, drawdown...

The same rows give the same ``model.to_bytes()`` (and so ``model.sha256``) and the same signals,
bit for bit, whatever the row order of the input.
"""

from ml_platform.models.backtest import (
    DAILY_SCHEMA,
    TRADING_DAYS_PER_YEAR,
    BacktestReport,
    backtest,
    daily_ic,
    daily_pnl,
)
from ml_platform.models.model import (
    DEFAULT_WINSOR_Z,
    MODEL_FORMAT,
    MODEL_FORMAT_VERSION,
    LinearSignalModel,
)
from ml_platform.models.signals import SIGNAL_SCHEMA, check_signals, to_signals
from ml_platform.models.training import TrainingConfig, split_window, train

__all__ = [
    "DAILY_SCHEMA",
    "DEFAULT_WINSOR_Z",
    "MODEL_FORMAT",
    "MODEL_FORMAT_VERSION",
    "SIGNAL_SCHEMA",
    "TRADING_DAYS_PER_YEAR",
    "BacktestReport",
    "LinearSignalModel",
    "TrainingConfig",
    "backtest",
    "check_signals",
    "daily_ic",
    "daily_pnl",
    "split_window",
    "to_signals",
    "train",
]
