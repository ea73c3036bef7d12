"""Signals: rank-based, dollar-neutral, unit-gross weights per date."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math

import polars as pl
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ml_platform.errors import DataError
from ml_platform.keys import FrameKeys
from ml_platform.models import to_signals as signals_for

D1, D2 = dt.date(2022, 3, 1), dt.date(2022, 3, 2)
KEYS = FrameKeys("date", ("instrument",))
SIGNAL_SCHEMA = {"date": pl.Date, "instrument": pl.String, "score": pl.Float64, "weight": pl.Float64}


def to_signals(frame: pl.DataFrame) -> pl.DataFrame:
    return signals_for(frame, KEYS)


def scores(rows: list[tuple[dt.date, str, float | None]]) -> pl.DataFrame:
    schema = {"date": pl.Date, "instrument": pl.String, "score": pl.Float64}
    return pl.DataFrame(rows, schema=schema, orient="row")


def weights(frame: pl.DataFrame) -> dict[tuple[dt.date, str], float]:
    return {(d, i): w for d, i, w in frame.select("date", "instrument", "weight").iter_rows()}


def test_hand_computed_weights():
    out = to_signals(scores([(D1, "A", 3.0), (D1, "B", 1.0), (D1, "C", 2.0)]))
    # ranks 3, 1, 2 -> centred 1, -1, 0 -> divided by sum |.| = 2
    assert weights(out) == {(D1, "A"): 0.5, (D1, "B"): -0.5, (D1, "C"): 0.0}
    assert out.schema == pl.Schema(SIGNAL_SCHEMA)


def test_ties_share_their_average_rank():
    out = to_signals(scores([(D1, "A", 1.0), (D1, "B", 1.0), (D1, "C", 2.0), (D1, "D", 2.0)]))
    assert out["weight"].to_list() == [-0.25, -0.25, 0.25, 0.25]


def test_a_lone_name_or_a_fully_tied_date_gets_no_position():
    out = to_signals(scores([(D1, "A", 5.0), (D2, "A", 1.0), (D2, "B", 1.0)]))
    assert out["weight"].to_list() == [0.0, 0.0, 0.0]


def test_null_scores_get_zero_and_the_rest_are_ranked_among_themselves():
    out = to_signals(scores([(D1, "A", None), (D1, "B", 1.0), (D1, "C", 2.0)]))
    assert weights(out) == {(D1, "A"): 0.0, (D1, "B"): -0.5, (D1, "C"): 0.5}


def test_dates_are_independent_and_output_is_sorted():
    out = to_signals(scores([(D2, "B", 9.0), (D1, "B", 1.0), (D2, "A", 1.0), (D1, "A", 2.0)]))
    assert out.select("date", "instrument").rows() == [(D1, "A"), (D1, "B"), (D2, "A"), (D2, "B")]
    assert out["weight"].to_list() == [0.5, -0.5, -0.5, 0.5]


def test_row_order_does_not_change_the_arrow_bytes():
    rows = [(D1 + dt.timedelta(days=i % 5), f"N{i:02d}", math.sin(i) * 1e-3) for i in range(60)]

    def ipc(frame: pl.DataFrame) -> bytes:
        buffer = io.BytesIO()
        to_signals(frame).write_ipc(buffer, compression="uncompressed")
        return buffer.getvalue()

    assert ipc(scores(rows)) == ipc(scores(list(reversed(rows))))


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False) | st.none(), min_size=1, max_size=30))
def test_every_date_is_dollar_neutral_with_unit_gross(values):
    assume(any(v is not None for v in values))  # an all-null score column is refused (tested below)
    out = to_signals(scores([(D1, f"N{i:02d}", v) for i, v in enumerate(values)]))
    w = out["weight"].to_list()
    gross = math.fsum(abs(x) for x in w)
    assert gross == pytest.approx(1.0) or gross == 0.0
    assert math.fsum(w) == pytest.approx(0.0, abs=1e-12)
    # weights are monotone in the score
    ranked = sorted((s, x) for s, x in zip(out["score"].to_list(), w, strict=True) if s is not None)
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(ranked))


def test_bad_score_frames_are_refused():
    with pytest.raises(DataError, match=r"lacks columns \['score'\]"):
        to_signals(scores([(D1, "A", 1.0)]).drop("score"))
    with pytest.raises(DataError, match=r"'score' holds 1 non-finite values \(1 NaN, 0 inf\)"):
        to_signals(scores([(D1, "A", 1.0), (D1, "B", math.nan)]))
    with pytest.raises(DataError, match="'score' holds no usable value"):
        to_signals(scores([(D1, "A", None)]))
    with pytest.raises(DataError, match="repeats"):
        to_signals(scores([(D1, "A", 1.0), (D1, "A", 2.0)]))


def test_other_keys_rank_within_each_time_value_only():
    """Keys (week, exchange, ticker): the same ticker on two exchanges is two names of one cross-section."""
    keys = FrameKeys("week", ("exchange", "ticker"))
    week = dt.datetime(2022, 3, 7, tzinfo=dt.UTC)
    frame = pl.DataFrame(
        [(week, "Y", 1, 3.0), (week, "X", 1, 1.0), (week, "X", 2, 2.0),
         (week + dt.timedelta(weeks=1), "X", 1, 5.0), (week + dt.timedelta(weeks=1), "X", 2, 4.0)],
        schema={"week": pl.Datetime("us", "UTC"), "exchange": pl.String, "ticker": pl.Int64, "score": pl.Float64},
        orient="row")
    out = signals_for(frame, keys)
    assert out.columns == ["week", "exchange", "ticker", "score", "weight"]
    assert out.select("exchange", "ticker", "weight").rows() == [
        ("X", 1, -0.5), ("X", 2, 0.0), ("Y", 1, 0.5), ("X", 1, 0.5), ("X", 2, -0.5)]
    assert signals_for(frame.clear(), keys).schema == pl.Schema(
        {"week": pl.Datetime("us", "UTC"), "exchange": pl.String, "ticker": pl.Int64, "score": pl.Float64,
         "weight": pl.Float64})
    with pytest.raises(DataError, match=r"lacks columns \['date', 'instrument'\]"):
        to_signals(frame)


def test_keys_named_like_signal_columns_are_refused():
    with pytest.raises(DataError, match=r"key column\(s\) \['weight'\] clash"):
        signals_for(scores([(D1, "A", 1.0)]).rename({"instrument": "weight"}), FrameKeys("date", ("weight",)))
