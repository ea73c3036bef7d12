"""The bundled real sample (bokeh-sampledata's Quandl WIKI prices) and the source dispatch."""

from __future__ import annotations

import datetime as dt
import gzip
import math
from pathlib import Path

import polars as pl
import pytest
from quant_alpha.compute import daily_returns
from quant_alpha.market.generator import SyntheticMarket, exchange_holidays
from quant_alpha.market.sample import (
    SAMPLE_COVERAGE,
    load_sample_bars,
    parse_sample_csv,
    sample_load_report,
    sample_path,
)
from quant_alpha.market.schema import BARS_SCHEMA
from quant_alpha.market.sources import SOURCES, load_bars

from ml_platform import ConfigurationError, DataError, DataWindow, WindowError

HEADER = "Ticker,Date,Open,High,Low,Close,Volume,Adj Close"


def csv_rows(ticker: str, *days: str) -> dict[str, list[str]]:
    """The raw CSV lines of the bundled file for ``ticker`` on ``days``, split into fields."""
    with gzip.open(sample_path(), "rt", encoding="utf-8") as handle:
        wanted = {f"{ticker},{day}," for day in days}
        return {
            line.split(",")[1]: line.strip().split(",")
            for line in handle
            if line[: len(ticker) + 12] in wanted
        }


def test_real_aapl_prices_come_out_as_in_the_csv() -> None:
    raw = csv_rows("AAPL", "2005-02-25")["2005-02-25"]
    bars = load_sample_bars(DataWindow.parse("2005-02-25"))
    assert bars.schema == BARS_SCHEMA
    assert bars["instrument"].to_list() == ["AAPL", "GOOG", "IBM", "MSFT"]
    row = bars.filter(pl.col("instrument") == "AAPL").row(0, named=True)
    assert row == {
        "date": dt.date(2005, 2, 25),
        "instrument": "AAPL",
        "open": float(raw[2]),
        "high": float(raw[3]),
        "low": float(raw[4]),
        "close": float(raw[5]),
        "adj_close": float(raw[7]),
        "volume": int(raw[6]),
    }
    assert row["close"] == 88.99


def test_the_aapl_2005_split_halves_the_close_but_not_the_return() -> None:
    bars = load_sample_bars(DataWindow.parse("2005-02-25..2005-02-28")).filter(pl.col("instrument") == "AAPL")
    before, after = bars["close"].to_list()
    assert after / before == pytest.approx(0.5, abs=0.01)
    returns = daily_returns(bars)
    ret = returns.filter(pl.col("date") == dt.date(2005, 2, 28))["ret_1d"].item()
    raw = csv_rows("AAPL", "2005-02-25", "2005-02-28")
    assert ret == pytest.approx(
        math.log(float(raw["2005-02-28"][7]) / float(raw["2005-02-25"][7])), rel=1e-12
    )
    assert abs(ret) < 0.05


def test_fb_is_absent_before_its_listing_and_goog_before_its_ipo() -> None:
    early = load_sample_bars(DataWindow.parse("2000-03-01..2011-12-31"))
    assert "FB" not in set(early["instrument"])
    first = load_sample_bars(SAMPLE_COVERAGE).group_by("instrument").agg(pl.col("date").min())
    assert dict(first.iter_rows()) == {
        "AAPL": dt.date(2000, 3, 1),
        "IBM": dt.date(2000, 3, 1),
        "MSFT": dt.date(2000, 3, 1),
        "GOOG": dt.date(2004, 8, 19),
        "FB": dt.date(2012, 5, 18),
    }


def test_coverage_matches_the_file_and_nothing_is_dropped() -> None:
    bars = load_sample_bars(SAMPLE_COVERAGE)
    assert (bars["date"].min(), bars["date"].max()) == (SAMPLE_COVERAGE.start, SAMPLE_COVERAGE.end)
    report = sample_load_report()
    assert report.rows_read == report.rows_kept == bars.height == 12154
    assert dict(report.dropped) == {}


def test_windows_outside_the_coverage_raise_and_partial_ones_are_trimmed() -> None:
    with pytest.raises(DataError, match=r"covers 2000-03-01\.\.2013-03-01"):
        load_sample_bars(DataWindow.parse("2013-03-04..2013-06-28"))
    with pytest.raises(DataError, match="outside the bundled real sample"):
        load_sample_bars(DataWindow.parse("1999-01-04..2000-02-29"))
    partial = load_sample_bars(DataWindow.parse("2013-02-25..2013-03-15"))
    assert partial["date"].max() == dt.date(2013, 3, 1) and partial["date"].min() == dt.date(2013, 2, 25)
    weekend = load_sample_bars(DataWindow.parse("2010-06-05..2010-06-06"))
    assert weekend.height == 0 and weekend.schema == BARS_SCHEMA
    with pytest.raises(WindowError):
        load_sample_bars("2010-06-07")  # type: ignore[arg-type]


