"""Find a project's Definitions for the ``ml-platform`` command: ``--defs module:attr`` or workspace.yaml.

The command works on any project built with the library: it reads the feature nodes from the assets'
definition metadata and the store and registry from the Definitions' own resources, so it never
assumes the example's names.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import yaml

from ml_platform import metadata
from ml_platform.errors import ConfigurationError

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")  # import_module takes nothing else

__all__ = ["FeatureNodeInfo", "LoadedDefinitions", "feature_nodes", "load_definitions", "workspace_target"]


@dataclass(frozen=True)
class LoadedDefinitions:
    """A project's Definitions and where they came from (``module:attr``)."""

    defs: dg.Definitions
    target: str

    def resource(self, name: str) -> Any:
        return (self.defs.resources or {}).get(name)


@dataclass(frozen=True)
class FeatureNodeInfo:
    """What the ``graph`` command shows of one feature asset."""

    asset_key: str
    node: str
    source: str
    function: str
    upstream: tuple[str, ...]
    code_hash: str
    graph_hash: str

    def to_dict(self) -> dict[str, object]:
        return {"key": self.asset_key, "node": self.node, "source": self.source, "function": self.function,
                "upstream": list(self.upstream), "code_hash": self.code_hash, "graph_hash": self.graph_hash}


def workspace_target(path: Path) -> str:
    """The ``module:attr`` of the one python_module code location in a workspace.yaml.

    Raises:
        ConfigurationError: the file is unreadable, names no python_module location, or several (then
            ``--defs`` must choose).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}; fix it or pass --defs module:attr") from exc
    targets = []
    for entry in data.get("load_from") or []:
        module = (entry or {}).get("python_module")
        if isinstance(module, str):
            targets.append(f"{module}:defs")
        elif isinstance(module, dict) and module.get("module_name"):
            targets.append(f"{module['module_name']}:{module.get('attribute') or 'defs'}")
    if not targets:
        raise ConfigurationError(f"{path} names no python_module code location; pass --defs module:attr")
    if len(targets) > 1:
        raise ConfigurationError(f"{path} names several code locations ({', '.join(targets)}); choose one with --defs")
    return targets[0]


def load_definitions(target: str | None, *, workspace: Path | None = None) -> LoadedDefinitions:
    """Import ``module:attr`` (or the workspace's code location when ``target`` is None).

    ``attr`` may be a :class:`dagster.Definitions` or a function returning one.

    Raises:
        ConfigurationError: no target and no workspace.yaml, a malformed target, a module that does not
            import, an attribute that does not exist or is not Definitions.
    """
    if target is None:
        workspace = workspace or Path.cwd() / "workspace.yaml"
        if not workspace.is_file():
            raise ConfigurationError(
                f"no --defs given and no {workspace.name} in {workspace.parent}: pass --defs module:attr "
                "(e.g. --defs my_project.definitions:defs)")
        target = workspace_target(workspace)
    module_name, sep, attr = target.partition(":")
    if not sep or not _MODULE.fullmatch(module_name) or not attr.isidentifier() or not attr.isascii():
        raise ConfigurationError(f"--defs {target[:200]!r} is not module:attr, a dotted Python module and a name "
                                 "(e.g. my_project.definitions:defs)")
    if str(Path.cwd()) not in sys.path:  # like `dagster -m`, a project in the working directory imports
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"--defs {target!r} names nothing: module {module_name!r} is not importable "
                                 f"({exc}); install the project or run from its folder") from exc
    if not hasattr(module, attr):
        found = sorted(n for n, v in vars(module).items() if isinstance(v, dg.Definitions))
        raise ConfigurationError(f"--defs {target!r} names nothing: module {module_name!r} has no {attr!r}; "
                                 f"its Definitions are {found or 'none'}")
    value = getattr(module, attr)
    if callable(value) and not isinstance(value, dg.Definitions):
        try:
            inspect.signature(value).bind()
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"--defs {target!r} is a {type(value).__name__} that takes arguments, not "
                                     "dagster.Definitions or a function returning them") from exc
        value = value()
    if not isinstance(value, dg.Definitions):
        raise ConfigurationError(f"--defs {target!r} is a {type(value).__name__}, not dagster.Definitions")
    return LoadedDefinitions(value, target)


def feature_nodes(defs: dg.Definitions) -> list[FeatureNodeInfo]:
    """Every feature asset of ``defs`` (assets carrying ml_platform's graph hash), in definition order."""
    out = []
    for assets_def in defs.assets or []:
        if not isinstance(assets_def, dg.AssetsDefinition):
            continue
        for key in assets_def.keys:
            meta = assets_def.metadata_by_key.get(key, {})
            if metadata.GRAPH_HASH not in meta:
                continue
            source = meta.get(metadata.SOURCE)
            out.append(FeatureNodeInfo(
                asset_key=key.to_user_string(), node=str(meta.get(metadata.NODE, key.path[-1])),
                source=str(getattr(source, "value", source) or "?"), function=str(meta.get(metadata.FUNCTION, "?")),
                upstream=tuple(meta.get(metadata.UPSTREAM) or ()), code_hash=str(meta[metadata.CODE_HASH]),
                graph_hash=str(meta[metadata.GRAPH_HASH])))
    return out
