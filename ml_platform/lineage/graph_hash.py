"""Graph hash: the Merkle hash of a feature node over its code and all its ancestors.

How it works, and why: docs/architecture.md, "ml_platform/lineage/graph_hash.py".
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ml_platform.errors import GraphError
from ml_platform.lineage.encoding import sha256_of_fields

GRAPH_HASH_VERSION = "mlp-graph-v1"


def graph_hash(code_hash: str, upstream: Mapping[str, str]) -> str:
    """Graph hash of one node from its code hash and its upstream nodes' graph hashes.

    Args:
        code_hash: the node's code hash (``CodeHash.digest``).
        upstream: upstream node key -> that node's graph hash.

    Returns:
        ``"sha256:<64 hex digits>"``.

    Example:
        >>> a = graph_hash("sha256:" + "0" * 64, {})
        >>> graph_hash("sha256:" + "1" * 64, {"a": a}).startswith("sha256:")
        True
    """
    if not isinstance(code_hash, str) or not code_hash:
        raise GraphError(f"a node's code hash must be a non-empty string, got {code_hash!r}")
    if not isinstance(upstream, Mapping):
        raise GraphError(f"upstream must map node keys to graph hashes, got {type(upstream).__qualname__}")
    fields = [GRAPH_HASH_VERSION, code_hash]
    for key in sorted(upstream):
        value = upstream[key]
        if not isinstance(key, str) or not key or not isinstance(value, str) or not value:
            raise GraphError(
                f"upstream entry {key!r}: {value!r} is malformed; keys and graph hashes must be non-empty strings"
            )
        fields += [key, value]
    return sha256_of_fields(fields)


@dataclass(frozen=True)
class GraphNode:
    """One node of a feature graph, as input to :func:`compute_graph_hashes`.

    Attributes:
        key: the node's unique key (e.g. the asset key as a string).
        code_hash: the node's code hash.
        upstream: keys of the nodes it reads directly (order does not matter).
    """

    key: str
    code_hash: str
    upstream: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise GraphError(f"a graph node key must be a non-empty string, got {self.key!r}")
        if not isinstance(self.code_hash, str) or not self.code_hash:
            raise GraphError(
                f"node {self.key!r} has no code hash ({self.code_hash!r}); hash its function first"
            )
        if isinstance(self.upstream, str) or not isinstance(self.upstream, (tuple, list)):
            raise GraphError(
                f"node {self.key!r}: upstream must be a tuple of node keys, got {self.upstream!r}; "
                "write upstream=('a',) for a single parent"
            )
        object.__setattr__(self, "upstream", tuple(self.upstream))
        if not all(isinstance(k, str) and k for k in self.upstream):
            raise GraphError(
                f"node {self.key!r}: upstream keys must be non-empty strings, got {self.upstream!r}"
            )
        if len(set(self.upstream)) != len(self.upstream):
            raise GraphError(f"node {self.key!r} lists an upstream node twice: {self.upstream!r}")


def compute_graph_hashes(nodes: Iterable[GraphNode]) -> dict[str, str]:
    """Graph hashes of every node of a DAG, computed in topological order.

    Args:
        nodes: every node of the graph; each upstream key must be one of them.

    Returns:
        Node key -> graph hash, in the order the nodes were given.

    Raises:
        GraphError: a duplicate key, an upstream key that is not a node, or a cycle (all named).
    """
    by_key: dict[str, GraphNode] = {}
    for node in nodes:
        if not isinstance(node, GraphNode):
            raise GraphError(f"compute_graph_hashes expects GraphNode values, got {node!r}")
        if node.key in by_key:
            raise GraphError(f"duplicate graph node key {node.key!r}; every node needs a unique key")
        by_key[node.key] = node
    missing = sorted({(n.key, u) for n in by_key.values() for u in n.upstream if u not in by_key})
    if missing:
        listed = ", ".join(f"{node!r} <- {up!r}" for node, up in missing)
        raise GraphError(
            f"upstream keys that are not nodes of the graph: {listed}; add those nodes or fix the keys"
        )

    waiting = {key: len(node.upstream) for key, node in by_key.items()}
    children: dict[str, list[str]] = {key: [] for key in by_key}
    for node in by_key.values():
        for up in node.upstream:
            children[up].append(node.key)
    ready = [key for key, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    hashes: dict[str, str] = {}
    while ready:
        key = heapq.heappop(ready)
        node = by_key[key]
        hashes[key] = graph_hash(node.code_hash, {up: hashes[up] for up in node.upstream})
        for child in children[key]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(hashes) != len(by_key):
        cycle = _find_cycle({k: by_key[k].upstream for k in by_key if k not in hashes})
        raise GraphError(
            f"the feature graph has a cycle: {' -> '.join(cycle)}; a feature cannot depend on itself, "
            "break the cycle"
        )
    return {key: hashes[key] for key in by_key}


def _find_cycle(upstream: Mapping[str, tuple[str, ...]]) -> list[str]:
    """One cycle among nodes that could not be ordered (each has an unordered upstream node)."""
    start = min(upstream)
    path: list[str] = []
    position: dict[str, int] = {}
    key = start
    while key not in position:
        position[key] = len(path)
        path.append(key)
        key = min(u for u in upstream[key] if u in upstream)
    return [*path[position[key] :], key]
