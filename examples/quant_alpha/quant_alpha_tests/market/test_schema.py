"""validate_bars: the bars contract every source is held to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import polars as pl
import pytest
from quant_alpha.market.schema import BARS_SCHEMA, empty_bars, validate_bars

from ml_platform import DataError

D1, D2 = dt.date(2012, 1, 3), dt.date(2012, 1, 4)


def good_bars() -> pl.DataFrame:
    """Three valid bars, deliberately out of canonical order."""
    return pl.DataFrame(
        {
            "date": [D2, D1, D1],
            "instrument": ["AAA", "BBB", "AAA"],
            "open": [10.0, 20.0, 9.5],
            "high": [10.5, 20.0, 10.1],
            "low": [9.8, 19.0, 9.4],
            "close": [10.2, 19.5, 10.0],
            "adj_close": [5.1, 19.5, 5.0],
            "volume": [1000, 0, 1200],
        },
        schema=BARS_SCHEMA,
    )


def test_valid_bars_come_back_sorted_by_date_then_instrument() -> None:
    out = validate_bars(good_bars())
    assert out.schema == BARS_SCHEMA
    assert out.select("date", "instrument").rows() == [(D1, "AAA"), (D1, "BBB"), (D2, "AAA")]
    assert out.filter(pl.col("instrument") == "BBB")["close"].item() == 19.5


def test_column_order_is_canonical_even_if_input_is_not() -> None:
    shuffled = good_bars().select(list(reversed(BARS_SCHEMA)))
    assert validate_bars(shuffled).columns == list(BARS_SCHEMA)


def test_empty_bars_are_valid() -> None:
    assert validate_bars(empty_bars()).height == 0


def test_open_high_low_and_volume_may_be_missing() -> None:
    frame = good_bars().with_columns(
        pl.when(pl.col("instrument") == "BBB").then(None).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "volume")
    )
    assert validate_bars(frame).height == 3


def test_float_noise_within_tolerance_is_accepted() -> None:
    frame = good_bars().with_columns(high=pl.max_horizontal("open", "close") * (1 - 1e-12))
    assert validate_bars(frame).height == 3


def _set(column: str, value: object) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def change(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            pl.when(pl.col("instrument") == "BBB").then(pl.lit(value)).otherwise(pl.col(column)).alias(column)
        )

    return change


BAD: dict[str, tuple[Callable[[pl.DataFrame], pl.DataFrame], str]] = {
    "missing column": (lambda f: f.drop("adj_close"), r"missing \['adj_close'\]"),
    "extra column": (lambda f: f.with_columns(vwap=pl.lit(1.0)), r"unexpected \['vwap'\]"),
    "wrong dtype": (lambda f: f.with_columns(pl.col("volume").cast(pl.Float64)), "wrong dtypes.*volume"),
    "date as text": (lambda f: f.with_columns(pl.col("date").cast(pl.String)), "wrong dtypes.*date"),
    "null close": (_set("close", None), "null date, instrument, close or adj_close"),
    "null adj_close": (_set("adj_close", None), "null date, instrument, close or adj_close"),
    "null instrument": (
        lambda f: f.with_columns(instrument=pl.lit(None, pl.String)),
        "null date, instrument",
    ),
    "zero price": (_set("low", 0.0), "non-positive or non-finite price"),
    "negative adj_close": (_set("adj_close", -1.0), "non-positive or non-finite price"),
    "NaN price": (_set("open", float("nan")), "non-positive or non-finite price"),
    "negative volume": (_set("volume", -5), "negative volume"),
    "high below close": (_set("high", 19.4), "high below max"),
    "low above open": (_set("low", 20.0), "low above min"),
    "duplicate": (lambda f: pl.concat([f, f.head(1)]), r"sharing a \(date, instrument\)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_bars_raise_a_data_error_naming_the_problem(case: str) -> None:
    change, message = BAD[case]
    with pytest.raises(DataError, match=message):
        validate_bars(change(good_bars()))


def test_the_error_names_an_offending_row() -> None:
    with pytest.raises(DataError, match="2012-01-03 BBB"):
        validate_bars(_set("high", 19.4)(good_bars()))


def test_a_non_frame_is_refused() -> None:
    with pytest.raises(DataError, match="polars DataFrame"):
        validate_bars(good_bars().to_dicts())  # type: ignore[arg-type]
