"""The feature graph: feature specs hashed into a Merkle DAG. Pure, no Dagster.

Each node's **code hash** comes from :class:`~ml_platform.lineage.code_hash.CodeHasher` (normalized AST of
the function and every project-local function, class and constant it reaches, plus its declared params);
its **graph hash** folds in every upstream node's graph hash
(:func:`~ml_platform.lineage.graph_hash.compute_graph_hashes`), so an ancestor's code change changes the
hash of every descendant and of nothing else.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from ml_platform.errors import GraphError
from ml_platform.features.spec import FeatureSpec
from ml_platform.keys import DEFAULT_KEYS, FrameKeys
from ml_platform.lineage.code_hash import CodeHasher
from ml_platform.lineage.graph_hash import GraphNode, compute_graph_hashes


@dataclass(frozen=True)
class HashedFeature:
    """A feature spec with its derived identity."""

    spec: FeatureSpec
    code_hash: str
    graph_hash: str
    references: tuple[str, ...]
    file: str
    line: int

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def function(self) -> str:
        return f"{self.spec.fn.__module__}.{self.spec.fn.__qualname__}"

    def to_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "file": self.file,
            "line": self.line,
            "function": self.function,
            "upstream": list(self.spec.upstream_keys),
            "code_hash": self.code_hash,
            "graph_hash": self.graph_hash,
        }


class FeatureGraph:
    """An immutable set of feature specs, validated and hashed on first use.

    Args:
        specs: the feature nodes.
        keys: the key columns every node's frame carries (default ``date``, ``instrument``).
        project_packages: top-level packages whose code is folded into code hashes; code elsewhere
            (third-party libraries, ml_platform itself) is pinned by the environment lock instead.
            Defaults to the packages of the specs' functions.
        project_root: the folder of the project holding the feature code, whose git commit and
            ``uv.lock`` are recorded with every artefact. Defaults to the folder containing the first
            project package.

    Example:
        >>> graph = FeatureGraph([market_bars, daily_returns, momentum])
        >>> graph["momentum"].graph_hash
        'sha256:...'
    """

    def __init__(self, specs: Iterable[FeatureSpec], *, keys: FrameKeys = DEFAULT_KEYS,
                 project_packages: Iterable[str] | None = None,
                 project_root: str | os.PathLike[str] | None = None) -> None:
        if not isinstance(keys, FrameKeys):
            raise GraphError(f"keys must be a FrameKeys, got {keys!r}; e.g. FrameKeys('date', ('instrument',))")
        self.keys = keys
        self._specs: dict[str, FeatureSpec] = {}
        for spec in specs:
            if not isinstance(spec, FeatureSpec):
                raise GraphError(f"{spec!r} is not a feature; decorate the function with @feature(...)")
            if spec.key in self._specs:
                raise GraphError(f"two feature nodes share the key {spec.key!r}; keys must be unique")
            self._specs[spec.key] = spec
        if not self._specs:
            raise GraphError("a feature graph needs at least one @feature node")
        for spec in self._specs.values():
            clash = set(spec.upstream) & set(keys.columns)
            if clash:
                raise GraphError(f"feature {spec.key!r}: parameter names {sorted(clash)} are key columns")
        packages = set(project_packages or ())
        if project_packages is None:
            packages = {s.fn.__module__.split(".")[0] for s in self._specs.values()}
        self.project_packages: tuple[str, ...] = tuple(sorted(packages))
        self._project_root = None if project_root is None else str(Path(project_root).resolve())

    @property
    def project_root(self) -> str:
        """The folder of the project holding the feature code (given, or where its package lives)."""
        if self._project_root is not None:
            return self._project_root
        first = next(iter(self._specs.values())).fn.__module__.split(".")[0]
        module = sys.modules.get(first)
        location = getattr(module, "__file__", None)
        if location is None:  # a namespace package or a module run as __main__: the working directory
            return str(Path.cwd())
        path = Path(location).resolve()
        return str(path.parent.parent if path.name == "__init__.py" else path.parent)
    @cached_property
    def _hashed(self) -> dict[str, HashedFeature]:
        hasher = CodeHasher(self.project_packages)
        code = {key: hasher.hash_function(spec.fn, params=self._hashed_params(spec)) for key, spec in self._specs.items()}
        graph = compute_graph_hashes(
            GraphNode(key=key, code_hash=code[key].digest, upstream=spec.upstream_keys)
            for key, spec in self._specs.items()
        )
        out: dict[str, HashedFeature] = {}
        for key in self._topological():
            spec = self._specs[key]
            fn = inspect.unwrap(spec.fn)
            out[key] = HashedFeature(
                spec=spec,
                code_hash=code[key].digest,
                graph_hash=graph[key],
                references=code[key].references,
                file=inspect.getsourcefile(fn) or "?",
                line=fn.__code__.co_firstlineno,
            )
        return out

    @staticmethod
    def _hashed_params(spec: FeatureSpec) -> dict[str, object]:
        """What besides the code defines the node: params and how upstream is fed (lookbacks)."""
        return {
            "params": dict(spec.params),
            "seed_params": list(spec.seed_params),
            "partitioned": spec.partitioned,
            "label": spec.label,
            "upstream": {name: u.hashed() for name, u in sorted(spec.upstream.items())},
        }

    def _topological(self) -> list[str]:
        order: list[str] = []
        seen: set[str] = set()

        def visit(key: str) -> None:
            if key in seen:
                return
            seen.add(key)
            for up in self._specs[key].upstream_keys:
                if up in self._specs:
                    visit(up)
            order.append(key)

        for key in sorted(self._specs):
            visit(key)
        return order

    def __getitem__(self, key: str) -> HashedFeature:
        try:
            return self._hashed[key]
        except KeyError:
            raise GraphError(f"no feature node {key!r}; known nodes: {', '.join(sorted(self._specs))}") from None

    def __iter__(self) -> Iterator[HashedFeature]:
        return iter(self._hashed.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def with_function(self, key: str, fn: Callable[..., object]) -> FeatureGraph:
        """This graph with node ``key`` computed by ``fn`` instead: what a code edit of that node is.

        ``fn`` must take the same arguments as the function it replaces. The new graph hashes ``fn``
        (and what it reaches) for ``key``, so ``key`` and every descendant get new graph hashes.
        """
        self[key]
        specs = [replace(spec, fn=fn) if k == key else spec for k, spec in self._specs.items()]
        return FeatureGraph(specs, keys=self.keys, project_packages=self.project_packages,
                            project_root=self._project_root)

    def descendants(self, key: str) -> set[str]:
        """Every node downstream of ``key`` (not including it)."""
        self[key]
        out: set[str] = set()
        frontier = [key]
        while frontier:
            current = frontier.pop()
            for other, spec in self._specs.items():
                if current in spec.upstream_keys and other not in out:
                    out.add(other)
                    frontier.append(other)
        return out

    def to_json(self) -> str:
        """The graph as one JSON object ``{"nodes": [...]}`` in topological order."""
        return json.dumps({"nodes": [node.to_dict() for node in self]}, indent=2)
