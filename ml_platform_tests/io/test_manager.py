"""PinnedIOManager on a real Dagster instance: partitions, ranges, lookback loads, metadata, policies."""

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    DagsterInstance,
    DailyPartitionsDefinition,
    ExecuteInProcessResult,
    MetadataValue,
    Output,
    TimeWindowPartitionMapping,
    asset,
    materialize,
)
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from polars.testing import assert_frame_equal

from ml_platform.environment import EnvironmentLock, capture_environment, derive_seed, git_state
from ml_platform.errors import ConfigurationError, PartitionError
from ml_platform.io import PinnedStore
from ml_platform.io.manager import PinnedIOManager, PinnedStoreResource
from ml_platform.lineage.data_hash import hash_table
from ml_platform.metadata import PROJECT_ROOT
from ml_platform.window import DataWindow

DAILY = DailyPartitionsDefinition(start_date="2012-01-01", end_date="2012-02-01")
GRAPH_HASH = "sha256:" + "9" * 64


def price_frame(days: list[str]) -> pl.DataFrame:
    dates = [dt.date.fromisoformat(day) for day in days]
    return pl.DataFrame(
        {
            "date": [date for date in dates for _ in range(3)],
            "symbol": ["A", "B", "C"] * len(dates),
            "px": [date.toordinal() % 97 + i for date in dates for i in range(3)],
        },
        schema={"date": pl.Date, "symbol": pl.String, "px": pl.Float64},
    )


@asset(partitions_def=DAILY, key_prefix="market")
def prices(context: AssetExecutionContext) -> Output[pl.DataFrame]:
    # a range run is split into one file per partition on the column this metadata names
    return Output(price_frame(list(context.partition_keys)), metadata={"ml_platform/time_column": "date"})


@asset(partitions_def=DAILY, key_prefix="market", name="prices_unnamed_time")
def prices_unnamed_time(context: AssetExecutionContext) -> pl.DataFrame:
    return price_frame(list(context.partition_keys))


@asset(
    partitions_def=DAILY,
    ins={
        "prices": AssetIn(
            key=AssetKey(["market", "prices"]), partition_mapping=TimeWindowPartitionMapping(start_offset=-2)
        )
    },
)
def momentum(context: AssetExecutionContext, prices: pl.DataFrame) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [dt.date.fromisoformat(context.partition_key)],
            "rows_seen": [prices.height],
            "first_day": [prices["date"].min()],
            "total": [prices["px"].sum()],
        }
    )


def signal_asset(partition_hash: str | None) -> Any:
    """An asset emitting the output metadata the feature-graph wrapper sets (optionally a lying hash)."""

    @asset(partitions_def=DAILY, ins={"prices": AssetIn(key=AssetKey(["market", "prices"]))})
    def signal(context: AssetExecutionContext, prices: pl.DataFrame) -> Output[pl.DataFrame]:
        frame = prices.with_columns((pl.col("px") * 2).alias("signal"))
        key = context.partition_key
        return Output(
            frame,
            metadata={
                "ml_platform/code_hash": "sha256:" + "8" * 64,
                "ml_platform/graph_hash": GRAPH_HASH,
                "ml_platform/data_hash": partition_hash or hash_table(frame),
                "ml_platform/window": f"{key}..{key}",
                "ml_platform/seeds": MetadataValue.json({"default": derive_seed(GRAPH_HASH, key)}),
                "ml_platform/params": MetadataValue.json({"scale": 2}),
            },
        )

    return signal


@asset
def universe() -> pa.Table:
    return pa.table({"symbol": ["A", "B", "C"], "weight": [0.5, 0.3, 0.2]})


@asset
def universe_summary(universe: pa.Table) -> pl.DataFrame:
    assert isinstance(universe, pa.Table)  # an input annotated pa.Table is loaded as Arrow
    return pl.DataFrame({"symbols": [universe.num_rows]})


def run(
    assets: list[Any], io: PinnedIOManager, instance: DagsterInstance, **kwargs: Any
) -> ExecuteInProcessResult:
    return materialize(assets, resources={"io_manager": io}, instance=instance, **kwargs)


def materializations(result: ExecuteInProcessResult) -> dict[tuple[str, str | None], dict[str, Any]]:
    found = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        key = "/".join(materialization.asset_key.path)
        found[(key, materialization.partition)] = {k: v.value for k, v in materialization.metadata.items()}
    return found


def error_text(result: ExecuteInProcessResult, node: str) -> str:
    error = result.failure_data_for_node(node).error  # type: ignore[union-attr]
    parts = []
    while error is not None:
        parts.append(f"{error.cls_name}: {error.message}")
        error = error.cause
    return "\n".join(parts)


