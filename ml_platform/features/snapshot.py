"""Code snapshot of a feature graph: the source behind every node's code hash, stored with a model.

A year later the repository has moved on; the snapshot lets a reviewer read exactly the code a model's
features were computed with, and the reproduction step check it against the recorded hashes.
"""

from __future__ import annotations

import importlib
import inspect

from ml_platform.features.graph import FeatureGraph


def _resolve(qualified: str) -> object | None:
    """Import ``pkg.module.Name[.attr]`` by trying the longest importable module prefix."""
    parts = qualified.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for name in parts[cut:]:
                obj = getattr(obj, name)
        except AttributeError:
            return None
        return obj
    return None


def _source(obj: object) -> str | None:
    try:
        return inspect.getsource(inspect.unwrap(obj))  # type: ignore[arg-type]
    except (TypeError, OSError):
        return None


def code_snapshot(graph: FeatureGraph) -> dict[str, str]:
    """Feature node key -> its function's source followed by every project object it reaches."""
    out: dict[str, str] = {}
    for node in graph:
        parts = [(f"# {node.function}  ({node.file}:{node.line})\n# code_hash {node.code_hash}\n"
                 f"# graph_hash {node.graph_hash}\n"), inspect.getsource(inspect.unwrap(node.spec.fn))]
        for ref in node.references:
            obj = _resolve(ref)
            text = _source(obj) if obj is not None and (inspect.isfunction(obj) or inspect.isclass(obj)) else None
            parts.append(f"\n# --- {ref}\n" + (text if text is not None else f"{ref} = {obj!r}\n"))
        out[node.key] = "".join(parts)
    return out


def code_hashes(graph: FeatureGraph) -> dict[str, dict[str, str]]:
    """Feature node key -> its code and graph hash."""
    return {n.key: {"code_hash": n.code_hash, "graph_hash": n.graph_hash} for n in graph}
