"""The feature graph is a Merkle DAG over real source code: edits propagate to descendants, and only there."""

from __future__ import annotations

import json

import pytest

from ml_platform.errors import ConfigurationError, GraphError, UnresolvableReference
from ml_platform.features import FeatureGraph, Upstream, feature
from ml_platform_tests.features.graph_fixture import write_graph_package

KEYS = ("base", "a", "b", "c", "d")


def hashes(module) -> dict[str, tuple[str, str]]:
    return {n.key: (n.code_hash, n.graph_hash) for n in module.GRAPH}


def changed(before: dict, after: dict) -> set[str]:
    return {k for k in KEYS if before[k][1] != after[k][1]}


@pytest.fixture()
def original(tmp_path):
    return hashes(write_graph_package(tmp_path))


def test_comment_docstring_and_formatting_edits_keep_every_hash(tmp_path, original):
    edited = write_graph_package(
        tmp_path,
        helpers_edit=('    """Multiply by the project factor."""\n    return column * FACTOR',
                      '    """Multiply by the factor (reworded)."""\n    # a comment\n    return (column  *  FACTOR)'),
        nodes_edit=("    # scaled value\n", "    # the value, scaled by the project factor\n\n"),
    )
    assert hashes(edited) == original


def test_one_token_change_in_a_helper_changes_its_users_and_their_descendants_only(tmp_path, original):
    after = hashes(write_graph_package(tmp_path, helpers_edit=("FACTOR = 2", "FACTOR = 3")))
    assert changed(original, after) == {"a", "c"}
    assert after["a"][0] != original["a"][0]          # a's own code hash covers the helper
    assert after["c"][0] == original["c"][0]          # c's code did not change, only its graph hash


def test_one_token_change_in_an_ancestor_changes_every_descendant(tmp_path, original):
    after = hashes(write_graph_package(tmp_path, nodes_edit=("float(d.toordinal() + j)", "float(d.toordinal() - j)")))
    assert changed(original, after) == set(KEYS)      # base is everyone's ancestor


def test_changed_param_default_or_lookback_changes_the_node(tmp_path, original):
    param = hashes(write_graph_package(tmp_path, nodes_edit=('params={"n": 2}', 'params={"n": 3}')))
    assert changed(original, param) == set(KEYS)
    lookback = hashes(write_graph_package(tmp_path, nodes_edit=("lookback_days=2", "lookback_days=5")))
    assert changed(original, lookback) == {"a", "c"}


def test_middle_node_change_leaves_siblings_and_ancestors(tmp_path, original):
    after = hashes(write_graph_package(tmp_path, nodes_edit=('(pl.col("value") + 1)', '(pl.col("value") + 2)')))
    assert changed(original, after) == {"b", "c"}


def test_graph_json_lists_every_node(tmp_path):
    module = write_graph_package(tmp_path)
    doc = json.loads(module.GRAPH.to_json())
    assert next(n["key"] for n in doc["nodes"]) == "base"
    assert {n["key"] for n in doc["nodes"]} == set(KEYS)
    node = next(n for n in doc["nodes"] if n["key"] == "c")
    assert node["upstream"] == ["a", "b"] and node["function"].endswith(".nodes.c")
    assert node["file"].endswith("nodes.py") and node["graph_hash"].startswith("sha256:")
    assert module.GRAPH.descendants("a") == {"c"}


def test_unresolvable_reference_is_a_clear_error(tmp_path):
    module = write_graph_package(tmp_path, nodes_edit=("(pl.col(\"value\") * 0)", "(pl.col(\"value\") * UNDEFINED_FACTOR)"))
    with pytest.raises(UnresolvableReference, match="UNDEFINED_FACTOR"):
        list(module.GRAPH)


def test_graph_errors_name_the_problem():
    @feature(upstream={"x": "missing_node"})
    def orphan(x):
        return x

    with pytest.raises(GraphError, match="missing_node"):
        list(FeatureGraph([orphan], project_packages=("ml_platform_tests",)))
    with pytest.raises(GraphError, match="unique"):
        FeatureGraph([orphan, orphan])
    with pytest.raises(GraphError, match="@feature"):
        FeatureGraph([lambda: None])  # type: ignore[list-item]


def test_feature_declaration_errors():
    with pytest.raises(ConfigurationError, match="unexpected"):
        @feature(upstream={"x": "up"})
        def too_many(x, y):
            return x

    with pytest.raises(GraphError, match="look-ahead"):
        @feature(upstream={"x": Upstream("up", lookahead_days=3)})
        def peeks(x):
            return x

    with pytest.raises(ConfigurationError, match="params must be"):
        @feature(params={"xs": [1, 2]})
        def listy(xs):
            return xs
