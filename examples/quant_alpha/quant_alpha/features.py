"""The platform's feature graph: market data, point-in-time quant features, label and training set.

Each node is a thin declaration over a pure function in :mod:`quant_alpha.compute` or
:mod:`quant_alpha.market`; editing any function a node reaches changes that node's code hash and the
graph hash of every node downstream.
"""

from __future__ import annotations

import os
from dataclasses import replace

import polars as pl

from ml_platform import DataWindow, FeatureGraph, FrameKeys, Upstream, feature
from quant_alpha import compute
from quant_alpha.market.schema import KEYS
from quant_alpha.market.sources import load_bars
from quant_alpha.matrix import assemble_matrix, assemble_training_set, join_on_keys

MOMENTUM_LOOKBACKS = (5, 21, 63)
VOL_WINDOW = 21
VOLUME_WINDOW = 63
#: Columns the rank node ranks, named after the windows above (compute names them ``<kind>_<N>d``).
RANKED = (*(f"mom_{n}d" for n in MOMENTUM_LOOKBACKS), f"vol_{VOL_WINDOW}d", f"volz_{VOLUME_WINDOW}d")
#: Model input columns, in the order the deploy contract pins.
FEATURE_COLUMNS: tuple[str, ...] = (*RANKED, *(f"rank_{c}" for c in RANKED))
_days = compute.trading_bars_to_calendar_days


@feature(params={"source": "sample", "seed": 7, "n_instruments": 40}, seed_params=("seed",), group="market")
def market_bars(window: DataWindow, source: str, seed: int, n_instruments: int) -> pl.DataFrame:
    """Daily OHLCV bars per instrument: the seeded synthetic universe or the bundled real sample."""
    return load_bars(source, window, seed=seed, n_instruments=n_instruments)


@feature(upstream={"bars": Upstream("market_bars", lookback_days=_days(1))})
def daily_returns(bars: pl.DataFrame) -> pl.DataFrame:
    """Log return of the adjusted close against the instrument's previous bar."""
    return compute.daily_returns(bars)


@feature(upstream={"bars": Upstream("market_bars", lookback_days=_days(max(MOMENTUM_LOOKBACKS)))})
def momentum(bars: pl.DataFrame) -> pl.DataFrame:
    """Trailing log returns over several lookbacks (trading bars)."""
    return compute.momentum(bars, lookbacks=MOMENTUM_LOOKBACKS)


@feature(upstream={"returns": Upstream("daily_returns", lookback_days=_days(VOL_WINDOW))})
def realized_vol(returns: pl.DataFrame) -> pl.DataFrame:
    """Annualized realized volatility of daily returns."""
    return compute.realized_volatility(returns, window=VOL_WINDOW)


@feature(upstream={"bars": Upstream("market_bars", lookback_days=_days(VOLUME_WINDOW + 1))})
def volume_zscore(bars: pl.DataFrame) -> pl.DataFrame:
    """Z-score of today's log volume against the previous bars."""
    return compute.volume_zscore(bars, window=VOLUME_WINDOW)


@feature(upstream={"mom": "momentum", "vol": "realized_vol", "volz": "volume_zscore"})
def cross_sectional_ranks(mom: pl.DataFrame, vol: pl.DataFrame, volz: pl.DataFrame) -> pl.DataFrame:
    """Per-day percentile ranks of every feature across the universe."""
    return compute.cross_sectional_ranks(join_on_keys(mom, vol, volz), columns=RANKED)


@feature(upstream={"mom": "momentum", "vol": "realized_vol", "volz": "volume_zscore", "ranks": "cross_sectional_ranks"})
def feature_matrix(mom: pl.DataFrame, vol: pl.DataFrame, volz: pl.DataFrame, ranks: pl.DataFrame) -> pl.DataFrame:
    """The model's input features for each day, in contract column order."""
    return assemble_matrix((mom, vol, volz, ranks), FEATURE_COLUMNS)


@feature(upstream={"bars": Upstream("market_bars", lookahead_days=_days(1))}, label=True, group="labels")
def forward_return(bars: pl.DataFrame) -> pl.DataFrame:
    """Label: log return from today's close to the instrument's next bar (null until that bar exists)."""
    return compute.forward_return(bars, horizon=1)


@feature(upstream={"features": "feature_matrix", "labels": "forward_return"}, partitioned=False, group="training")
def training_set(features: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """Features and label over a configured window: what a model is trained and validated on."""
    return assemble_training_set(features, labels)


FEATURE_NODES = (
    market_bars, daily_returns, momentum, realized_vol, volume_zscore,
    cross_sectional_ranks, feature_matrix, forward_return, training_set,
)
#: The model's feature graph hash is the graph hash of this node.
MODEL_INPUT_NODE = "feature_matrix"
LABEL_NODE = "forward_return"
TRAINING_NODE = "training_set"


def build_graph(source: str | None = None, project_root: str | os.PathLike[str] | None = None) -> FeatureGraph:
    """The example's feature graph over a market data source, hashed over the ``quant_alpha`` package.

    The source is a declared parameter of ``market_bars``, so it is part of that node's code hash and
    of every graph hash downstream: features computed from the synthetic universe and from the real
    sample never share a graph hash, and a model trained on one is refused on the other.
    ``project_root``: the checkout whose git commit and ``uv.lock`` the artefacts record (default: found
    from the package).
    """
    nodes = FEATURE_NODES
    if source is not None and source != market_bars.params["source"]:
        nodes = (replace(market_bars, params={**market_bars.params, "source": source}), *FEATURE_NODES[1:])
    return FeatureGraph(nodes, keys=FrameKeys(*KEYS[:1], KEYS[1:]), project_packages=("quant_alpha",),
                        project_root=project_root)