def materialize_prices(io: PinnedIOManager, instance: DagsterInstance, first: str, last: str) -> None:
    """One single-run backfill of ``prices`` over ``first..last``."""
    run(
        [prices],
        io,
        instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
    )


def faked_lock() -> EnvironmentLock:
    lock = capture_environment()
    return dataclasses.replace(
        lock, packages=tuple((n, "0.0.1" if n == "polars" else v) for n, v in lock.packages)
    )


@pytest.fixture
def io(tmp_path: Path) -> PinnedIOManager:
    return PinnedIOManager(base_dir=str(tmp_path / "storage"))


def test_unpartitioned_round_trip_with_manifest_and_metadata(
    io: PinnedIOManager, dagster_instance: DagsterInstance
) -> None:
    result = run([universe, universe_summary], io, dagster_instance)
    store = io.get_store()
    stored = store.read("universe", None)
    assert stored.frame.to_arrow().equals(universe().cast(stored.frame.to_arrow().schema))
    summary = store.read("universe_summary", None)
    assert summary.frame["symbols"].to_list() == [3]
    assert summary.manifest.upstream[0].key == "universe"
    assert summary.manifest.upstream[0].data_hash == stored.manifest.data_hash
    assert summary.manifest.run_id == result.run_id
    metadata = materializations(result)[("universe", None)]
    assert metadata["ml_platform/data_hash"] == stored.manifest.data_hash
    assert metadata["ml_platform/environment_hash"] == capture_environment().hash
    assert metadata["ml_platform/manifest"] == store.manifest_path("universe", None)
    assert metadata["ml_platform/rows"] == 3
    assert metadata["ml_platform/manifest_hash"] == stored.manifest.manifest_hash  # the anchor verify compares
    code_checkout = git_state()  # with no project root named, the store records the working directory's checkout
    assert (stored.manifest.git_commit, stored.manifest.git_dirty) == (
        code_checkout.commit,
        code_checkout.dirty,
    )
    assert metadata["ml_platform/git_dirty"] is code_checkout.dirty
    assert metadata["ml_platform/git_commit"] == (code_checkout.commit or "(not a git checkout)")


def test_single_run_range_writes_one_file_per_day(
    io: PinnedIOManager, dagster_instance: DagsterInstance
) -> None:
    days = [f"2012-01-0{i}" for i in range(1, 6)]
    tags = {ASSET_PARTITION_RANGE_START_TAG: days[0], ASSET_PARTITION_RANGE_END_TAG: days[-1]}
    result = run([prices], io, dagster_instance, tags=tags)
    store = io.get_store()
    assert [m.partition for m in store.manifests("market/prices")] == days
    events = materializations(result)
    for day in days:
        stored = store.read("market/prices", day)
        assert_frame_equal(stored.frame, price_frame([day]))
        assert stored.manifest.window == DataWindow.parse(day)
        assert events[("market/prices", day)]["ml_platform/data_hash"] == stored.manifest.data_hash
        assert events[("market/prices", day)]["ml_platform/manifest_hash"] == stored.manifest.manifest_hash
        assert events[("market/prices", day)]["ml_platform/manifest"] == store.manifest_path(
            "market/prices", day
        )


def test_range_run_without_a_time_column_is_refused_naming_the_metadata(
    io: PinnedIOManager, dagster_instance: DagsterInstance
) -> None:
    tags = {ASSET_PARTITION_RANGE_START_TAG: "2012-01-01", ASSET_PARTITION_RANGE_END_TAG: "2012-01-03"}
    with pytest.raises(PartitionError, match="ml_platform/time_column"):
        run([prices_unnamed_time], io, dagster_instance, tags=tags)
    assert list(io.get_store().manifests("market/prices_unnamed_time")) == []   # nothing written


def test_lookback_load_concatenates_partitions_and_records_them_upstream(
    io: PinnedIOManager, dagster_instance: DagsterInstance
) -> None:
    materialize_prices(io, dagster_instance, "2012-01-02", "2012-01-04")
    result = run([prices, momentum], io, dagster_instance, partition_key="2012-01-04", selection=[momentum])
    store = io.get_store()
    stored = store.read("momentum", "2012-01-04")
    assert stored.frame["rows_seen"].to_list() == [9]
    assert stored.frame["first_day"].to_list() == [dt.date(2012, 1, 2)]
    expected = [(m.asset_key, m.partition, m.data_hash) for m in store.manifests("market/prices")]
    assert [(r.key, r.partition, r.data_hash) for r in stored.manifest.upstream] == expected
    metadata = materializations(result)[("momentum", "2012-01-04")]
    assert [ref["partition"] for ref in metadata["ml_platform/upstream"]] == [
        "2012-01-02",
        "2012-01-03",
        "2012-01-04",
    ]


