"""team_b's feature graph over its own prices file (business days, keyed by session and ticker)."""

from __future__ import annotations

from importlib import resources

import polars as pl

from ml_platform import DataWindow, FeatureGraph, FrameKeys, Upstream, feature

KEYS = FrameKeys("session", ("ticker",))
MOMENTUM_SESSIONS = 10
VOL_SESSIONS = 20


def _by_ticker(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("ticker", "session")


@feature(params={"source": "prices.csv"}, group="market")
def quotes(window: DataWindow, source: str) -> pl.DataFrame:
    """Closing prices per ticker and session, as delivered in the team's file."""
    frame = pl.read_csv(str(resources.files("team_b").joinpath("data", source)), try_parse_dates=True)
    return frame.filter(pl.col("session").is_between(window.start, window.end))


@feature(upstream={"q": Upstream("quotes", lookback=1)})
def ret_1(q: pl.DataFrame) -> pl.DataFrame:
    """One-session log return."""
    q = _by_ticker(q)
    return q.select("session", "ticker", (pl.col("px") / pl.col("px").shift(1).over("ticker")).log().alias("ret_1"))


@feature(upstream={"q": Upstream("quotes", lookback=MOMENTUM_SESSIONS)})
def momentum(q: pl.DataFrame) -> pl.DataFrame:
    """Log return over the last MOMENTUM_SESSIONS sessions."""
    q = _by_ticker(q)
    past = pl.col("px").shift(MOMENTUM_SESSIONS).over("ticker")
    return q.select("session", "ticker", (pl.col("px") / past).log().alias("mom"))


@feature(upstream={"r": Upstream("ret_1", lookback=VOL_SESSIONS)})
def volatility(r: pl.DataFrame) -> pl.DataFrame:
    """Rolling standard deviation of one-session returns."""
    r = _by_ticker(r)
    vol = pl.col("ret_1").rolling_std(VOL_SESSIONS, min_samples=VOL_SESSIONS // 2).over("ticker")
    return r.select("session", "ticker", vol.alias("vol"))


@feature(upstream={"m": "momentum", "v": "volatility"})
def model_inputs(m: pl.DataFrame, v: pl.DataFrame) -> pl.DataFrame:
    """What the model scores: momentum and volatility per ticker and session."""
    return m.join(v, on=["session", "ticker"], how="left").select("session", "ticker", "mom", "vol")


@feature(upstream={"q": Upstream("quotes", lookahead=1)}, label=True, group="labels")
def next_return(q: pl.DataFrame) -> pl.DataFrame:
    """Label: log return to the next session (null until it exists)."""
    q = _by_ticker(q)
    return q.select("session", "ticker", (pl.col("px").shift(-1).over("ticker") / pl.col("px")).log().alias("fwd"))


@feature(upstream={"x": "model_inputs", "y": "next_return"}, partitioned=False, group="training")
def train_rows(x: pl.DataFrame, y: pl.DataFrame) -> pl.DataFrame:
    """Inputs and label over a window."""
    return x.join(y, on=["session", "ticker"], how="left")


def build_graph() -> FeatureGraph:
    return FeatureGraph([quotes, ret_1, momentum, volatility, model_inputs, next_return, train_rows], keys=KEYS)
