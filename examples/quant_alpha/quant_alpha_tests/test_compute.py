"""Pure feature functions: known values, point-in-time, bar-counted windows, bit-exact start independence."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quant_alpha.compute import (
    cross_sectional_ranks,
    daily_returns,
    forward_return,
    momentum,
    realized_volatility,
    trading_bars_to_calendar_days,
    volume_zscore,
)
from quant_alpha.market.generator import SyntheticMarket
from quant_alpha.market.sample import SAMPLE_COVERAGE, load_sample_bars

from ml_platform import ConfigurationError, DataError, DataWindow

KEYS = ["date", "instrument"]
DAYS = [dt.date(2021, 1, d) for d in (4, 5, 6, 7, 8, 11, 12)]
A_ADJ = [100.0, 110.0, 99.0, 108.9, 108.9, 119.79, 100.0]
A_VOL = [100, 250, 120, 400, 90, 300, 1000]
B_ADJ = [50.0, 50.0, 55.0, 60.5, 60.5, 66.55]  # B is halted on DAYS[3]
B_DAYS = DAYS[:3] + DAYS[4:]
SYNTH_WINDOW = DataWindow.parse("2009-06-01..2010-06-30")
MOMENTUM_SPANS = (5, 21, 63)
# Bars of history each feature needs before its first value (at an instrument's bar number).
NEEDS = {"ret_1d": 1, "mom_5d": 5, "mom_21d": 21, "mom_63d": 63, "vol_21d": 21, "volz_63d": 63}


def tiny() -> pl.DataFrame:
    rows = [(day, "A", adj, vol) for day, adj, vol in zip(DAYS, A_ADJ, A_VOL)]
    rows += [(day, "B", adj, 1000) for day, adj in zip(B_DAYS, B_ADJ)]
    frame = pl.DataFrame(
        rows,
        schema={"date": pl.Date, "instrument": pl.String, "adj_close": pl.Float64, "volume": pl.Int64},
        orient="row",
    )
    return frame.sort(KEYS)


def column(frame: pl.DataFrame, name: str, instrument: str) -> list[float | None]:
    return frame.filter(pl.col("instrument") == instrument).sort("date")[name].to_list()


def approx_list(values: list[float | None]) -> list[object]:
    return [None if v is None else pytest.approx(v, rel=1e-12, abs=1e-15) for v in values]


def ln(a: float, b: float) -> float:
    return math.log(a) - math.log(b)


def all_features(bars: pl.DataFrame) -> pl.DataFrame:
    """Every non-label feature of the platform's graph, keyed by (date, instrument)."""
    returns = daily_returns(bars)
    frame = (
        returns.join(momentum(bars, lookbacks=MOMENTUM_SPANS), on=KEYS)
        .join(realized_volatility(returns, window=21), on=KEYS)
        .join(volume_zscore(bars, window=63), on=KEYS)
    )
    return frame.join(cross_sectional_ranks(frame, columns=list(NEEDS)), on=KEYS)


@pytest.fixture(scope="module")
def synth() -> pl.DataFrame:
    return SyntheticMarket(seed=11, n_instruments=8).bars(SYNTH_WINDOW)


@pytest.fixture(scope="module")
def synth_features(synth: pl.DataFrame) -> pl.DataFrame:
    return all_features(synth)


def test_known_returns_and_momentum_count_bars_not_days() -> None:
    returns, mom = daily_returns(tiny()), momentum(tiny(), lookbacks=(2,))
    assert returns.columns == ["date", "instrument", "ret_1d"] and mom.columns == [
        "date",
        "instrument",
        "mom_2d",
    ]
    a = [None] + [ln(A_ADJ[i], A_ADJ[i - 1]) for i in range(1, 7)]
    assert column(returns, "ret_1d", "A") == approx_list(a)
    # Across B's halt the return spans the gap: 2021-01-08 against 2021-01-06, B's previous bar.
    assert column(returns, "ret_1d", "B") == approx_list(
        [None, 0.0, ln(55, 50), ln(60.5, 55), 0.0, ln(66.55, 60.5)]
    )
    assert column(mom, "mom_2d", "B") == approx_list(
        [None, None, ln(55, 50), ln(60.5, 50), ln(60.5, 55), ln(66.55, 60.5)]
    )
    assert column(mom, "mom_2d", "A")[:3] == approx_list([None, None, ln(99, 100)])