def test_wrapper_metadata_lands_in_the_manifest_and_the_reused_hash_is_right(
    io: PinnedIOManager, dagster_instance: DagsterInstance
) -> None:
    day = "2012-01-03"
    run([prices], io, dagster_instance, partition_key=day)
    run([prices, signal_asset(None)], io, dagster_instance, partition_key=day, selection=["signal"])
    store = io.get_store()
    manifest = store.manifest("signal", day)
    assert manifest.code_hash == "sha256:" + "8" * 64 and manifest.graph_hash == GRAPH_HASH
    assert dict(manifest.seeds) == {"default": derive_seed(GRAPH_HASH, day)}
    assert dict(manifest.params) == {"scale": 2} and manifest.window == DataWindow.parse(day)
    on_disk = pq.read_table(store.data_path(manifest)).replace_schema_metadata(None)
    assert manifest.data_hash == hash_table(on_disk)


def test_a_lying_partition_hash_is_stored_as_given_and_refused_on_load(
    io: PinnedIOManager, dagster_instance: DagsterInstance
) -> None:
    day = "2012-01-03"
    lie = "xxh3_128:" + "0" * 32
    run([prices], io, dagster_instance, partition_key=day)
    run([prices, signal_asset(lie)], io, dagster_instance, partition_key=day, selection=["signal"])
    assert io.get_store().manifest("signal", day).data_hash == lie  # reused, not recomputed on write

    @asset(partitions_def=DAILY)
    def consumer(signal: pl.DataFrame) -> pl.DataFrame:
        return signal

    result = run(
        [prices, signal_asset(lie), consumer],
        io,
        dagster_instance,
        partition_key=day,
        selection=[consumer],
        raise_on_error=False,
    )
    assert not result.success
    assert "IntegrityError: [INTEGRITY_ERROR]" in error_text(result, "consumer")
    assert f"expected {lie}" in error_text(result, "consumer")


