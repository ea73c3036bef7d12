"""Feature assets on a real Dagster instance: code versions, data versions, metadata, and staleness."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.errors import DagsterUnknownPartitionError
from dagster._core.loader import LoadingContextForTest

from ml_platform.errors import ManifestError
from ml_platform.features.assets import build_feature_assets
from ml_platform.io.manager import PinnedIOManager, PinnedStoreResource
from ml_platform.lineage.data_hash import hash_table
from ml_platform_tests.features.graph_fixture import write_graph_package

CALENDAR = dg.DailyPartitionsDefinition(start_date="2000-01-03")
DAY = "2012-03-07"
RANGE = {"dagster/asset_partition_range_start": "2012-03-05", "dagster/asset_partition_range_end": "2012-03-09"}


def resources(tmp_path):
    base = str(tmp_path / "store")
    return {"io_manager": PinnedIOManager(base_dir=base), "feature_store": PinnedStoreResource(base_dir=base)}


HISTORY = {"dagster/asset_partition_range_start": "2012-03-01", "dagster/asset_partition_range_end": "2012-03-09"}


def materialize_range(module, tmp_path, instance, tags=RANGE):
    """The root's history first (lookbacks need it, point-in-time), then the whole graph over the range."""
    assets = build_feature_assets(module.GRAPH, partitions_def=CALENDAR)
    dg.materialize(assets, selection=[dg.AssetKey("base")], instance=instance,  # raises on failure
                   resources=resources(tmp_path), tags=HISTORY)
    return dg.materialize(assets, instance=instance, resources=resources(tmp_path), tags=tags)


def statuses(module, instance, partition=DAY) -> dict[str, StaleStatus]:
    defs = dg.Definitions(assets=build_feature_assets(module.GRAPH, partitions_def=CALENDAR))
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
    return {n.key: resolver.get_status(dg.AssetKey(n.key), partition) for n in module.GRAPH}


def test_code_version_is_graph_hash_and_metadata_shows_the_hashes(tmp_path, dagster_instance):
    module = write_graph_package(tmp_path / "src")
    result = materialize_range(module, tmp_path, dagster_instance)
    mats = {(m.asset_key.to_user_string(), m.partition): m for m in result.asset_materializations_for_node("c")}
    assert len(mats) == 5                                   # one materialization per day of the range
    record = dagster_instance.get_latest_materialization_event(dg.AssetKey("c"))
    meta = record.asset_materialization.metadata
    node = module.GRAPH["c"]
    assert meta["ml_platform/graph_hash"].value == node.graph_hash
    assert meta["ml_platform/code_hash"].value == node.code_hash
    assert meta["ml_platform/data_hash"].value.startswith("xxh3_128:")
    tags = record.asset_materialization.tags or {}
    assert tags.get("dagster/code_version") == node.graph_hash
    store = PinnedStoreResource(base_dir=str(tmp_path / "store")).get_store()
    day = record.asset_materialization.partition
    assert meta["ml_platform/data_hash"].value == store.manifest("c", day).data_hash   # that day's own hash
    assert meta["ml_platform/rows"].value == 2                                          # that day's rows
    # the run's data version is the content hash of the whole range: the days read back, concatenated
    days = ["2012-03-05", "2012-03-06", "2012-03-07", "2012-03-08", "2012-03-09"]
    frame, _ = store.read_many("c", days)
    assert tags.get("dagster/data_version") == hash_table(frame)
    # each day's manifest lists exactly the upstream partitions that day can depend on
    a_refs = [(u.key, u.partition) for u in store.manifest("a", "2012-03-07").upstream]
    assert a_refs == [("base", "2012-03-05"), ("base", "2012-03-06"), ("base", "2012-03-07")]