def test_known_volatility_volume_zscore_and_label() -> None:
    returns = daily_returns(tiny())
    vol = realized_volatility(returns, window=3)
    a_ret = np.diff(np.log(A_ADJ))
    expected = [None] * 3 + [float(np.std(a_ret[i - 3 : i], ddof=1) * math.sqrt(252)) for i in range(3, 7)]
    assert column(vol, "vol_3d", "A") == approx_list(expected)
    volz = volume_zscore(tiny(), window=3)
    x = np.log1p(np.array(A_VOL, dtype=float))
    z = [None] * 3 + [float((x[i] - x[i - 3 : i].mean()) / x[i - 3 : i].std(ddof=1)) for i in range(3, 7)]
    assert column(volz, "volz_3d", "A") == approx_list(z)
    assert column(volz, "volz_3d", "B") == [None] * 6, "constant volume has no spread: no z-score"
    label = forward_return(tiny())
    assert label.columns == ["date", "instrument", "fwd_ret_1d"]
    assert column(label, "fwd_ret_1d", "B") == approx_list(
        [0.0, ln(55, 50), ln(60.5, 55), 0.0, ln(66.55, 60.5), None]
    )
    assert column(forward_return(tiny(), horizon=3), "fwd_ret_3d", "A") == approx_list(
        [ln(108.9, 100), ln(108.9, 110), ln(119.79, 99), ln(100, 108.9), None, None, None]
    )


def test_ranks_average_ties_skip_nulls_and_give_a_lone_value_one_half() -> None:
    d1, d2, d3 = DAYS[:3]
    frame = pl.DataFrame(
        {
            "date": [d1] * 4 + [d2] * 4 + [d3] * 4,
            "instrument": list("WXYZ") * 3,
            "f": [1.0, 2.0, 2.0, None, 5.0, None, float("nan"), None, 3.0, 1.0, 2.0, 4.0],
            "g": [1, 1, 1, 1, 2, 1, 3, 4, 0, 0, 0, 9],
        },
    )
    ranks = cross_sectional_ranks(frame, columns=["f", "g"])
    assert ranks.columns == ["date", "instrument", "rank_f", "rank_g"]
    assert ranks["rank_f"].to_list() == [0.0, 0.75, 0.75, None, 0.5, None, None, None, 2 / 3, 0.0, 1 / 3, 1.0]
    assert ranks["rank_g"].to_list() == [0.5] * 4 + [1 / 3, 0.0, 2 / 3, 1.0] + [1 / 3] * 3 + [1.0]


def test_ranks_lie_in_the_unit_interval_and_span_it_per_date(synth_features: pl.DataFrame) -> None:
    ranked = [f"rank_{c}" for c in NEEDS]
    per_date = synth_features.group_by("date").agg(
        *[pl.col(c).min().alias(f"{c}_min") for c in ranked],
        *[pl.col(c).max().alias(f"{c}_max") for c in ranked],
        *[pl.col(c).count().alias(f"{c}_n") for c in ranked],
    )
    for c in ranked:
        valid = per_date.filter(pl.col(f"{c}_n") >= 2)
        assert valid.height > 100
        assert (valid[f"{c}_min"] == 0.0).all() and (valid[f"{c}_max"] == 1.0).all()


def test_every_input_row_comes_back_in_input_order() -> None:
    shuffled = tiny().sample(fraction=1.0, shuffle=True, seed=3)
    for fn in (daily_returns, momentum, volume_zscore, forward_return):
        out = fn(shuffled)
        assert out.select(KEYS).equals(shuffled.select(KEYS))
        assert out.sort(KEYS).equals(fn(tiny()).sort(KEYS))


def test_a_day_without_bars_gives_empty_typed_frames() -> None:
    empty = tiny().clear()
    features = all_features(empty)
    assert features.height == 0
    assert all(features.schema[c] == pl.Float64 for c in features.columns if c not in KEYS)
    assert forward_return(empty).schema == {
        "date": pl.Date,
        "instrument": pl.String,
        "fwd_ret_1d": pl.Float64,
    }


