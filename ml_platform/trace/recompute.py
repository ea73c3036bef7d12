"""Recompute a stored live signal in this process and compare it bit for bit. Pure: no Dagster, no MLflow.

How it works, and why: docs/architecture.md, "ml_platform/trace/recompute.py".
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ml_platform.keys import FrameKeys
from ml_platform.lineage.data_hash import hash_table
from ml_platform.models.protocol import SignalModel
from ml_platform.models.signals import to_signals
from ml_platform.trace.record import Recomputation, float_hex, reproduce_command
from ml_platform.trace.resolve import SIGNAL_MODEL_COLUMNS, Instrument, find_row

__all__ = ["recompute_signal", "signals_of"]


def signals_of(model: SignalModel, features: pl.DataFrame, keys: FrameKeys, model_name: str,
               version: str) -> pl.DataFrame:
    """What the live-signal asset stores for ``features``: scores, weights, model name and version."""
    scored = model.predict(features) if features.height else \
        features.select(*keys.columns).with_columns(score=pl.lit(None, dtype=pl.Float64))
    name, number = SIGNAL_MODEL_COLUMNS
    return to_signals(scored, keys).with_columns(pl.lit(model_name).alias(name), pl.lit(version).alias(number))


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return float_hex(a) == float_hex(b)
    return a == b


def recompute_signal(model: SignalModel, features: pl.DataFrame, *, keys: FrameKeys, model_name: str,
                     version: str, day: dt.date, instrument: Instrument, stored_row: dict[str, object],
                     stored_data_hash: str, environment_differences: tuple[str, ...] = ()) -> Recomputation:
    """Recompute the day's signals from ``features`` (the stored model-input version) with ``model``.

    Args:
        stored_row: the stored signal row (``score`` and ``weight`` compared by their bits).
        stored_data_hash: the stored live-signal partition's data hash (compared with the recomputed one).
        environment_differences: how this process differs from the training environment (reported).
    """
    recomputed = signals_of(model, features, keys, model_name, version)
    row = find_row(recomputed, keys, day, instrument, label="the recomputed signals")
    partition_hash = hash_table(recomputed)
    return Recomputation(
        score=row.get("score"), weight=row.get("weight"),  # type: ignore[arg-type]
        score_equal=_same(row.get("score"), stored_row.get("score")),
        weight_equal=_same(row.get("weight"), stored_row.get("weight")),
        partition_data_hash=partition_hash, partition_equal=partition_hash == stored_data_hash,
        environment_differences=tuple(environment_differences), reproduce=reproduce_command(model_name, version))