def test_exchange_holiday_rules_reproduce_the_real_calendar() -> None:
    """Every weekday without real bars is a rule holiday or one of the known unscheduled closures."""
    traded = set(load_sample_bars(SAMPLE_COVERAGE)["date"])
    weekdays = {day for day in SAMPLE_COVERAGE if day.weekday() < 5}
    holidays = {h for year in range(2000, 2014) for h in exchange_holidays(year)}
    assert not traded & holidays
    unscheduled = {dt.date(2001, 9, d) for d in (11, 12, 13, 14)} | {
        dt.date(2004, 6, 11),
        dt.date(2007, 1, 2),
        dt.date(2012, 10, 29),
        dt.date(2012, 10, 30),
    }
    assert weekdays - traded - holidays == unscheduled


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def test_impossible_rows_are_dropped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_csv(
        tmp_path / "stocks.csv",
        [
            "AAA,2010-01-04,10.0,10.5,9.5,10.2,1000,10.2",
            "AAA,2010-01-05,10.0,10.5,9.5,-1.0,1000,10.2",  # negative close
            "AAA,2010-01-06,10.0,9.0,9.5,10.2,1000,10.2",  # high below open and close
            "AAA,2010-01-07,10.0,10.5,9.5,10.2,-3,10.2",  # negative volume
            "AAA,2010-01-08,10.0,10.5,9.5,,1000,10.2",  # missing close
            "BBB,2010-01-04,20.0,21.0,19.0,20.5,500,20.5",
            "BBB,2010-01-04,20.0,21.0,19.0,20.5,500,20.5",  # exact duplicate
        ],
    )
    with caplog.at_level("WARNING", logger="quant_alpha.market.sample"):
        bars, report = parse_sample_csv(path)
    assert bars.select("date", "instrument").rows() == [
        (dt.date(2010, 1, 4), "AAA"),
        (dt.date(2010, 1, 4), "BBB"),
    ]
    assert (report.rows_read, report.rows_kept) == (7, 2)
    assert dict(report.dropped) == {
        "a non-positive or non-finite price": 1,
        "a high below max(open, close) or a low above min(open, close)": 1,
        "a negative volume": 1,
        "a null date, instrument, close or adj_close": 1,
        "an exact duplicate of another row": 1,
    }
    assert "dropped 5 impossible row(s) of 7" in caplog.text


def test_conflicting_rows_and_malformed_files_raise(tmp_path: Path) -> None:
    clash = write_csv(
        tmp_path / "clash.csv",
        [
            "AAA,2010-01-04,10.0,10.5,9.5,10.2,1000,10.2",
            "AAA,2010-01-04,10.0,10.5,9.5,10.3,1000,10.3",
        ],
    )
    with pytest.raises(DataError, match="conflicting rows .* 2010-01-04 AAA"):
        parse_sample_csv(clash)
    bad_date = write_csv(tmp_path / "date.csv", ["AAA,04/01/2010,10.0,10.5,9.5,10.2,1000,10.2"])
    with pytest.raises(DataError, match="not YYYY-MM-DD"):
        parse_sample_csv(bad_date)
    other = tmp_path / "other.csv"
    other.write_text("Ticker,Day,Close\nAAA,2010-01-04,1.0\n", encoding="utf-8")
    with pytest.raises(DataError, match="changed format"):
        parse_sample_csv(other)


def test_load_bars_dispatches_and_validates() -> None:
    window = DataWindow.parse("2005-02-25..2005-03-04")
    assert SOURCES == ("synthetic", "sample")
    assert load_bars("sample", window, seed=1, n_instruments=2).equals(load_sample_bars(window))
    synthetic = load_bars("synthetic", window, seed=4, n_instruments=6)
    assert synthetic.equals(SyntheticMarket(seed=4, n_instruments=6).bars(window))
    assert synthetic.height > 0 and synthetic.schema == BARS_SCHEMA


@pytest.mark.parametrize("source", ["yahoo", "", "Synthetic", None])
def test_unknown_sources_list_the_valid_ones(source: object) -> None:
    with pytest.raises(ConfigurationError, match=r"valid sources are \['synthetic', 'sample'\]"):
        load_bars(source, DataWindow.parse("2005-02-25"), seed=1, n_instruments=2)  # type: ignore[arg-type]


def test_load_bars_passes_on_window_and_setting_errors() -> None:
    with pytest.raises(WindowError):
        load_bars("synthetic", DataWindow.parse("1999-06-01"), seed=1, n_instruments=2)
    with pytest.raises(ConfigurationError):
        load_bars("synthetic", DataWindow.parse("2001-06-01"), seed=1, n_instruments=0)
    with pytest.raises(DataError):
        load_bars("sample", DataWindow.parse("2020-06-01"), seed=1, n_instruments=2)
