"""One entry point for daily bars, whatever the source. Pure, no Dagster.

The feature graph's ``market_bars`` node calls :func:`load_bars` with its configured source; every
source returns frames of :data:`~quant_alpha.market.schema.BARS_SCHEMA` in canonical order, and the
output is validated here, at the boundary, so no malformed bar reaches a feature.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from ml_platform import ConfigurationError, DataWindow
from quant_alpha.market.generator import SyntheticMarket
from quant_alpha.market.sample import load_sample_bars
from quant_alpha.market.schema import validate_bars


def _synthetic(window: DataWindow, seed: int, n_instruments: int) -> pl.DataFrame:
    return SyntheticMarket(seed=seed, n_instruments=n_instruments).bars(window)


def _sample(window: DataWindow, seed: int, n_instruments: int) -> pl.DataFrame:
    # The real sample is fixed: it has no seed and a universe of its five tickers.
    del seed, n_instruments
    return load_sample_bars(window)


_SOURCES: dict[str, Callable[[DataWindow, int, int], pl.DataFrame]] = {
    "synthetic": _synthetic,
    "sample": _sample,
}
#: Valid values of ``source``.
SOURCES: tuple[str, ...] = tuple(_SOURCES)


def load_bars(source: str, window: DataWindow, *, seed: int, n_instruments: int) -> pl.DataFrame:
    """Validated daily bars of ``source`` for every day of ``window``.

    Args:
        source: ``"synthetic"`` (the seeded :class:`~quant_alpha.market.generator.SyntheticMarket` with
            its default origin 2000-01-03) or ``"sample"`` (the bundled real sample, 2000-03-01..2013-03-01;
            ``seed`` and ``n_instruments`` do not apply to it).
        window: the days to load.
        seed: seed of the synthetic market.
        n_instruments: size of the synthetic universe.

    Returns:
        A frame of :data:`~quant_alpha.market.schema.BARS_SCHEMA` sorted by ``(date, instrument)``.

    Raises:
        ConfigurationError: an unknown source, or a bad seed or universe size for the synthetic source.
        WindowError: the window starts before the synthetic market's origin.
        DataError: the window lies outside the real sample, or a source produced malformed bars.

    Example:
        >>> load_bars("synthetic", DataWindow.parse("2012-01-03"), seed=7, n_instruments=5).height > 0
        True
    """
    loader = _SOURCES.get(source) if isinstance(source, str) else None
    if loader is None:
        raise ConfigurationError(f"unknown market data source {source!r}; valid sources are {list(SOURCES)}")
    return validate_bars(loader(window, seed, n_instruments))
