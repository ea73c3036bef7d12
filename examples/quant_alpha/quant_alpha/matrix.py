"""Assembling per-feature frames into the model's feature matrix and the training set. Pure."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ml_platform import DataError
from quant_alpha.market.schema import KEYS

LABEL_COLUMN = "fwd_ret_1d"


def join_on_keys(*frames: pl.DataFrame) -> pl.DataFrame:
    """Left-join frames on (date, instrument), starting from the first; refuses clashing columns."""
    if not frames:
        raise DataError("nothing to join: pass at least one frame")
    out = frames[0]
    for frame in frames[1:]:
        clash = (set(out.columns) & set(frame.columns)) - set(KEYS)
        if clash:
            raise DataError(f"cannot join feature frames: columns {sorted(clash)} appear in more than one")
        out = out.join(frame, on=list(KEYS), how="left", maintain_order="left")
    return out


def assemble_matrix(frames: Sequence[pl.DataFrame], columns: Sequence[str]) -> pl.DataFrame:
    """The feature matrix: keys then ``columns``, in that order, as Float64."""
    joined = join_on_keys(*frames)
    missing = [c for c in columns if c not in joined.columns]
    if missing:
        raise DataError(f"feature matrix lacks columns {missing}; an upstream feature node did not produce them")
    return joined.select(*KEYS, *(pl.col(c).cast(pl.Float64) for c in columns))


def assemble_training_set(features: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Features joined with the forward-return label on (date, instrument); rows without a label kept (null)."""
    if LABEL_COLUMN not in labels.columns:
        raise DataError(f"label frame lacks {LABEL_COLUMN!r}; columns are {labels.columns}")
    return join_on_keys(features, labels.select(*KEYS, LABEL_COLUMN))