def test_data_versions_are_per_partition_and_stable_across_reruns(tmp_path, dagster_instance):
    module = write_graph_package(tmp_path / "src")
    materialize_range(module, tmp_path, dagster_instance)
    first = dagster_instance.get_latest_materialization_event(dg.AssetKey("a")).asset_materialization
    materialize_range(module, tmp_path, dagster_instance)
    second = dagster_instance.get_latest_materialization_event(dg.AssetKey("a")).asset_materialization
    assert first.tags["dagster/data_version"] == second.tags["dagster/data_version"]
    store = PinnedStoreResource(base_dir=str(tmp_path / "store")).get_store()
    hashes = {store.manifest("a", f"2012-03-0{d}").data_hash for d in range(5, 10)}
    assert len(hashes) == 5                                 # different days, different content
    assert set(statuses(module, dagster_instance).values()) == {StaleStatus.FRESH}


def test_ancestor_code_change_makes_every_descendant_unsynced_and_nothing_else(tmp_path, dagster_instance):
    v1 = write_graph_package(tmp_path / "src")
    materialize_range(v1, tmp_path, dagster_instance)
    assert set(statuses(v1, dagster_instance).values()) == {StaleStatus.FRESH}

    # the helper that `a` calls changes by one token: a and its descendant c are unsynced, b, d, base are not
    v2 = write_graph_package(tmp_path / "src", helpers_edit=("FACTOR = 2", "FACTOR = 3"))
    got = statuses(v2, dagster_instance)
    assert {k for k, s in got.items() if s == StaleStatus.STALE} == {"a", "c"}
    assert {k for k, s in got.items() if s == StaleStatus.FRESH} == {"base", "b", "d"}

    # a comment-only edit of the root unsyncs nothing
    v3 = write_graph_package(tmp_path / "src", nodes_edit=("    # scaled value\n", "    # reworded comment\n"))
    assert set(statuses(v3, dagster_instance).values()) == {StaleStatus.FRESH}

    # a logic change in the root unsyncs everything
    v4 = write_graph_package(tmp_path / "src", nodes_edit=("float(d.toordinal() + j)", "float(d.toordinal() - j)"))
    assert set(statuses(v4, dagster_instance).values()) == {StaleStatus.STALE}


def test_lookback_partitions_must_exist(tmp_path, dagster_instance):
    module = write_graph_package(tmp_path / "src")
    assets = build_feature_assets(module.GRAPH, partitions_def=CALENDAR)
    dg.materialize(assets, selection=[dg.AssetKey("base")], instance=dagster_instance,
                   resources=resources(tmp_path), partition_key=DAY)
    # `a` needs two days of lookback that were never materialized: a clear error, no output written
    with pytest.raises(ManifestError, match="nothing is stored for base partition 2012-03-05.*materialize it first"):
        dg.materialize(assets, selection=[dg.AssetKey("a")], instance=dagster_instance,
                       resources=resources(tmp_path), partition_key=DAY)
    assert not PinnedStoreResource(base_dir=str(tmp_path / "store")).get_store().exists("a", DAY)


def test_unknown_partition_key_is_refused(tmp_path, dagster_instance):
    module = write_graph_package(tmp_path / "src")
    with pytest.raises(DagsterUnknownPartitionError, match="2012-02-30"):
        dg.materialize(build_feature_assets(module.GRAPH, partitions_def=CALENDAR), instance=dagster_instance,
                       resources=resources(tmp_path), partition_key="2012-02-30")


def test_range_run_writes_every_day_and_reads_back(tmp_path, dagster_instance):
    module = write_graph_package(tmp_path / "src")
    materialize_range(module, tmp_path, dagster_instance)
    store = PinnedStoreResource(base_dir=str(tmp_path / "store")).get_store()
    frame, manifests = store.read_many("c", ["2012-03-05", "2012-03-06", "2012-03-07", "2012-03-08", "2012-03-09"])
    assert frame.height == 10 and frame["date"].n_unique() == 5
    assert all(m.graph_hash == module.GRAPH["c"].graph_hash for m in manifests)
    assert frame.sort("date", "instrument").equals(frame)
