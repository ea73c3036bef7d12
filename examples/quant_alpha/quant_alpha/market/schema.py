"""The daily bars schema every market data source produces, and its validation. Pure, no Dagster.

A bar is one instrument on one trading day. Prices ``open``/``high``/``low``/``close`` are as traded
(unadjusted: a 2-for-1 split halves them); ``adj_close`` is adjusted for splits and dividends so that
the ratio of two consecutive ``adj_close`` values is the instrument's total return between the two
bars. Everything downstream computes returns from ``adj_close`` only. The canonical row order, used
everywhere in the project, is ``(date, instrument)``.
"""

from __future__ import annotations

import polars as pl

from ml_platform import DataError

#: Column names and dtypes of a bars frame, in canonical column order.
BARS_SCHEMA: pl.Schema = pl.Schema(
    {
        "date": pl.Date(),
        "instrument": pl.String(),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
        "adj_close": pl.Float64(),
        "volume": pl.Int64(),
    }
)
#: The canonical row order of bars (and of every frame keyed by day and instrument).
KEYS: tuple[str, str] = ("date", "instrument")
#: Columns that may never be null (``open``, ``high``, ``low`` and ``volume`` may be missing).
REQUIRED_VALUES: tuple[str, ...] = ("date", "instrument", "close", "adj_close")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")
#: Relative tolerance of the OHLC consistency checks (float noise from adjustments and rounding).
OHLC_TOLERANCE: float = 1e-9

_EXAMPLES = 3


def empty_bars() -> pl.DataFrame:
    """An empty frame with :data:`BARS_SCHEMA` (what a source returns for a span without trading)."""
    return pl.DataFrame(schema=BARS_SCHEMA)


def row_problems() -> dict[str, pl.Expr]:
    """One boolean expression per kind of impossible bar, true on the rows that have that problem.

    Keys describe the problem (they appear in error messages and load reports). Validation refuses
    a frame with any such row; a source of real data may instead drop them and report the counts.
    """
    top = pl.max_horizontal("open", "close")
    bottom = pl.min_horizontal("open", "close")
    return {
        "a null date, instrument, close or adj_close": pl.any_horizontal(
            [pl.col(name).is_null() for name in REQUIRED_VALUES]
        ),
        "a non-positive or non-finite price": pl.any_horizontal(
            [(~pl.col(name).is_finite() | (pl.col(name) <= 0)).fill_null(False) for name in PRICE_COLUMNS]
        ),
        "a negative volume": (pl.col("volume") < 0).fill_null(False),
        "a high below max(open, close) or a low above min(open, close)": (
            (pl.col("high") < top * (1 - OHLC_TOLERANCE)) | (pl.col("low") > bottom * (1 + OHLC_TOLERANCE))
        ).fill_null(False),
    }


def _examples(frame: pl.DataFrame, mask: pl.Expr) -> str:
    rows = frame.filter(mask).select(KEYS).head(_EXAMPLES).rows()
    return ", ".join(f"{day} {name}" for day, name in rows)


def _check_columns(frame: pl.DataFrame) -> None:
    missing = [name for name in BARS_SCHEMA if name not in frame.columns]
    extra = [name for name in frame.columns if name not in BARS_SCHEMA]
    if missing or extra:
        raise DataError(
            f"bars have the wrong columns: missing {missing}, unexpected {extra}; a bars frame has exactly "
            f"{list(BARS_SCHEMA)} (rename or drop columns at the source)"
        )
    wrong = {
        name: str(frame.schema[name]) for name, dtype in BARS_SCHEMA.items() if frame.schema[name] != dtype
    }
    if wrong:
        expected = {name: str(BARS_SCHEMA[name]) for name in wrong}
        raise DataError(
            f"bars columns have the wrong dtypes {wrong}; expected {expected} (cast them at the source)"
        )


def _check_rows(frame: pl.DataFrame) -> None:
    for problem, mask in row_problems().items():
        count = frame.select(mask.sum()).item()
        if count:
            raise DataError(
                f"bars have {count} row(s) with {problem}, e.g. at [{_examples(frame, mask)}]; "
                "repair or drop those rows at the source (prices must be positive and OHLC consistent)"
            )
    duplicated = pl.struct(*KEYS).is_duplicated()
    count = frame.select(duplicated.sum()).item()
    if count:
        raise DataError(
            f"bars have {count} rows sharing a (date, instrument) with another row, e.g. "
            f"[{_examples(frame, duplicated)}]; keep exactly one bar per instrument and day"
        )


def validate_bars(frame: pl.DataFrame) -> pl.DataFrame:
    """Check that ``frame`` is a well-formed bars frame and return it in canonical order.

    Args:
        frame: bars from any source.

    Returns:
        The same rows with the columns in :data:`BARS_SCHEMA` order, sorted by ``(date, instrument)``.

    Raises:
        DataError: naming the problem, for missing or extra columns, wrong dtypes, nulls in
            ``date``/``instrument``/``close``/``adj_close``, non-positive or non-finite prices, negative
            volume, a high below ``max(open, close)`` or a low above ``min(open, close)`` (beyond a
            relative tolerance of :data:`OHLC_TOLERANCE`), or two rows for the same instrument and day.

    Example:
        >>> validate_bars(empty_bars()).schema == BARS_SCHEMA
        True
    """
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"bars must be a polars DataFrame, got {type(frame).__name__}")
    _check_columns(frame)
    _check_rows(frame)
    return frame.select(list(BARS_SCHEMA)).sort(KEYS, maintain_order=True)
