"""Small synthetic training sets for the model tests (seeded, a few thousand rows at most)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from ml_platform.keys import FrameKeys
from ml_platform.models import ModelInputs

KEYS = FrameKeys("date", ("instrument",))
FEATURES = ("mom_5d", "mom_21d", "noise")
LABEL = "fwd_ret_1d"
INPUTS = ModelInputs(KEYS, FEATURES, LABEL)
#: The planted relation: label = 0.01 * mom_5d - 0.005 * mom_21d + noise; ``noise`` is unrelated.
PLANTED = {"mom_5d": 0.01, "mom_21d": -0.005, "noise": 0.0}

SetFactory = Callable[..., pl.DataFrame]


def make_set(n_days: int = 70, n_names: int = 12, seed: int = 7, noise: float = 0.002,
             null_fraction: float = 0.0) -> pl.DataFrame:
    """A training set sorted by (date, instrument) on consecutive calendar days from 2021-01-04.

    The last date's label is null, as at the end of a real window.
    """
    rng = np.random.default_rng(seed)
    n = n_days * n_names
    dates = [dt.date(2021, 1, 4) + dt.timedelta(days=i) for i in range(n_days) for _ in range(n_names)]
    names = [f"N{k:03d}" for _ in range(n_days) for k in range(n_names)]
    columns = {f: rng.normal(size=n) for f in FEATURES}
    label = sum(PLANTED[f] * columns[f] for f in FEATURES) + noise * rng.normal(size=n)
    frame = pl.DataFrame({"date": dates, "instrument": names, **columns, "fwd_ret_1d": label},
                         schema_overrides={"date": pl.Date})
    if null_fraction:
        frame = frame.with_columns(
            pl.when(pl.Series(rng.random(n) < null_fraction)).then(None).otherwise(pl.col(f)).alias(f)
            for f in FEATURES
        )
    last = frame["date"].max()
    return frame.with_columns(
        pl.when(pl.col("date") == last).then(None).otherwise(pl.col("fwd_ret_1d")).alias("fwd_ret_1d")
    )


def make_weekly_set(n_weeks: int = 40, n_tickers: int = 8, seed: int = 3) -> pl.DataFrame:
    """The same planted relation on other keys: ``week`` (Date, Mondays) and an integer ``ticker``, shuffled."""
    frame = make_set(n_days=n_weeks, n_names=n_tickers, seed=seed)
    weeks = frame["date"].rank("dense").cast(pl.Int64) - 1
    return frame.select(
        (pl.lit(dt.date(2021, 1, 4)) + pl.duration(weeks=weeks)).alias("week"),
        pl.col("instrument").str.slice(1).cast(pl.Int32).alias("ticker"),
        *FEATURES, LABEL,
    ).sample(fraction=1.0, shuffle=True, seed=seed)


@pytest.fixture
def synthetic_set() -> SetFactory:
    return make_set
