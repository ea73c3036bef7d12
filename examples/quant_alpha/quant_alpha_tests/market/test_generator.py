"""SyntheticMarket: deterministic, window-independent, realistic daily bars."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quant_alpha.compute import daily_returns, forward_return, momentum
from quant_alpha.market.generator import SyntheticMarket, clear_generator_cache, exchange_holidays
from quant_alpha.market.schema import BARS_SCHEMA, validate_bars

from ml_platform import ConfigurationError, DataWindow, WindowError

LONG = DataWindow.parse("2000-01-03..2013-12-31")
SEED = 7


@pytest.fixture(scope="module")
def long_bars() -> pl.DataFrame:
    return SyntheticMarket(seed=SEED).bars(LONG)


def with_previous(bars: pl.DataFrame) -> pl.DataFrame:
    """Each bar with the instrument's previous bar's close and adj_close."""
    prev = [
        pl.col(c).shift(1).over("instrument", order_by="date").alias(f"prev_{c}")
        for c in ("close", "adj_close")
    ]
    return bars.with_columns(prev).drop_nulls("prev_close")


def test_bars_follow_the_schema_and_canonical_order(long_bars: pl.DataFrame) -> None:
    assert long_bars.schema == BARS_SCHEMA
    assert validate_bars(long_bars).equals(long_bars)
    assert set(long_bars["instrument"].unique()) <= set(SyntheticMarket(seed=SEED).instruments)
    assert SyntheticMarket(seed=SEED, n_instruments=3).instruments == ("SYN001", "SYN002", "SYN003")


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    window = DataWindow.parse("2003-06-02..2004-03-31")
    clear_generator_cache()
    first = SyntheticMarket(seed=11, n_instruments=12).bars(window)
    clear_generator_cache()
    again = SyntheticMarket(seed=11, n_instruments=12).bars(window)
    other = SyntheticMarket(seed=12, n_instruments=12).bars(window)
    assert first.height > 0
    assert first.equals(again)
    assert first.to_arrow() == again.to_arrow()
    assert not first.equals(other)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    a=st.dates(dt.date(2000, 1, 3), dt.date(2003, 12, 31)),
    b=st.dates(dt.date(2000, 1, 3), dt.date(2003, 12, 31)),
    span_a=st.integers(0, 500),
    span_b=st.integers(0, 500),
)
def test_a_day_has_the_same_bars_whatever_window_asked_for_it(
    a: dt.date, b: dt.date, span_a: int, span_b: int
) -> None:
    first = DataWindow(a, a + dt.timedelta(days=span_a))
    second = DataWindow(b, b + dt.timedelta(days=span_b))
    market = SyntheticMarket(seed=5, n_instruments=6)
    clear_generator_cache()  # each window is generated from scratch, not served from the other's cache
    bars_a = market.bars(first)
    clear_generator_cache()
    bars_b = market.bars(second)
    lo, hi = max(first.start, second.start), min(first.end, second.end)
    overlap = pl.col("date").is_between(lo, hi)
    assert bars_a.filter(overlap).equals(bars_b.filter(overlap))


def test_single_day_partitions_reassemble_the_range() -> None:
    market = SyntheticMarket(seed=5, n_instruments=6)
    window = DataWindow.parse("2001-12-24..2002-01-08")
    days = [market.bars(DataWindow(day, day)) for day in window]
    assert pl.concat(days).equals(market.bars(window))


def test_an_instrument_does_not_depend_on_the_universe_size() -> None:
    window = DataWindow.parse("2002-01-01..2002-12-31")
    small = SyntheticMarket(seed=3, n_instruments=4).bars(window)
    large = SyntheticMarket(seed=3, n_instruments=30).bars(window)
    assert small.equals(large.filter(pl.col("instrument").is_in(small["instrument"].unique().implode())))


def test_an_origin_at_year_end_gives_a_one_day_first_block() -> None:
    market = SyntheticMarket(seed=2, n_instruments=5, origin=dt.date(2004, 12, 31))
    window = DataWindow.parse("2004-12-31..2005-01-31")
    bars = market.bars(window)
    assert bars["date"].min() == dt.date(2004, 12, 31)
    assert pl.concat([market.bars(DataWindow(d, d)) for d in window]).equals(bars)


def test_calendar_has_no_weekends_holidays_or_closures(long_bars: pl.DataFrame) -> None:
    market = SyntheticMarket(seed=SEED)
    days = set(long_bars["date"].unique())
    assert days == set(market.trading_days(LONG))
    assert all(day.weekday() < 5 for day in days)
    holidays = {h for year in range(2000, 2014) for h in exchange_holidays(year)}
    assert not days & holidays
    closures = set(market.closures(LONG))
    assert closures and not days & closures
    assert all(day.weekday() < 5 and day not in holidays for day in closures)


@pytest.mark.parametrize(
    ("year", "included", "excluded"),
    [
        (2004, {dt.date(2004, 7, 5), dt.date(2004, 12, 24), dt.date(2004, 4, 9)}, {dt.date(2004, 7, 2)}),
        (2005, {dt.date(2005, 12, 26), dt.date(2005, 11, 24)}, {dt.date(2005, 12, 23)}),
        (2011, {dt.date(2011, 1, 17), dt.date(2011, 4, 22), dt.date(2011, 5, 30)}, {dt.date(2010, 12, 31)}),
        (2022, {dt.date(2022, 6, 20), dt.date(2022, 1, 17)}, {dt.date(2021, 12, 31)}),
        (2012, {dt.date(2012, 1, 2), dt.date(2012, 9, 3)}, {dt.date(2012, 6, 19)}),
    ],
)
def test_holiday_rules_observe_weekend_dates(
    year: int, included: set[dt.date], excluded: set[dt.date]
) -> None:
    assert included <= exchange_holidays(year)
    assert not excluded & (exchange_holidays(year - 1) | exchange_holidays(year))


def test_returns_are_fat_tailed_with_two_volatility_regimes(long_bars: pl.DataFrame) -> None:
    returns = daily_returns(long_bars).drop_nulls()["ret_1d"].to_numpy()
    centred = returns - returns.mean()
    kurtosis = (centred**4).mean() / (centred**2).mean() ** 2
    assert kurtosis > 3.0
    regimes = SyntheticMarket(seed=SEED).regimes(LONG)
    assert 0.03 < regimes["stressed"].mean() < 0.5
    market = daily_returns(long_bars).group_by("date").agg(pl.col("ret_1d").mean().abs().alias("move"))
    by_regime = market.join(regimes, on="date").group_by("stressed").agg(pl.col("move").mean())
    moves = dict(by_regime.iter_rows())
    assert moves[True] > 1.5 * moves[False]


def test_listings_delistings_and_halts_happen(long_bars: pl.DataFrame) -> None:
    market = SyntheticMarket(seed=SEED)
    days = np.array(market.trading_days(LONG))
    life = long_bars.group_by("instrument").agg(
        pl.col("date").min().alias("first"), pl.col("date").max().alias("last"), pl.len().alias("bars")
    )
    assert life.filter(pl.col("first") > LONG.start).height > 0, "no listing after origin"
    assert life.filter(pl.col("last") < LONG.end).height > 0, "no delisting"
    halted = [
        name
        for name, first, last, bars in life.iter_rows()
        if bars < int(((days >= first) & (days <= last)).sum())
    ]
    assert halted, "no instrument misses a trading day between its first and last bar"


def test_splits_jump_the_raw_close_but_not_adj_close(long_bars: pl.DataFrame) -> None:
    jumps = with_previous(long_bars).with_columns(
        raw=pl.col("close") / pl.col("prev_close"), adj=pl.col("adj_close") / pl.col("prev_adj_close")
    )
    splits = jumps.filter((pl.col("raw") / pl.col("adj") - 1).abs() > 0.2)
    assert splits.height > 0
    ratios = (splits["raw"] / splits["adj"]).to_numpy()
    nearest = np.array([min((0.5, 1 / 3, 2 / 3), key=lambda r: abs(r - x)) for x in ratios])
    assert np.allclose(ratios, nearest, rtol=0.02)
    first_bars = long_bars.group_by("instrument").agg(pl.all().sort_by("date").first())
    assert (first_bars["close"] == first_bars["adj_close"]).all(), (
        "adj_close is forward-adjusted from the first bar"
    )


def test_ohlc_is_consistent_and_volume_rises_with_absolute_return(long_bars: pl.DataFrame) -> None:
    checks = long_bars.select(
        (pl.col("high") >= pl.max_horizontal("open", "close")).all().alias("high"),
        (pl.col("low") <= pl.min_horizontal("open", "close")).all().alias("low"),
        (pl.col("low") > 0).all().alias("positive"),
    )
    assert checks.row(0) == (True, True, True)
    joined = daily_returns(long_bars).join(long_bars, on=["date", "instrument"]).drop_nulls("ret_1d")
    corr = joined.select(pl.corr(pl.col("ret_1d").abs(), pl.col("volume").log(), method="spearman")).item()
    assert corr > 0.05


def test_momentum_and_reversal_are_planted(long_bars: pl.DataFrame) -> None:
    """The cross-sectional rank IC of 63-bar momentum is positive, of the last return negative."""
    frame = (
        momentum(long_bars, lookbacks=(63,))
        .join(daily_returns(long_bars), on=["date", "instrument"])
        .join(forward_return(long_bars), on=["date", "instrument"])
        .drop_nulls()
    )
    daily = (
        frame.group_by("date")
        .agg(
            pl.corr("mom_63d", "fwd_ret_1d", method="spearman").alias("mom"),
            pl.corr("ret_1d", "fwd_ret_1d", method="spearman").alias("rev"),
        )
        .drop_nulls()
    )
    for column, sign in (("mom", 1.0), ("rev", -1.0)):
        ic = daily[column].to_numpy()
        t_stat = ic.mean() / ic.std(ddof=1) * np.sqrt(len(ic))
        assert sign * t_stat > 4.0, f"{column} IC t-stat {t_stat:.1f}"
        assert 0.005 < sign * ic.mean() < 0.15


def test_windows_before_origin_or_too_far_ahead_are_refused() -> None:
    market = SyntheticMarket(seed=1)
    with pytest.raises(WindowError, match="before the synthetic market's origin 2000-01-03"):
        market.bars(DataWindow.parse("1999-12-31..2000-01-10"))
    with pytest.raises(WindowError, match="years after the origin"):
        market.bars(DataWindow.parse("2150-01-02"))
    with pytest.raises(WindowError, match="DataWindow"):
        market.bars("2001-01-02")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": -1},
        {"seed": 1.5},
        {"seed": True},
        {"seed": 1, "n_instruments": 0},
        {"seed": 1, "n_instruments": 1000},
        {"seed": 1, "origin": "2000-01-03"},
    ],
)
def test_bad_market_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        SyntheticMarket(**kwargs)  # type: ignore[arg-type]
