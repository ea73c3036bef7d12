"""The pure parts of the trace: the ledger entry in force at a write time, the version of a day, the errors.

No Dagster and no MLflow: ledger entries are built as values, partitions are written to a store directly.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from ml_platform import FrameKeys, NoChampionInForce, PinnedStore, SignalNotFound
from ml_platform.champions.entry import GENESIS_HASH, LedgerEntry
from ml_platform.model_assets import LIVE_SIGNALS
from ml_platform.trace import resolve

T0 = dt.datetime(2024, 5, 1, 9, 0, tzinfo=dt.UTC)
KEYS = FrameKeys("day", ("name",))


def _entry(seq: int, to: str, minutes: int, kind: str = "promotion") -> LedgerEntry:
    return LedgerEntry(model="m", seq=seq, kind=kind, from_version=None, to_version=to, actor=f"actor{seq}",
                       approver=None, reason="r", report_ref=None, report_sha256=None, rationale_ref=None,
                       rationale_sha256=None, override=False, recorded_at=T0 + dt.timedelta(minutes=minutes),
                       prev_hash=GENESIS_HASH, entry_hash="sha256:" + f"{seq:064x}")


ENTRIES = (_entry(1, "1", 0), _entry(2, "2", 10), _entry(3, "1", 20, "rollback"))


def test_the_entry_in_force_is_the_newest_at_the_write_time_not_the_head() -> None:
    found = resolve.entry_in_force("m", ENTRIES, T0 + dt.timedelta(minutes=5), "1")
    assert found.entry.seq == 1 and found.until == ENTRIES[1].recorded_at and found.note is None
    assert resolve.entry_in_force("m", ENTRIES, T0 + dt.timedelta(minutes=15), "2").entry.seq == 2
    last = resolve.entry_in_force("m", ENTRIES, T0 + dt.timedelta(minutes=25), "1")
    assert (last.entry.seq, last.entry.kind, last.until) == (3, "rollback", None)


def test_a_champion_moved_while_scoring_is_noted() -> None:
    found = resolve.entry_in_force("m", ENTRIES, T0 + dt.timedelta(minutes=11), "1")
    assert found.entry.seq == 1 and "moved to version 2 (ledger entry 2" in str(found.note)


def test_a_signal_before_any_champion_or_of_a_never_champion_version_is_refused() -> None:
    with pytest.raises(NoChampionInForce, match=r"before any champion of record of 'm': its first ledger entry"):
        resolve.entry_in_force("m", ENTRIES, T0 - dt.timedelta(seconds=1), "1")
    with pytest.raises(NoChampionInForce, match="its ledger is empty"):
        resolve.entry_in_force("m", (), T0, "1")
    with pytest.raises(NoChampionInForce, match=r"no ledger entry made version 7 champion"):
        resolve.entry_in_force("m", ENTRIES, T0 + dt.timedelta(minutes=30), "7")


def _signals(day: str, version: str) -> pl.DataFrame:
    return pl.DataFrame({"day": [dt.date.fromisoformat(day)] * 2, "name": ["A", "B"], "score": [0.5, -0.5],
                         "weight": [0.5, -0.5], "model_name": ["m", "m"], "model_version": [version] * 2})


def test_the_first_version_of_a_day_is_the_default_and_the_others_are_listed(tmp_path: Path) -> None:
    store = PinnedStore(tmp_path)
    first = store.write("p/live_signals", "2024-01-03", _signals("2024-01-03", "1"))
    second = store.write("p/live_signals", "2024-01-03", _signals("2024-01-03", "2"))
    picked, others = resolve.select_version(store, "p/live_signals", "2024-01-03")
    assert picked.data_hash == first.data_hash and others == ((second.written_at, second.data_hash),)
    assert resolve.select_version(store, "p/live_signals", "2024-01-03", data_hash=second.data_hash)[0] == second
    assert resolve.select_version(store, "p/live_signals", "2024-01-03", as_of=resolve.written_at(second))[0] == second
    with pytest.raises(SignalNotFound, match="no version with data hash xxh3_128:00"):
        resolve.select_version(store, "p/live_signals", "2024-01-03", data_hash="xxh3_128:" + "0" * 32)
    assert resolve.signal_keys(k for k, _ in store.list_keys()) == ("p/live_signals",)
    assert resolve.locate_partition(store, "p/live_signals", dt.date(2024, 1, 3)) == "2024-01-03"
    assert resolve.locate_partition(store, "p/live_signals", dt.date(2024, 1, 4)) is None


def test_rows_and_missing_days_are_named(tmp_path: Path) -> None:
    frame = _signals("2024-01-03", "1")
    assert resolve.signal_model(frame, "x") == ("m", "1")
    assert resolve.find_row(frame, KEYS, dt.date(2024, 1, 3), "B", label="x")["score"] == -0.5
    assert resolve.find_row(frame, KEYS, dt.date(2024, 1, 3), {"name": "A"}, label="x")["weight"] == 0.5
    with pytest.raises(SignalNotFound, match="no row for instrument C on 2024-01-03; its instruments are: A, B"):
        resolve.find_row(frame, KEYS, dt.date(2024, 1, 3), "C", label="x")
    store = PinnedStore(tmp_path)
    for day in ("2024-01-03", "2024-01-05"):
        store.write("p/live_signals", day, _signals(day, "1"))
    keys = ("p/live_signals",)
    assert "nearest are 2024-01-03 and 2024-01-05" in str(resolve.missing_day("m", dt.date(2024, 1, 4), keys, store, None))
    assert isinstance(resolve.missing_day("m", dt.date(2024, 1, 1), keys, store, ENTRIES[0]), NoChampionInForce)
    assert "yet" in str(resolve.missing_day("m", dt.date(2024, 2, 1), keys, store, None))
    assert isinstance(resolve.missing_day("m", dt.date(2024, 2, 1), (), store, None), NoChampionInForce)


def test_the_live_signal_asset_name_is_the_factorys() -> None:
    assert resolve.LIVE_SIGNALS == LIVE_SIGNALS
