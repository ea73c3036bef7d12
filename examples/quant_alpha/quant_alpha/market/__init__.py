"""Market data: the daily bars schema, a deterministic synthetic market and a bundled real sample.

Pure, no Dagster. :func:`load_bars` is the one entry point the feature graph uses.
"""

from quant_alpha.market.generator import SyntheticMarket, clear_generator_cache, exchange_holidays
from quant_alpha.market.sample import (
    SAMPLE_COVERAGE,
    SampleLoadReport,
    load_sample_bars,
    parse_sample_csv,
    sample_load_report,
)
from quant_alpha.market.schema import BARS_SCHEMA, KEYS, empty_bars, row_problems, validate_bars
from quant_alpha.market.sources import SOURCES, load_bars

__all__ = [
    "BARS_SCHEMA",
    "KEYS",
    "SAMPLE_COVERAGE",
    "SOURCES",
    "SampleLoadReport",
    "SyntheticMarket",
    "clear_generator_cache",
    "empty_bars",
    "exchange_holidays",
    "load_bars",
    "load_sample_bars",
    "parse_sample_csv",
    "row_problems",
    "sample_load_report",
    "validate_bars",
]