def test_values_are_null_exactly_until_enough_bars_exist(
    synth: pl.DataFrame, synth_features: pl.DataFrame
) -> None:
    bar = synth.select(*KEYS, pl.int_range(pl.len()).over("instrument", order_by="date").alias("bar"))
    frame = synth_features.join(bar, on=KEYS)
    for name, needed in NEEDS.items():  # vol_21d: 21 returns, the first on bar 1, so bar 21 onwards
        nulls = frame.filter(pl.col(name).is_null())
        assert nulls.height > 0 and (nulls["bar"] < needed).all(), name
        early = frame.filter(pl.col("bar") < needed)
        assert early[name].null_count() == early.height, name
    label = forward_return(synth).join(bar, on=KEYS)
    last = label.group_by("instrument").agg(pl.col("bar").max().alias("last"))
    with_last = label.join(last, on="instrument")
    assert (
        with_last.filter(pl.col("fwd_ret_1d").is_null())
        .select((pl.col("bar") == pl.col("last")).all())
        .item()
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(index=st.integers(min_value=0, max_value=10_000))
def test_a_value_at_day_d_uses_only_bars_up_to_d(
    index: int, synth: pl.DataFrame, synth_features: pl.DataFrame
) -> None:
    days = synth["date"].unique().sort()
    day = days[index % len(days)]
    truncated = all_features(synth.filter(pl.col("date") <= day))
    at_day = pl.col("date") == day
    assert truncated.filter(at_day).sort(KEYS).equals(synth_features.filter(at_day).sort(KEYS))
    assert truncated.filter(at_day).height == synth.filter(at_day).height


def test_the_label_at_d_moves_with_the_next_bar_and_nothing_else_does(synth: pl.DataFrame) -> None:
    day = synth["date"].unique().sort()[150]
    last_bar = synth.group_by("instrument").agg(pl.col("date").max().alias("last"))
    listed = synth.filter(pl.col("date") == day).join(last_bar, on="instrument")
    name = listed.filter(pl.col("last") > day)["instrument"][0]
    later = synth.filter((pl.col("instrument") == name) & (pl.col("date") > day))["date"].min()
    bumped = synth.with_columns(
        pl.when((pl.col("instrument") == name) & (pl.col("date") == later))
        .then(pl.col("adj_close") * 1.1)
        .otherwise(pl.col("adj_close"))
        .alias("adj_close")
    )
    at_day = pl.col("date") == day
    before, after = forward_return(synth).filter(at_day), forward_return(bumped).filter(at_day)
    moved = before.join(after, on=KEYS, suffix="_bumped").with_columns(
        change=pl.col("fwd_ret_1d_bumped") - pl.col("fwd_ret_1d")
    )
    assert moved.filter(pl.col("instrument") == name)["change"].item() == pytest.approx(
        math.log(1.1), rel=1e-9
    )
    assert (moved.filter(pl.col("instrument") != name)["change"] == 0.0).all()
    assert all_features(bumped).filter(at_day).equals(all_features(synth).filter(at_day))
    assert (
        forward_return(synth.filter(pl.col("date") <= day)).filter(at_day)["fwd_ret_1d"].null_count()
        == before.height
    )


def test_values_are_bit_identical_whatever_the_history_starts(
    synth: pl.DataFrame, synth_features: pl.DataFrame
) -> None:
    """A one-partition lookback and a long backfill produce the same bytes (no sliding-sum drift)."""
    late = synth.filter(pl.col("date") >= dt.date(2009, 9, 14))
    bar = late.select(*KEYS, pl.int_range(pl.len()).over("instrument", order_by="date").alias("bar"))
    enough = bar.filter(pl.col("bar") >= 64).select(KEYS)
    assert enough.height > 500
    mine = all_features(late).join(enough, on=KEYS).sort(KEYS)
    full = synth_features.join(enough, on=KEYS).sort(KEYS)
    assert mine.select(list(NEEDS)).equals(full.select(list(NEEDS)))
    assert mine.select(list(NEEDS)).null_count().sum_horizontal().item() == 0


def test_bar_to_calendar_lookback_is_safe_on_real_and_synthetic_calendars() -> None:
    assert trading_bars_to_calendar_days(63) == 112
    assert trading_bars_to_calendar_days(63, halt_allowance=0) == 105
    assert trading_bars_to_calendar_days(0) == 0
    calendars = [
        sorted(set(load_sample_bars(SAMPLE_COVERAGE)["date"])),
        *[
            list(SyntheticMarket(seed=seed).trading_days(DataWindow.parse("2000-01-03..2040-12-31")))
            for seed in (7, 11)
        ],
    ]
    for days in calendars:
        ordinals = np.array([d.toordinal() for d in days])
        for bars in (1, 2, 3, 5, 10, 21, 22, 42, 63, 64, 126, 252, 504):
            worst = int((ordinals[bars:] - ordinals[:-bars]).max())
            assert worst <= trading_bars_to_calendar_days(bars, halt_allowance=0), (bars, worst)


def test_a_partition_lookback_holds_every_bar_a_backfill_would_use() -> None:
    """With halts, each instrument's N-th previous bar still lies inside the declared lookback."""
    for bars in (
        SyntheticMarket(seed=7).bars(DataWindow.parse("2000-01-03..2013-12-31")),
        load_sample_bars(SAMPLE_COVERAGE),
    ):
        for n in (1, 5, 21, 63, 64):
            span = trading_bars_to_calendar_days(n)
            for _, rows in bars.select("instrument", "date").group_by("instrument"):
                ordinals = np.array([d.toordinal() for d in rows["date"].sort()])
                if len(ordinals) > n:
                    assert int((ordinals[n:] - ordinals[:-n]).max()) <= span, n


Call = Callable[[pl.DataFrame], pl.DataFrame]
BAD_DATA: dict[str, tuple[Call, pl.DataFrame, str]] = {
    "missing adj_close": (daily_returns, tiny().drop("adj_close"), r"lacks column\(s\) \['adj_close'\]"),
    "integer prices": (momentum, tiny().with_columns(pl.col("adj_close").cast(pl.Int64)), "wrong dtype"),
    "text dates": (forward_return, tiny().with_columns(pl.col("date").cast(pl.String)), "wrong dtype"),
    "float volume": (volume_zscore, tiny().with_columns(pl.col("volume").cast(pl.Float64)), "wrong dtype"),
    "missing ret_1d": (realized_volatility, tiny(), r"lacks column\(s\) \['ret_1d'\]"),
    "duplicate rows": (daily_returns, pl.concat([tiny(), tiny().head(1)]), r"share a \(date, instrument\)"),
    "null instrument": (
        daily_returns,
        tiny().with_columns(instrument=pl.lit(None, pl.String)),
        "null 'instrument'",
    ),
    "zero price": (momentum, tiny().with_columns(adj_close=pl.lit(0.0)), "non-positive adj_close"),
    "negative volume": (volume_zscore, tiny().with_columns(volume=pl.lit(-1, pl.Int64)), "negative volume"),
    "not a frame": (daily_returns, tiny().to_dict(as_series=False), "polars DataFrame"),  # type: ignore
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_inputs_raise_data_errors(case: str) -> None:
    fn, frame, message = BAD_DATA[case]
    with pytest.raises(DataError, match=message):
        fn(frame)


@pytest.mark.parametrize(
    "call",
    [
        lambda: momentum(tiny(), lookbacks=()),
        lambda: momentum(tiny(), lookbacks=(5, 5)),
        lambda: momentum(tiny(), lookbacks=(0,)),
        lambda: momentum(tiny(), lookbacks="5"),
        lambda: realized_volatility(daily_returns(tiny()), window=1),
        lambda: volume_zscore(tiny(), window=0),
        lambda: volume_zscore(tiny(), window=True),
        lambda: forward_return(tiny(), horizon=0),
        lambda: cross_sectional_ranks(tiny(), columns="adj_close"),
        lambda: cross_sectional_ranks(tiny(), columns=["date"]),
        lambda: cross_sectional_ranks(tiny(), columns=["adj_close", "adj_close"]),
        lambda: trading_bars_to_calendar_days(-1),
        lambda: trading_bars_to_calendar_days(2.5),
        lambda: trading_bars_to_calendar_days(5, halt_allowance=-1),
    ],
)
def test_bad_parameters_raise_configuration_errors(call: Callable[[], object]) -> None:
    with pytest.raises(ConfigurationError):
        call()


def test_ranks_refuse_unknown_or_non_numeric_columns() -> None:
    with pytest.raises(DataError, match=r"lacks column\(s\) \['mom_5d'\]"):
        cross_sectional_ranks(tiny(), columns=["mom_5d"])
    with pytest.raises(DataError, match="not numeric"):
        cross_sectional_ranks(tiny().with_columns(label=pl.lit("x")), columns=["label"])
