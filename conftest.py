"""How ``make test`` spreads the tests over pytest-xdist workers (``-n 4 --dist loadgroup``), and bytecode caches
while collecting.

* Each test module is one work unit (an ``xdist_group`` named after the module, unless the test names its own
  group): a module's module-scoped fixtures are built once, on one worker, and its tests run in file order.
* Modules that share an expensive session fixture name one group (``xdist_group(name)``), so that fixture is
  built once per session, on the worker that runs them all: see ``ml_platform_tests.lifecycles``.
* The work units that take longest start first (:data:`LONGEST_FIRST`, then every unit holding a test marked
  ``slow``, ``daemon`` or ``beside``, then ``postgres``), so that no long unit starts last and runs alone.

Without xdist (a plain ``pytest``) the collection is left exactly as it is.

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

#: The groups that take longest, longest first (each a chain of minutes on one worker).
LONGEST_FIRST = ("example_lifecycle", "scaffolded_project", "team_b")
_HEAVY = ("slow", "daemon", "beside")


def _group(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which appends the group to each node id
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput") or config.getvalue("dist") != "loadgroup":
        return
    for item in items:
        if _group(item) is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    rank: dict[str, int] = {}
    for item in items:
        group = str(_group(item))
        if group in LONGEST_FIRST:
            weight = LONGEST_FIRST.index(group)
        elif any(item.get_closest_marker(m) for m in _HEAVY):
            weight = len(LONGEST_FIRST)
        elif item.get_closest_marker("postgres"):
            weight = len(LONGEST_FIRST) + 1
        else:
            weight = len(LONGEST_FIRST) + 2
        rank[group] = min(rank.get(group, weight), weight)
    items.sort(key=lambda item: rank[str(_group(item))])  # stable: file order within each unit
