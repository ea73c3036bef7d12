"""The house stays without knots: no import cycle in ml_platform, imports at the top of modules.

Read from the source with :mod:`ast` (nothing is imported), so a cycle hidden inside a function or behind
``TYPE_CHECKING`` is found as well. ``lint-imports`` (pyproject.toml) holds the layers; these tests hold
what import-linter cannot say: no cycle at all, between modules or packages, and no import inside a
function except a heavy dependency loaded lazily on purpose.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ml_platform"

#: Third-party packages that may be imported inside a function: each is heavy to import and needed on
#: one path only (Dagster's daemon internals, plotting, the pager and Slack clients, the array stack).
LAZY_HEAVY = {"dagster", "mlflow", "matplotlib", "pagerduty", "slack_sdk", "upath", "numpy", "polars", "pyarrow",
              "threadpoolctl"}
#: Where a function may import ml_platform itself: a command imports its layer when it runs, so
#: ``ml-platform --help`` and the store's commands never import Dagster or MLflow.
LAZY_LAYERS_IN = ("ml_platform.cli.",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path) -> Iterator[tuple[str, int, bool]]:
    """``(imported module, line, inside a function)`` for every import statement of a module."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))

    def walk(node: ast.AST, inside: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, inside
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    target = child.module or ""
                for alias in child.names:  # `from pkg import module` imports the module
                    yield f"{target}.{alias.name}", child.lineno, inside
            yield from walk(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    yield from walk(tree, False)


def graph() -> dict[str, set[str]]:
    """Module -> the ml_platform modules it imports (a name imported from a module counts as that module)."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target, _, _ in imports_of(name, path):
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("ml_platform"):
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph one level down: ``ml_platform.io.store`` is the package ``ml_platform.io``."""

    def package(name: str) -> str:
        return ".".join(name.split(".")[:2])

    folded: dict[str, set[str]] = {}
    for name, targets in edges.items():
        source = package(name)
        folded.setdefault(source, set())
        if source == "ml_platform":  # the lazy public API imports everything: it is the top, not a package
            continue
        folded[source] |= {package(t) for t in targets if package(t) not in (source, "ml_platform")}
    return folded


def test_the_graph_reader_sees_imports_and_finds_a_planted_cycle() -> None:
    edges = graph()
    assert "ml_platform.champions.ledger" in edges["ml_platform.champions.service"]
    assert "ml_platform.errors" in edges["ml_platform.io.store"]
    planted = {name: set(targets) for name, targets in edges.items()}
    planted["ml_platform.errors"].add("ml_platform.io.store")
    assert any("ml_platform.errors" in c and "ml_platform.io.store" in c for c in cycles(planted))


def test_no_module_of_ml_platform_is_in_an_import_cycle() -> None:
    assert cycles(graph()) == []


def test_no_package_of_ml_platform_is_in_an_import_cycle() -> None:
    assert cycles(package_graph(graph())) == []


def test_imports_sit_at_the_top_except_lazy_heavy_dependencies() -> None:
    misplaced = []
    for name, path in modules().items():
        for target, line, inside in imports_of(name, path):
            if not inside:
                continue
            top = target.split(".")[0]
            if top == "ml_platform" and name.startswith(LAZY_LAYERS_IN):
                continue
            if top in LAZY_HEAVY and top != "ml_platform":
                continue
            misplaced.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert misplaced == [], "import these at the top of the module (or name a heavy dependency in LAZY_HEAVY):\n" \
        + "\n".join(misplaced)


@pytest.mark.parametrize("module", ["ml_platform.cli", "ml_platform.champions", "ml_platform.registry",
                                    "ml_platform.io.store", "ml_platform.models"])
def test_light_entry_points_import_neither_dagster_nor_mlflow(module: str) -> None:
    code = (f"import sys, {module}\n"
            "print(sorted(m for m in ('dagster', 'mlflow') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]", f"importing {module} loads {done.stdout.strip()}"


def test_module_docstrings_stay_a_few_lines() -> None:
    """The long explanations live in docs/architecture.md, under each module's path."""
    long = []
    for path in modules().values():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False)
        if doc is not None and doc.count("\n") + 1 > 9:
            long.append(f"{path.relative_to(ROOT)}: {doc.count(chr(10)) + 1} lines")
    assert long == [], "move the explanation to docs/architecture.md:\n" + "\n".join(long)


def test_every_pointer_to_the_architecture_page_names_a_section_it_has() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for path in modules().values():
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        rel = str(path.relative_to(ROOT))
        if "docs/architecture.md" in doc and f'"{rel}"' in doc and f"#### {rel}" not in page:
            missing.append(rel)
    assert missing == []
