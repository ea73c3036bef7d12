"""The bundled real sample: daily bars of five US stocks, 2000-03-01..2013-03-01. Pure, no Dagster.

The data is the ``stocks.csv.gz`` file shipped inside the ``bokeh-sampledata`` package (a declared
dependency, so no network access): Quandl WIKI prices for AAPL, FB, GOOG, IBM and MSFT, which Quandl
declared public domain. Columns ``Ticker, Date, Open, High, Low, Close, Volume, Adj Close``; open, high,
low, close and volume are as traded (unadjusted), ``Adj Close`` is split- and dividend-adjusted.

Real-data facts the loader and everything downstream must respect:

* **Splits and special dividends.** AAPL split 2:1 on 2000-06-21 and 2005-02-28, MSFT 2:1 on
  2003-02-18: the raw close halves while ``adj_close`` moves by the day's return; MSFT's $3 special
  dividend (ex 2004-11-15) drops the raw close about 9%. Returns are computed from ``adj_close`` only.
* **Backward adjustment.** The source adjusted ``Adj Close`` backwards from its own present (after
  2013), so its *level* reflects later corporate actions; its *ratios* (returns) do not. That is why no
  feature here uses a price level.
* **Gaps and short histories.** Market closures (2001-09-11..14, 2012-10-29..30) leave multi-day gaps;
  GOOG starts 2004-08-19 and FB 2012-05-18.
* **Impossible rows** (a null key/close, a non-positive price, a negative volume, inconsistent OHLC)
  are *dropped*, counted per reason, logged as a warning and reported by :func:`sample_load_report`.
  Exact duplicate rows are dropped the same way; two *different* rows for one ticker and day cannot
  be resolved and raise :class:`~ml_platform.errors.DataError`. The shipped file has none of these.

The file is parsed once per process.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

import polars as pl

from ml_platform import DataError, DataWindow, WindowError
from quant_alpha.market.schema import BARS_SCHEMA, KEYS, row_problems, validate_bars

logger = logging.getLogger(__name__)

#: The days the bundled sample covers (first and last bar of any ticker).
SAMPLE_COVERAGE = DataWindow(dt.date(2000, 3, 1), dt.date(2013, 3, 1))
SAMPLE_INSTRUMENTS: tuple[str, ...] = ("AAPL", "FB", "GOOG", "IBM", "MSFT")
_PACKAGE, _RESOURCE = "bokeh_sampledata", ("_data", "stocks.csv.gz")
_CSV_SCHEMA = {
    "Ticker": pl.String,
    "Date": pl.String,
    "Open": pl.Float64,
    "High": pl.Float64,
    "Low": pl.Float64,
    "Close": pl.Float64,
    "Volume": pl.Int64,
    "Adj Close": pl.Float64,
}
_RENAME = {
    "Ticker": "instrument",
    "Date": "date",
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Volume": "volume",
    "Adj Close": "adj_close",
}
_DUPLICATE = "an exact duplicate of another row"


@dataclass(frozen=True)
class SampleLoadReport:
    """What parsing the bundled sample found.

    Attributes:
        path: the CSV file read.
        rows_read: data rows in the file.
        rows_kept: rows in the cleaned bars.
        dropped: rows dropped, per reason (only reasons that occurred); a row with several problems
            counts once, under the first in :func:`~quant_alpha.market.schema.row_problems` order.
    """

    path: str
    rows_read: int
    rows_kept: int
    dropped: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dropped", MappingProxyType(dict(self.dropped)))


def sample_path() -> Path:
    """Path of ``stocks.csv.gz`` inside the installed ``bokeh-sampledata`` package."""
    try:
        root = importlib.resources.files(_PACKAGE)
    except ModuleNotFoundError as exc:
        raise DataError(
            "the bundled real sample needs the 'bokeh-sampledata' package; install the locked environment "
            "(uv sync --frozen)"
        ) from exc
    path = Path(str(root.joinpath(*_RESOURCE)))
    if not path.is_file():
        raise DataError(f"the sample file {path} is missing from bokeh-sampledata; reinstall that package")
    return path


def _read(path: Path) -> pl.DataFrame:
    try:
        header = pl.read_csv(path, n_rows=0).columns
        if header != list(_CSV_SCHEMA):
            raise DataError(
                f"{path} has columns {header}, expected {list(_CSV_SCHEMA)}; the bokeh-sampledata file "
                "changed format, pin a compatible version"
            )
        raw = pl.read_csv(path, schema=_CSV_SCHEMA)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(f"cannot read the sample CSV {path}: {exc}") from exc
    try:
        dated = raw.with_columns(pl.col("Date").str.to_date("%Y-%m-%d", strict=True))
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"the sample CSV {path} has a Date that is not YYYY-MM-DD: {exc}") from exc
    return dated.rename(_RENAME).select(list(BARS_SCHEMA))


def _clean(frame: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, dict[str, int]]:
    dropped: dict[str, int] = {}
    problems = row_problems()
    # Each dropped row is counted once, under the first problem it has.
    flags = frame.select(**{f"p{i}": mask for i, mask in enumerate(problems.values())})
    seen = pl.Series(values=[False] * frame.height, dtype=pl.Boolean)
    for i, reason in enumerate(problems):
        fresh = flags[f"p{i}"] & ~seen
        if fresh.any():
            dropped[reason] = int(fresh.sum())
        seen = seen | fresh
    keep = ~pl.any_horizontal(list(problems.values()))
    cleaned = frame.filter(keep)
    unique = cleaned.unique(maintain_order=True)
    if unique.height != cleaned.height:
        dropped[_DUPLICATE] = cleaned.height - unique.height
    clash = unique.filter(pl.struct(*KEYS).is_duplicated())
    if clash.height:
        examples = ", ".join(
            f"{day} {name}" for day, name in clash.select(KEYS).unique().head(3).rows()
        )
        raise DataError(
            f"the sample CSV {path} holds conflicting rows for the same ticker and day "
            f"(e.g. {examples}); "
            "there is no way to tell which is right, so the sample cannot be used"
        )
    return unique, dropped


def parse_sample_csv(path: Path) -> tuple[pl.DataFrame, SampleLoadReport]:
    """Parse a CSV in the sample's format into validated bars, dropping impossible rows.

    Args:
        path: a (possibly gzipped) CSV with the columns ``Ticker, Date, Open, High, Low, Close, Volume,
            Adj Close``.

    Returns:
        The bars (canonical order) and a report of what was read and dropped.

    Raises:
        DataError: the file is unreadable, has other columns or a malformed date, or holds two different
            rows for one ticker and day.
    """
    raw = _read(path)
    cleaned, dropped = _clean(raw, path)
    if dropped:
        logger.warning(
            "sample %s: dropped %d impossible row(s) of %d: %s",
            path,
            sum(dropped.values()),
            raw.height,
            dropped,
        )
    bars = validate_bars(cleaned)
    return bars, SampleLoadReport(str(path), raw.height, bars.height, dropped)


@lru_cache(maxsize=1)
def _parsed() -> tuple[pl.DataFrame, SampleLoadReport]:
    path = sample_path()
    bars, report = parse_sample_csv(path)
    first, last = bars["date"].min(), bars["date"].max()
    if (first, last) != (SAMPLE_COVERAGE.start, SAMPLE_COVERAGE.end):
        raise DataError(
            f"the bundled sample {path} covers {first}..{last}, not the expected {SAMPLE_COVERAGE}; "
            "the bokeh-sampledata package changed, pin a compatible version"
        )
    logger.debug("bundled sample parsed: %s", report)
    return bars, report


def sample_load_report() -> SampleLoadReport:
    """How the bundled sample was parsed: rows read, kept and dropped per reason."""
    return _parsed()[1]


def load_sample_bars(window: DataWindow) -> pl.DataFrame:
    """Real daily bars (:data:`~quant_alpha.market.schema.BARS_SCHEMA`) of the sample within ``window``.

    A window partly outside :data:`SAMPLE_COVERAGE` returns the days it shares with the coverage; a
    day without trading returns an empty frame.

    Raises:
        DataError: the window lies entirely outside :data:`SAMPLE_COVERAGE`, or the file is unusable.

    Example:
        >>> bars = load_sample_bars(DataWindow.parse("2005-02-25..2005-02-28"))
        >>> bars.filter(pl.col("instrument") == "AAPL")["close"].to_list()
        [88.99, 44.86]
    """
    if not isinstance(window, DataWindow):
        raise WindowError(f"expected a DataWindow, got {type(window).__name__}")
    if window.end < SAMPLE_COVERAGE.start or window.start > SAMPLE_COVERAGE.end:
        raise DataError(
            f"window {window} lies outside the bundled real sample, which covers {SAMPLE_COVERAGE} "
            f"({', '.join(SAMPLE_INSTRUMENTS)}); choose a window overlapping those days "
            "or the synthetic source"
        )
    bars, _ = _parsed()
    return bars.filter(pl.col("date").is_between(window.start, window.end))
