"""How ``make test`` spreads the tests over pytest-xdist workers (``-n 4 --dist loadgroup``), and bytecode caches
while collecting.

* Each test module is one work unit (an ``xdist_group`` named after the module, unless the test names its own
  group): a module's module-scoped fixtures are built once, on one worker, and its tests run in file order.
* Modules that share an expensive session fixture name one group (``xdist_group(name)``), so that fixture is
  built once per session, on the worker that runs them all: see ``ml_platform_tests.lifecycles``.
* The work units that take longest start first (:data:`LONGEST_FIRST`, measured; then every unit holding a test
  marked ``slow``, ``daemon`` or ``beside``, then ``postgres``), so that no long unit starts last and runs alone.

Without xdist (a plain ``pytest``) the collection is left as it is, but for one marker: every test of a
``test_crash_matrix.py`` module is marked ``crash_matrix`` (``make test-quick`` leaves them out).

Collecting imports every test module (each rewritten for pytest's assertion messages) and this repository's
packages. Where ``PYTHONDONTWRITEBYTECODE`` is set, none of that is cached, and every pytest process (each xdist
worker too) rewrites and compiles it all again: about half of the collection's CPU. Bytecode is written while
collecting (``__pycache__`` folders, ignored by git), and the setting is put back before the first test runs:
tests, and every process they start, see the environment's own.
"""

from __future__ import annotations

import sys

import pytest

_DONT_WRITE_BYTECODE = sys.dont_write_bytecode
sys.dont_write_bytecode = False


def pytest_collection_finish(session: pytest.Session) -> None:
    sys.dont_write_bytecode = _DONT_WRITE_BYTECODE


#: The work units that took longest in a make test on the 2-core machine, longest first (seconds under load in
#: brackets): a hint for the order they start in, nothing depends on it.
LONGEST_FIRST = (
    "example_lifecycle",                                              # test_lifecycle + test_reproduce (950)
    "ml_platform_tests/reproduce/test_scaffolded_project.py",         # (530)
    "team_b",                                                         # test_team_project + trace/test_trace (450)
    "ml_platform_tests/test_scaffold.py",                             # (340)
    "ml_platform_tests/registry/test_crash_matrix.py",                # (305)
    "ml_platform_tests/promotion/test_crash_matrix.py",               # (285)
    "ml_platform_tests/promotion/test_promotion_postgres.py",         # (260)
    "ml_platform_tests/test_readme.py",                               # (250)
    "examples/quant_alpha/quant_alpha_tests/test_lifecycle_postgres.py",  # (165)
)
_HEAVY = ("slow", "daemon", "beside")
#: Every test in a module of this name is marked ``crash_matrix`` (the modules themselves are left as they are).
CRASH_MATRIX_FILE = "test_crash_matrix.py"


def _group(item: pytest.Item) -> str:
    """The item's ``xdist_group`` (the closest mark's name), else its module's path."""
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return item.nodeid.split("::", 1)[0]
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


def _in_group(item: pytest.Item, group: str) -> None:
    """Suffix the node id with ``@group``: how loadgroup scheduling reads the group. pytest-xdist 3.8 does it by
    setting ``item._nodeid``, which pytest 9.2 no longer reads (its node id lives in ``item._id``), so with these
    versions xdist_group marks alone group nothing: every test is sent on its own."""
    if item.nodeid.rfind("@") > item.nodeid.rfind("]"):
        return  # already suffixed (a pytest-xdist that works with this pytest)
    suffixed = f"{item.nodeid}@{group}"
    if isinstance(getattr(item, "_id", None), str) or not hasattr(item, "_id"):
        item._nodeid = suffixed  # type: ignore[attr-defined]  # pytest < 9.2
    else:
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(suffixed)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # before -m deselects: make test-quick leaves the crash matrices out by this marker
        if item.path.name == CRASH_MATRIX_FILE:
            item.add_marker(pytest.mark.crash_matrix)
    if not hasattr(config, "workerinput") or not getattr(config.option, "loadgroup", False):
        return
    rank: dict[str, int] = {}
    for item in items:
        group = _group(item)
        if group in LONGEST_FIRST:
            weight = LONGEST_FIRST.index(group)
        elif any(item.get_closest_marker(m) for m in _HEAVY):
            weight = len(LONGEST_FIRST)
        elif item.get_closest_marker("postgres"):
            weight = len(LONGEST_FIRST) + 1
        else:
            weight = len(LONGEST_FIRST) + 2
        rank[group] = min(rank.get(group, weight), weight)
    groups = [_group(item) for item in items]
    order = sorted(range(len(items)), key=lambda i: rank[groups[i]])  # stable: file order within each unit
    items[:] = [items[i] for i in order]
    for item, group in zip(items, [groups[i] for i in order], strict=True):
        _in_group(item, group)