def test_a_flipped_byte_fails_the_downstream_load(
    io: PinnedIOManager, dagster_instance: DagsterInstance
) -> None:
    materialize_prices(io, dagster_instance, "2012-01-02", "2012-01-04")
    store = io.get_store()
    path = Path(store.data_path(store.manifest("market/prices", "2012-01-03")))
    content = bytearray(path.read_bytes())
    content[len(content) // 3] ^= 0x10
    path.write_bytes(bytes(content))
    result = run(
        [prices, momentum],
        io,
        dagster_instance,
        partition_key="2012-01-04",
        selection=[momentum],
        raise_on_error=False,
    )
    assert not result.success
    text = error_text(result, "momentum")
    assert "IntegrityError" in text and str(path) in text


def test_environment_policy_strict_refuses_and_warn_records(
    tmp_path: Path, dagster_instance: DagsterInstance
) -> None:
    base = tmp_path / "storage"
    old = PinnedStore(base, environment=faked_lock())
    for day in ["2012-01-02", "2012-01-03", "2012-01-04"]:
        old.write("market/prices", day, price_frame([day]))
    running_polars = capture_environment().package_versions["polars"]

    strict = PinnedIOManager(base_dir=str(base), environment_policy="strict")
    result = run(
        [prices, momentum],
        strict,
        dagster_instance,
        partition_key="2012-01-04",
        selection=[momentum],
        raise_on_error=False,
    )
    assert not result.success
    text = error_text(result, "momentum")
    assert "EnvironmentMismatch" in text and f"package polars: 0.0.1 -> {running_polars}" in text

    warn = PinnedIOManager(base_dir=str(base), environment_policy="warn")
    result = run([prices, momentum], warn, dagster_instance, partition_key="2012-01-04", selection=[momentum])
    metadata = materializations(result)[("momentum", "2012-01-04")]
    assert f"package polars: 0.0.1 -> {running_polars}" in metadata["ml_platform/environment_diff"]


def test_store_resource_reads_with_manifests(io: PinnedIOManager, dagster_instance: DagsterInstance) -> None:
    run([prices], io, dagster_instance, partition_key="2012-01-03")
    seen: dict[str, Any] = {}

    @asset(deps=[prices])
    def audit(pinned_store: PinnedStoreResource) -> Output[pl.DataFrame]:
        stored = pinned_store.get_store().read("market/prices", "2012-01-03")
        seen["manifest"] = manifest = stored.manifest
        read = {"key": manifest.asset_key, "partition": manifest.partition, "data_hash": manifest.data_hash}
        return Output(stored.frame, metadata={"ml_platform/upstream": [read]})

    result = materialize(
        [audit],
        instance=dagster_instance,
        resources={
            "io_manager": io,
            "pinned_store": PinnedStoreResource(base_dir=io.base_dir, environment_policy="strict"),
        },
    )
    prices_manifest = seen["manifest"]
    assert prices_manifest.partition == "2012-01-03"
    audit_stored = io.get_store().read("audit", None)
    assert_frame_equal(audit_stored.frame, price_frame(["2012-01-03"]))
    # inputs read through the resource and declared as metadata are recorded like loaded ones
    expected = ("market/prices", "2012-01-03", prices_manifest.data_hash)
    assert [(r.key, r.partition, r.data_hash) for r in audit_stored.manifest.upstream] == [expected]
    shown = materializations(result)[("audit", None)]["ml_platform/upstream"]
    assert [(r["key"], r["partition"], r["data_hash"]) for r in shown] == [expected]


def test_bad_settings_and_outputs_are_refused(io: PinnedIOManager, dagster_instance: DagsterInstance) -> None:
    with pytest.raises(ConfigurationError, match="unknown environment policy 'bogus'"):
        PinnedIOManager(base_dir="x", environment_policy="bogus")
    with pytest.raises(ConfigurationError, match="unknown Parquet compression 'zip'"):
        PinnedStoreResource(base_dir="x", compression="zip")

    @asset
    def not_a_frame() -> dict[str, int]:
        return {"x": 1}

    result = run([not_a_frame], io, dagster_instance, raise_on_error=False)
    assert "DataError" in error_text(result, "not_a_frame")
    assert "stores polars DataFrames and pyarrow Tables only" in error_text(result, "not_a_frame")


def test_range_output_with_rows_outside_the_run_is_refused(
    io: PinnedIOManager, dagster_instance: DagsterInstance
) -> None:
    @asset(partitions_def=DAILY, key_prefix="market", name="prices")
    def sloppy_prices(context: AssetExecutionContext) -> Output[pl.DataFrame]:
        return Output(price_frame([*context.partition_keys, "2012-01-20"]), metadata={"ml_platform/time_column": "date"})

    tags = {ASSET_PARTITION_RANGE_START_TAG: "2012-01-01", ASSET_PARTITION_RANGE_END_TAG: "2012-01-03"}
    result = run([sloppy_prices], io, dagster_instance, tags=tags, raise_on_error=False)
    assert "outside the partitions 2012-01-01..2012-01-03" in error_text(result, "market__prices")
    assert list(io.get_store().manifests()) == []


def test_manifest_json_is_readable_by_humans(io: PinnedIOManager, dagster_instance: DagsterInstance) -> None:
    run([universe], io, dagster_instance)
    record = json.loads(Path(io.get_store().manifest_path("universe", None)).read_text())
    assert record["schema_version"] == "ml_platform.manifest/v3"
    assert record["asset_key"] == "universe" and record["partition"] is None


def test_a_reader_outside_the_project_compares_environments_as_the_writer_captured_them(
    tmp_path: Path, dagster_instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose working directory lies outside the project (a Celery worker, a pod) reads what a step wrote
    with the asset's project root: it must capture its own environment with that root too, or the uv.lock the
    writer found would count as a difference and the strict policy would refuse every read."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "uv.lock").write_text("version = 1\n")
    worker = tmp_path / "worker"  # no uv.lock here nor above (the temporary folder)
    worker.mkdir()
    monkeypatch.chdir(worker)
    declared = {PROJECT_ROOT: str(project)}

    # as build_feature_assets declares it: on the definition (for readers) and on each output (for the writer)
    @asset(metadata=declared)
    def bars() -> Output[pl.DataFrame]:
        return Output(pl.DataFrame({"x": [1.0, 2.0]}), metadata=declared)

    @asset(metadata=declared)
    def doubled(bars: pl.DataFrame) -> Output[pl.DataFrame]:
        return Output(bars.select(pl.col("x") * 2), metadata=declared)

    strict = PinnedIOManager(base_dir=str(tmp_path / "storage"), environment_policy="strict")
    result = run([bars, doubled], strict, dagster_instance, raise_on_error=False)
    assert result.success, error_text(result, "doubled")
    written = PinnedStore(tmp_path / "storage").manifest("bars", None)
    assert written.environment.uv_lock_hash == capture_environment(project).uv_lock_hash
    assert written.environment.uv_lock_hash is not None and capture_environment().uv_lock_hash is None
