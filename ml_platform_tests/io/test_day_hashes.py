"""Per-day content hashes of monthly partitions: recorded, equal to a daily store's, covered, checked by verify."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_platform.cli import main
from ml_platform.errors import DataError, IntegrityError, ManifestError, ManifestTampered
from ml_platform.features import FeatureGraph, Upstream, feature
from ml_platform.features.assets import build_feature_assets
from ml_platform.io.day_hashes import DayHashes, hash_days
from ml_platform.io.manager import PinnedIOManager, PinnedStoreResource
from ml_platform.io.manifest import OBJECT_METADATA_KEY, WriteFacts, manifest_digest
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus, verify_store
from ml_platform.lineage.data_hash import hash_table
from ml_platform.window import DataWindow, split_by_windows

MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2012-01-01", end_date="2012-04-01")
DAILY = dg.DailyPartitionsDefinition(start_date="2012-01-01", end_date="2012-04-01")
RANGE = {"dagster/asset_partition_range_start": "2012-01-01", "dagster/asset_partition_range_end": "2012-03-01"}
DAILY_RANGE = {"dagster/asset_partition_range_start": "2012-01-01",
               "dagster/asset_partition_range_end": "2012-03-31"}
JANUARY = DataWindow.parse("2012-01-01..2012-01-31")


@feature(group="test")
def quotes(window: DataWindow) -> pl.DataFrame:
    """Three instruments on each business day; each day seeded by its ordinal."""
    days = [day for day in window if day.weekday() < 5]
    values = [np.random.default_rng(day.toordinal()).standard_normal(3) for day in days]
    return pl.DataFrame({
        "date": pl.Series([day for day in days for _ in range(3)], dtype=pl.Date),
        "instrument": ["A", "B", "C"] * len(days),
        "px": np.concatenate(values) if values else np.empty(0),
    })


@feature(upstream={"quotes": Upstream("quotes", lookback_days=3)}, group="test")
def scaled(quotes: pl.DataFrame) -> pl.DataFrame:
    return quotes.select("date", "instrument", (pl.col("px") * 2).alias("scaled"))


GRAPH = FeatureGraph([quotes, scaled])


def materialize(storage: Path, instance: dg.DagsterInstance, calendar: Any, tags: dict[str, str]) -> PinnedStore:
    """Both nodes over the range, through the PinnedIOManager; the store they wrote."""
    resources = {"io_manager": PinnedIOManager(base_dir=str(storage)),
                 "feature_store": PinnedStoreResource(base_dir=str(storage))}
    assets = build_feature_assets(GRAPH, partitions_def=calendar)
    assert dg.materialize(assets, instance=instance, resources=resources, tags=tags).success
    return PinnedStore(storage)


@pytest.fixture
def monthly(tmp_path: Path, dagster_instance: dg.DagsterInstance) -> PinnedStore:
    return materialize(tmp_path / "monthly", dagster_instance, MONTHLY, RANGE)


def test_a_monthly_store_records_each_day_as_the_daily_store_hashes_it(
        monthly: PinnedStore, tmp_path: Path, dagster_instance: dg.DagsterInstance) -> None:
    daily = materialize(tmp_path / "daily", dagster_instance, DAILY, DAILY_RANGE)
    for key in ("quotes", "scaled"):
        compared = 0
        for month in MONTHLY.get_partition_keys():
            manifest = monthly.manifest(key, month)
            assert manifest.day_hashes is not None and manifest.day_hashes.column == "date"
            assert list(manifest.day_hashes.hashes) == [day.isoformat() for day in manifest.window]
            for day, digest in manifest.day_hashes.hashes.items():
                assert digest == daily.manifest(key, day).data_hash, (key, day)
                compared += 1
        assert compared == 31 + 29 + 31
    # a daily partition spans one day: it records no day hashes, and its manifest is as before
    assert daily.manifest("quotes", "2012-01-03").day_hashes is None
    assert "day_hashes" not in daily.manifest("quotes", "2012-01-03").to_dict()
    assert [row.status for row in verify_store(monthly)] == [VerifyStatus.OK] * 6


def test_one_changed_day_is_named_by_verify_on_load_and_by_the_command(monthly: PinnedStore) -> None:
    manifest = monthly.manifest("scaled", "2012-02-01")
    path = Path(monthly.data_path(manifest))
    table = pq.read_table(path)
    day = dt.date(2012, 2, 14)
    changed = pl.from_arrow(table).with_columns(
        pl.when(pl.col("date") == day).then(pl.col("scaled") + 1e-9).otherwise(pl.col("scaled")).alias("scaled"))
    path.chmod(0o644)
    pq.write_table(changed.to_arrow().replace_schema_metadata(table.schema.metadata), path)
    [row] = [row for row in verify_store(monthly) if not row.ok]
    assert (row.key, row.partition, row.status) == ("scaled", "2012-02-01", VerifyStatus.CORRUPT)
    assert "the rows of day(s) 2012-02-14 differ from what was recorded" in row.detail
    with pytest.raises(IntegrityError, match="day\\(s\\) 2012-02-14 differ"):
        monthly.read("scaled", "2012-02-01")
    result = CliRunner().invoke(main, ["verify", "--base-dir", monthly.base, "--no-dagster", "--no-registry"])
    assert result.exit_code == 1 and "2012-02-14" in result.output, result.output


def _forge(store: PinnedStore, key: str, partition: str, day: str) -> None:
    """Rewrite one day hash in the head and its history copy, with the manifest hash recomputed."""
    head = Path(store.manifest_path(key, partition))
    [(entry, _, _)] = store.history_entries(key, partition)
    for path in (head, Path(store.base, entry)):
        record = json.loads(path.read_text())
        record["day_hashes"]["days"][day] = "xxh3_128:" + "0" * 32
        record["manifest_hash"] = manifest_digest(record)
        path.write_text(json.dumps(record, indent=2, sort_keys=True))


def test_a_forged_day_hash_is_named_by_verify(monthly: PinnedStore) -> None:
    _forge(monthly, "quotes", "2012-03-01", "2012-03-05")
    [row] = [row for row in verify_store(monthly) if not row.ok]
    assert (row.partition, row.status) == ("2012-03-01", VerifyStatus.TAMPERED)
    assert "the rows of day(s) 2012-03-05 do not hash to the day hashes its manifest records" in row.detail


def test_the_day_hashes_are_under_the_manifest_hash(monthly: PinnedStore) -> None:
    head = Path(monthly.manifest_path("quotes", "2012-01-01"))
    record = json.loads(head.read_text())
    record["day_hashes"]["days"]["2012-01-02"] = record["day_hashes"]["days"]["2012-01-01"]
    head.write_text(json.dumps(record))
    with pytest.raises(ManifestTampered, match="its fields hash to"):
        monthly.manifest("quotes", "2012-01-01")
    [row] = [row for row in verify_store(monthly) if not row.ok]
    assert row.status is VerifyStatus.TAMPERED and "day_hashes.days.2012-01-02" in row.detail
    del record["day_hashes"]  # dropped, with the hash recomputed: the head no longer matches its history copy
    record["manifest_hash"] = manifest_digest(record)
    head.write_text(json.dumps(record))
    [row] = [row for row in verify_store(monthly) if not row.ok]
    assert row.status is VerifyStatus.TAMPERED
    assert "record the same version differently, in: day_hashes" in row.detail
    record["day_hashes"] = None  # present but null: not a form this ml_platform writes
    record["manifest_hash"] = manifest_digest(record)
    head.write_text(json.dumps(record))
    with pytest.raises(ManifestError, match="malformed field"):
        monthly.manifest("quotes", "2012-01-01")


def test_only_partitions_longer_than_a_day_record_day_hashes(tmp_path: Path) -> None:
    store = PinnedStore(tmp_path / "store")
    frame = pl.DataFrame({"date": [dt.date(2012, 1, 2)], "x": [1.0]})
    day = DataWindow.parse("2012-01-02")
    assert store.write("k", "2012-01-02", frame, WriteFacts(window=day, time_column="date")).day_hashes is None
    assert store.write("k", None, frame, WriteFacts(window=JANUARY, time_column="date")).day_hashes is None
    assert store.write("k", "2012-01-01", frame, WriteFacts(window=JANUARY)).day_hashes is None
    with pytest.raises(DataError, match="time column 'x' is Float64"):
        store.write("k", "2012-01-01", frame, WriteFacts(window=JANUARY, time_column="x"))
    with pytest.raises(DataError, match="holds 1 nulls"):
        store.write("k", "2012-01-01", frame.with_columns(pl.lit(None, pl.Date).alias("date")),
                    WriteFacts(window=JANUARY, time_column="date"))


def test_recorded_day_hashes_are_checked_when_read() -> None:
    with pytest.raises(ValueError, match="ascending order"):
        DayHashes.from_dict({"column": "date", "days": {"2012-01-02": "xxh3_128:" + "0" * 32,
                                                        "2012-01-01": "xxh3_128:" + "0" * 32}})
    with pytest.raises(ValueError, match="not an ISO day"):
        DayHashes.from_dict({"column": "date", "days": {"2012-13-01": "xxh3_128:" + "0" * 32}})
    with pytest.raises(ValueError, match="must be"):
        DayHashes.from_dict({"column": "date", "days": {}, "extra": 1})


# --- the property: a day's hash is the hash of that day's daily partition --------------------------------

ROWS = st.lists(
    st.tuples(st.integers(0, 30), st.sampled_from(["A", "B", "C", "D"]),
              st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), st.text(max_size=3)),
    max_size=60)


@settings(max_examples=150, deadline=None)
@given(rows=ROWS, datetimes=st.booleans(), chunks=st.integers(1, 4))
def test_each_day_hashes_as_its_daily_partition(rows: list[tuple[int, str, float | None, str]], datetimes: bool,
                                                chunks: int) -> None:
    """Any rows of a month, in any order, any chunking: each day's hash is what the IO manager would store
    as that day's partition (its range split, ``split_by_windows``, hashed with the data hash)."""
    frame = pl.DataFrame(
        {"date": [JANUARY.start + dt.timedelta(days=day) for day, *_ in rows],
         "instrument": [r[1] for r in rows], "value": [r[2] for r in rows], "note": [r[3] for r in rows]},
        schema={"date": pl.Date, "instrument": pl.String, "value": pl.Float64, "note": pl.String})
    if datetimes:
        frame = frame.with_columns(pl.col("date").cast(pl.Datetime("us", "UTC")) + pl.duration(hours=13))
    table = frame.to_arrow()
    if chunks > 1 and table.num_rows:
        size = -(-table.num_rows // chunks)
        table = pa.Table.from_batches(table.to_batches(max_chunksize=size))
    recorded = hash_days(table, "date", JANUARY)
    parts = split_by_windows(frame, [DataWindow(day, day) for day in JANUARY], "date")
    assert recorded.hashes == {day.isoformat(): hash_table(part) for day, part in zip(JANUARY, parts, strict=True)}


def test_rows_outside_the_window_get_their_own_days(tmp_path: Path) -> None:
    frame = pl.DataFrame({"date": [dt.date(2012, 2, 1), dt.date(2012, 1, 5)], "x": [1.0, 2.0]})
    recorded = hash_days(frame.to_arrow(), "date", JANUARY)
    assert list(recorded.hashes)[-1] == "2012-02-01" and len(recorded.hashes) == 32
    assert recorded.hashes["2012-01-05"] == hash_table(frame.slice(1, 1))
    stored = PinnedStore(tmp_path / "s").write("k", "2012-01-01", frame, WriteFacts(window=JANUARY, time_column="date"))
    table = pq.read_table(PinnedStore(tmp_path / "s").data_path(stored))
    metadata = dict(table.schema.metadata)
    metadata.pop(OBJECT_METADATA_KEY)
    assert PinnedStore.changed_days(table.replace_schema_metadata(metadata), stored) == []


def test_verify_prints_one_day_of_a_monthly_partition(monthly: PinnedStore) -> None:
    args = ["verify", "quotes", "--partition", "2012-02-01", "--base-dir", monthly.base, "--no-dagster"]
    result = CliRunner().invoke(main, [*args, "--day", "2012-02-14"])
    recorded = monthly.manifest("quotes", "2012-02-01").day_hashes
    assert recorded is not None
    assert result.exit_code == 0, result.output
    assert f"quotes partition 2012-02-01 day 2012-02-14: {recorded.hashes['2012-02-14']}" in result.output
    outside = CliRunner().invoke(main, [*args, "--day", "2012-03-01"])
    assert outside.exit_code == 2 and "records 2012-02-01..2012-02-29" in outside.output
    bare = CliRunner().invoke(main, ["verify", "--base-dir", monthly.base, "--no-dagster", "--day", "2012-02-14"])
    assert bare.exit_code == 2 and "--day needs an asset and a --partition" in bare.output
