"""What a project may import from the library: ``ml_platform`` and its testing helpers, by their public names."""

from __future__ import annotations

import ast

import ml_platform
import ml_platform.testing

#: module -> the names it exports to projects
PUBLIC = {"ml_platform": set(ml_platform.__all__), "ml_platform.testing": set(ml_platform.testing.__all__)}


def private_imports(tree: ast.AST) -> list[str]:
    """Every import of ``tree`` that reaches past the public API, described; empty when there is none."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ml_platform":
            if node.module not in PUBLIC:
                found.append(f"from {node.module} import ...: public API only ({', '.join(sorted(PUBLIC))})")
                continue
            missing = sorted({a.name for a in node.names} - PUBLIC[node.module])
            if missing:
                found.append(f"{node.module} does not export {missing}")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}: use from ml_platform import ..." for a in node.names
                      if a.name.startswith("ml_platform")]
    return found
