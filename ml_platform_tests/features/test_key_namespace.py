"""A key namespace (``ML_PLATFORM_KEY_NAMESPACE``, set for a reproduction's old commit loaded beside production's
code location): every Dagster asset key is prefixed, the store keys and the bytes written are the project's own."""

from __future__ import annotations

import dagster as dg
import pytest

from ml_platform import Settings, build_definitions
from ml_platform.errors import ConfigurationError, GraphError
from ml_platform.features.assets import build_feature_assets
from ml_platform.io.manager import store_key_of
from ml_platform.io.store import PinnedStore
from ml_platform.settings import parse_key_namespace
from ml_platform_tests.features.graph_fixture import write_graph_package
from ml_platform_tests.features.test_assets import CALENDAR, HISTORY, RANGE

NAMESPACE = ("repro", "0123456789ab")


def _materialize(defs: dg.Definitions, prefix: tuple[str, ...], instance: dg.DagsterInstance) -> None:
    assets = list(defs.assets or [])
    resources = dict(defs.resources or {})
    dg.materialize(assets, selection=[dg.AssetKey([*prefix, "base"])], instance=instance, resources=resources,
                   tags=HISTORY)
    dg.materialize(assets, instance=instance, resources=resources, tags=RANGE)


def test_a_namespaced_project_writes_the_same_store_keys_and_bytes(tmp_path, dagster_instance):
    module = write_graph_package(tmp_path / "src")
    assets = build_feature_assets(module.GRAPH, partitions_def=CALENDAR)
    plain = build_definitions(Settings.local(tmp_path / "plain"), assets=assets)
    spaced = build_definitions(Settings.local(tmp_path / "spaced", key_namespace=NAMESPACE),  # type: ignore[arg-type]
                               assets=build_feature_assets(module.GRAPH, partitions_def=CALENDAR))
    keys = {k.to_user_string() for k in spaced.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {f"repro/0123456789ab/{n.key}" for n in module.GRAPH}
    # dependencies moved with the keys; code versions (graph hashes) are the project's
    graph = spaced.resolve_asset_graph()
    node = graph.get(dg.AssetKey([*NAMESPACE, "c"]))
    assert node.parent_keys == {dg.AssetKey([*NAMESPACE, "a"]), dg.AssetKey([*NAMESPACE, "b"])}
    assert node.code_version == module.GRAPH["c"].graph_hash

    _materialize(plain, (), dagster_instance)
    _materialize(spaced, NAMESPACE, dagster_instance)
    a, b = PinnedStore(str(tmp_path / "plain" / "storage")), PinnedStore(str(tmp_path / "spaced" / "storage"))
    assert sorted(k for k, _ in b.list_keys()) == sorted(k for k, _ in a.list_keys()) == sorted(n.key for n in module.GRAPH)
    for n in module.GRAPH:
        for day in ("2012-03-05", "2012-03-09"):
            left, right = a.manifest(n.key, day), b.manifest(n.key, day)
            assert (right.asset_key, right.data_hash, right.graph_hash) == (left.asset_key, left.data_hash,
                                                                            left.graph_hash)
            assert [u.key for u in right.upstream] == [u.key for u in left.upstream]
    # the events are the namespaced assets' own; nothing was recorded under the plain keys by the second run
    assert dagster_instance.get_materialized_partitions(dg.AssetKey([*NAMESPACE, "c"])) == \
        dagster_instance.get_materialized_partitions(dg.AssetKey("c"))


def test_the_namespace_drops_jobs_and_checks_that_select_unprefixed_keys(tmp_path):
    module = write_graph_package(tmp_path / "src")
    assets = build_feature_assets(module.GRAPH, partitions_def=CALENDAR)
    job = dg.define_asset_job("features_job", selection=dg.AssetSelection.assets("c"))
    defs = build_definitions(Settings.local(tmp_path, key_namespace=NAMESPACE), assets=assets,  # type: ignore[arg-type]
                             jobs=[job])
    assert [j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")] == []
    defs.resolve_asset_graph()  # resolves: nothing selects a key that is not there


def test_namespace_parsing_and_bad_input():
    assert parse_key_namespace("") == () and parse_key_namespace(" repro/abc_1 ") == ("repro", "abc_1")
    for bad in ("repro//x", "repro/a-b", "/repro", "repro/é"):
        with pytest.raises(ConfigurationError, match="ML_PLATFORM_KEY_NAMESPACE"):
            parse_key_namespace(bad)
    assert Settings.from_env({"ML_PLATFORM_KEY_NAMESPACE": "repro/x1"}).key_namespace == ("repro", "x1")
    with pytest.raises(ConfigurationError, match="key namespace"):
        Settings.local(key_namespace=("a b",))  # type: ignore[arg-type]
    assert store_key_of(["repro", "x1", "team", "mom"], ("repro", "x1")) == "team/mom"
    for outside in (["team", "mom"], ["repro", "x1"], ["repro", "x2", "mom"]):
        with pytest.raises(ConfigurationError, match="outside the key namespace repro/x1"):
            store_key_of(outside, ("repro", "x1"))


def test_a_spec_cannot_be_moved_into_a_namespace(tmp_path):
    with pytest.raises(GraphError, match="specs, not computed assets"):
        build_definitions(Settings.local(tmp_path, key_namespace=NAMESPACE),  # type: ignore[arg-type]
                          assets=[dg.AssetSpec("vendor_file")])
