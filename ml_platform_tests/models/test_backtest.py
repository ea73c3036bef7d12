"""Backtest metrics on tiny hand-computed examples."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from ml_platform.errors import ConfigurationError, DataError
from ml_platform.keys import FrameKeys
from ml_platform.models import BacktestReport
from ml_platform.models import backtest as backtest_on
from ml_platform.models import daily_ic as daily_ic_on
from ml_platform.models import daily_pnl as daily_pnl_on
from ml_platform.window import DataWindow

DAYS = [dt.date(2022, 3, d) for d in (1, 2, 3, 4)]
KEYS = FrameKeys("date", ("instrument",))


def backtest(signals: pl.DataFrame, labels: pl.DataFrame, label_column: str = "fwd_ret_1d") -> BacktestReport:
    return backtest_on(signals, labels, label_column=label_column, keys=KEYS)


def daily_pnl(signals: pl.DataFrame, labels: pl.DataFrame, label_column: str = "fwd_ret_1d") -> pl.DataFrame:
    return daily_pnl_on(signals, labels, label_column=label_column, keys=KEYS)


def daily_ic(signals: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    return daily_ic_on(signals, labels, label_column="fwd_ret_1d", keys=KEYS)


def signals(rows: list[tuple[int, str, float, float]]) -> pl.DataFrame:
    """Rows of (day index, instrument, score, weight)."""
    schema = {"date": pl.Date, "instrument": pl.String, "score": pl.Float64, "weight": pl.Float64}
    return pl.DataFrame([(DAYS[d], i, s, w) for d, i, s, w in rows], orient="row", schema=schema)


def labels(rows: list[tuple[int, str, float | None]]) -> pl.DataFrame:
    return pl.DataFrame([(DAYS[d], i, r) for d, i, r in rows], orient="row",
                        schema={"date": pl.Date, "instrument": pl.String, "fwd_ret_1d": pl.Float64})


# Long A, short B every day; pnl_t = 0.5 * (r_A - r_B) = 0.01, -0.02, 0.03, 0.005.
PAIR_SIGNALS = signals([(d, n, s, w) for d in range(4) for n, s, w in (("A", 1.0, 0.5), ("B", -1.0, -0.5))])
PAIR_LABELS = labels([(0, "A", 0.02), (0, "B", 0.0), (1, "A", -0.03), (1, "B", 0.01),
                      (2, "A", 0.04), (2, "B", -0.02), (3, "A", 0.01), (3, "B", 0.0)])


def test_daily_pnl_by_hand():
    daily = daily_pnl(PAIR_SIGNALS, PAIR_LABELS)
    assert daily.columns == ["date", "pnl", "gross", "n_names"]
    assert daily["pnl"].to_list() == pytest.approx([0.01, -0.02, 0.03, 0.005], abs=1e-18)
    assert daily["gross"].to_list() == [1.0] * 4 and daily["n_names"].to_list() == [2] * 4


def test_sharpe_drawdown_hit_rate_and_total_by_hand():
    report = backtest(PAIR_SIGNALS, PAIR_LABELS)
    # mean 0.00625; squared deviations 0.00375², 0.02625², 0.02375², 0.00125² sum to 0.00126875
    assert report.sharpe == pytest.approx(0.00625 / math.sqrt(0.00126875 / 3) * math.sqrt(252), rel=1e-12)
    # cumulative 0.01, -0.01, 0.02, 0.025: the fall from 0.01 to -0.01 is the worst
    assert report.max_drawdown == pytest.approx(0.02, rel=1e-12)
    assert report.hit_rate == 0.75
    assert report.total_return == pytest.approx(0.025, rel=1e-12)
    assert report.turnover == 0.0  # the same book every day
    assert report.window == DataWindow(DAYS[0], DAYS[3]) and report.n_days == 4


def test_drawdown_counts_from_the_starting_capital():
    losing = labels([(d, n, r) for d in range(4) for n, r in (("A", -0.01), ("B", 0.01))])
    report = backtest(PAIR_SIGNALS, losing)  # pnl -0.01 every day, never above the start
    assert report.max_drawdown == pytest.approx(0.04) and report.hit_rate == 0.0
    assert report.sharpe == 0.0  # no variation: no risk-adjusted number


def test_turnover_counts_names_entering_and_leaving():
    book = signals([(0, "A", 1.0, 0.5), (0, "B", -1.0, -0.5),
                    (1, "A", 1.0, 0.5), (1, "C", -1.0, -0.5),   # B leaves, C enters: 0.5 + 0.5
                    (2, "A", -1.0, -0.5), (2, "C", 1.0, 0.5),   # both flip: 1 + 1
                    (3, "A", -1.0, -0.5), (3, "C", 1.0, 0.5)])  # unchanged: 0
    flat = labels([(d, n, 0.001) for d in range(4) for n in "ABC"])
    assert backtest(book, flat).turnover == pytest.approx((1.0 + 2.0 + 0.0) / 3)


def test_rank_ic_mean_and_tstat_by_hand():
    book = signals([(d, n, s, w) for d in range(3) for n, s, w in (("A", 1.0, -0.5), ("B", 2.0, 0.0),
                                                                      ("C", 3.0, 0.5))])
    realized = labels([(0, "A", 0.1), (0, "B", 0.3), (0, "C", 0.2),    # Spearman 1 - 6*2/(3*8) = 0.5
                       (1, "A", 0.3), (1, "B", 0.2), (1, "C", 0.1),    # reversed: -1
                       (2, "A", 0.1), (2, "B", 0.2), (2, "C", 0.3)])   # aligned: 1
    assert daily_ic(book, realized)["ic"].to_list() == pytest.approx([0.5, -1.0, 1.0], abs=1e-15)
    report = backtest(book, realized)
    mean = 0.5 / 3
    std = math.sqrt(((0.5 - mean) ** 2 + (-1 - mean) ** 2 + (1 - mean) ** 2) / 2)
    assert report.ic_mean == pytest.approx(mean, rel=1e-12)
    assert report.ic_tstat == pytest.approx(mean / (std / math.sqrt(3)), rel=1e-12)
    assert report.n_ic_days == 3


def test_ic_skips_dates_where_it_is_undefined():
    book = signals([(0, "A", 1.0, -0.5), (0, "B", 2.0, 0.5), (1, "A", 1.0, -0.5), (1, "B", 2.0, 0.5),
                    (2, "A", 1.0, 0.0)])
    realized = labels([(0, "A", 0.1), (0, "B", 0.2),      # defined: +1
                       (1, "A", 0.1), (1, "B", 0.1),      # labels tied: undefined
                       (2, "A", 0.3)])                    # one name: undefined
    ic = daily_ic(book, realized)
    assert ic["date"].to_list() == [DAYS[0]] and ic["ic"].to_list() == [1.0]
    report = backtest(book, realized)
    assert (report.n_ic_days, report.ic_mean, report.ic_tstat) == (1, 1.0, 0.0)


def test_unknown_labels_contribute_nothing_and_an_unlabelled_day_is_not_evaluated():
    dropped = PAIR_LABELS.filter(~((pl.col("date") == DAYS[1]) & (pl.col("instrument") == "B")))
    realized = dropped.with_columns(
        pl.when(pl.col("date") == DAYS[3]).then(None).otherwise(pl.col("fwd_ret_1d")).alias("fwd_ret_1d")
    )
    daily = daily_pnl(PAIR_SIGNALS, realized)
    assert daily["date"].to_list() == DAYS[:3]
    assert daily["pnl"].to_list() == pytest.approx([0.01, -0.015, 0.03])
    assert daily["gross"].to_list() == [1.0, 0.5, 1.0] and daily["n_names"].to_list() == [2, 1, 2]
    assert backtest(PAIR_SIGNALS, realized).window == DataWindow(DAYS[0], DAYS[2])


def test_report_round_trips_through_a_dict():
    report = backtest(PAIR_SIGNALS, PAIR_LABELS)
    record = report.to_dict()
    assert record["window"] == "2022-03-01..2022-03-04" and record["n_days"] == 4
    assert all(isinstance(v, (int, float, str)) for v in record.values())
    assert BacktestReport.from_dict(record) == report
    with pytest.raises(DataError, match="exactly the keys"):
        BacktestReport.from_dict({k: v for k, v in record.items() if k != "sharpe"})
    with pytest.raises(DataError, match="sharpe is not finite"):
        BacktestReport.from_dict({**record, "sharpe": math.nan})


def test_refusals():
    with pytest.raises(DataError, match=r"found 1 date values.*need at least 2; check that signals and labels "
                                        r"cover the same \(date, instrument\) keys"):
        backtest(PAIR_SIGNALS.filter(pl.col("date") == DAYS[0]), PAIR_LABELS)
    with pytest.raises(DataError, match=r"'fwd_ret_1d' holds 2 non-finite values \(1 NaN, 1 inf\)"):
        label = pl.col("fwd_ret_1d")
        backtest(PAIR_SIGNALS, PAIR_LABELS.with_columns(
            pl.when(pl.col("date") == DAYS[0]).then(label / 0.0).otherwise(label)
        ))
    with pytest.raises(DataError, match=r"lacks columns \['weight'\]"):
        daily_pnl(PAIR_SIGNALS.drop("weight"), PAIR_LABELS)
    with pytest.raises(DataError, match=r"lacks columns \['score'\]"):
        backtest(PAIR_SIGNALS.drop("score"), PAIR_LABELS)
    with pytest.raises(DataError, match="'weight' holds 1 nulls"):
        daily_pnl(PAIR_SIGNALS.with_columns(
            pl.when(pl.col("date") == DAYS[0], pl.col("instrument") == "A").then(None)
            .otherwise(pl.col("weight")).alias("weight")), PAIR_LABELS)
    with pytest.raises(DataError, match=r"label frame lacks columns \['ret'\]"):
        daily_pnl(PAIR_SIGNALS, PAIR_LABELS, label_column="ret")


def _rekeyed(frame: pl.DataFrame) -> pl.DataFrame:
    """The same rows keyed by an hourly timestamp ``ts`` and an integer ``asset`` (A -> 10, B -> 11, C -> 12)."""
    return frame.select(
        (pl.col("date").cast(pl.Datetime("ms")) + pl.duration(hours=9)).alias("ts"),
        (pl.col("instrument").str.replace("A", "10").str.replace("B", "11").str.replace("C", "12")
         .cast(pl.Int16)).alias("asset"),
        pl.all().exclude("date", "instrument"),
    ).reverse()


def test_the_same_book_on_other_keys_gives_the_same_report():
    keys = FrameKeys("ts", ("asset",))
    book = signals([(0, "A", 1.0, 0.5), (0, "B", -1.0, -0.5), (1, "A", 1.0, 0.5), (1, "C", -1.0, -0.5),
                    (2, "A", -1.0, -0.5), (2, "C", 1.0, 0.5), (3, "A", -1.0, -0.5), (3, "C", 1.0, 0.5)])
    realized = labels([(d, n, 0.001 * (d + 1) * (1 if n == "A" else -1)) for d in range(4) for n in "ABC"])
    report = backtest_on(_rekeyed(book), _rekeyed(realized), label_column="fwd_ret_1d", keys=keys)
    assert report == backtest(book, realized)
    assert report.turnover == pytest.approx(1.0) and report.window == DataWindow(DAYS[0], DAYS[3])
    daily = daily_pnl_on(_rekeyed(book), _rekeyed(realized), label_column="fwd_ret_1d", keys=keys)
    assert daily.columns == ["ts", "pnl", "gross", "n_names"] and daily.schema["ts"] == pl.Datetime("ms")
    assert daily["pnl"].to_list() == daily_pnl(book, realized)["pnl"].to_list()


def test_sharpe_annualization_follows_the_period():
    weekly = backtest_on(PAIR_SIGNALS, PAIR_LABELS, label_column="fwd_ret_1d", keys=KEYS, periods_per_year=52)
    assert weekly.sharpe == pytest.approx(backtest(PAIR_SIGNALS, PAIR_LABELS).sharpe * math.sqrt(52 / 252))
    with pytest.raises(ConfigurationError, match="periods_per_year"):
        backtest_on(PAIR_SIGNALS, PAIR_LABELS, label_column="fwd_ret_1d", keys=KEYS, periods_per_year=0)
    with pytest.raises(ConfigurationError, match="label_column must name the label"):
        backtest_on(PAIR_SIGNALS, PAIR_LABELS, label_column="date", keys=KEYS)
