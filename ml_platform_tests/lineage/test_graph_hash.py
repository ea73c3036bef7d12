"""Graph hash: Merkle properties, canonical encoding and malformed graphs."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_platform.errors import GraphError
from ml_platform.lineage.graph_hash import GraphNode, compute_graph_hashes, graph_hash


def code(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c"), "e": ()}


def diamond(**code_labels: str) -> dict[str, str]:
    return compute_graph_hashes(
        GraphNode(key, code(code_labels.get(key, key)), upstream) for key, upstream in DIAMOND.items()
    )


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {key for key in before if before[key] != after[key]}


def test_diamond_merkle_properties() -> None:
    base = diamond()
    assert len(set(base.values())) == 5
    assert changed(base, diamond(a="a2")) == {"a", "b", "c", "d"}
    assert changed(base, diamond(c="c2")) == {"c", "d"}
    assert changed(base, diamond(e="e2")) == {"e"}
    assert diamond() == base


def test_graph_hash_definition_and_order_independence() -> None:
    root = graph_hash(code("a"), {})
    assert root.startswith("sha256:") and len(root) == 71
    assert graph_hash(code("d"), {"b": "gb", "c": "gc"}) == graph_hash(code("d"), {"c": "gc", "b": "gb"})
    assert graph_hash(code("d"), {"b": "gb", "c": "gc"}) != graph_hash(code("d"), {"b": "gc", "c": "gb"})
    result = compute_graph_hashes([GraphNode("b", code("b"), ("a",)), GraphNode("a", code("a"))])
    assert list(result) == ["b", "a"]
    assert result["b"] == graph_hash(code("b"), {"a": result["a"]})


def test_length_prefixing_separates_field_boundaries() -> None:
    assert graph_hash("x", {"ab": "c"}) != graph_hash("x", {"a": "bc"})
    assert graph_hash("xa", {"b": "c"}) != graph_hash("x", {"ab": "c"})


@pytest.mark.parametrize(
    ("nodes", "match"),
    [
        ([GraphNode("a", code("a"), ("b",)), GraphNode("b", code("b"), ("a",))], r"cycle: a -> b -> a"),
        ([GraphNode("a", code("a"), ("a",))], r"cycle: a -> a"),
        ([GraphNode("a", code("a"), ("ghost",))], r"'a' <- 'ghost'"),
        ([GraphNode("a", code("a")), GraphNode("a", code("a2"))], r"duplicate graph node key 'a'"),
    ],
)
def test_malformed_graphs_are_refused(nodes: list[GraphNode], match: str) -> None:
    with pytest.raises(GraphError, match=match):
        compute_graph_hashes(nodes)


def test_malformed_nodes_are_refused() -> None:
    with pytest.raises(GraphError, match="upstream=\\('a',\\)"):
        GraphNode("b", code("b"), "a")  # type: ignore[arg-type]
    with pytest.raises(GraphError, match="twice"):
        GraphNode("b", code("b"), ("a", "a"))
    with pytest.raises(GraphError, match="no code hash"):
        GraphNode("b", "", ())
    assert GraphNode("b", code("b"), ["a"]).upstream == ("a",)  # type: ignore[arg-type]


@st.composite
def dags(draw: st.DrawFn) -> tuple[dict[str, tuple[str, ...]], str]:
    """A random DAG (edges only from lower to higher index) and one of its nodes."""
    size = draw(st.integers(min_value=1, max_value=14))
    keys = [f"n{i}" for i in range(size)]
    upstream = {
        key: tuple(draw(st.lists(st.sampled_from(keys[:i]), unique=True)) if i else ())
        for i, key in enumerate(keys)
    }
    return upstream, draw(st.sampled_from(keys))


def descendants(upstream: dict[str, tuple[str, ...]], start: str) -> set[str]:
    found = {start}
    grew = True
    while grew:
        grew = False
        for key, parents in upstream.items():
            if key not in found and found.intersection(parents):
                found.add(key)
                grew = True
    return found


@settings(max_examples=60, deadline=None)
@given(dags(), st.randoms(use_true_random=False))
def test_a_code_change_changes_exactly_the_node_and_its_descendants(
    dag: tuple[dict[str, tuple[str, ...]], str], rnd: object
) -> None:
    upstream, target = dag
    order = list(upstream)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    before = compute_graph_hashes(GraphNode(k, code(k), upstream[k]) for k in order)
    after = compute_graph_hashes(
        GraphNode(k, code(k + ("'" if k == target else "")), upstream[k]) for k in order
    )
    assert changed(before, after) == descendants(upstream, target)
