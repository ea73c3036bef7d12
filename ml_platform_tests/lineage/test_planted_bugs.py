"""Tests that catch bugs planted in the lineage core which the rest of the suite let through (issue 8).

* a string constant changed in a module constant, a closure or a dict key must change the code hash;
* a leading expression statement that is not a docstring is logic and must stay in the hash;
* renaming an upstream node (or rewiring which upstream feeds which parameter) while every node's own
  hash stays equal must change the graph hash: an upstream is identified by its key;
* sets of strings hash the same under every ``PYTHONHASHSEED`` (run in subprocesses).

The byte order of the length prefix is pinned by ``test_known_answers.py``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ml_platform.lineage.ast_normalize import normalize
from ml_platform.lineage.code_hash import CodeHasher, code_hash
from ml_platform.lineage.graph_hash import GraphNode, compute_graph_hashes, graph_hash
from ml_platform_tests.lineage.fixture_project import FixtureProject

REPO = Path(__file__).resolve().parents[2]


def digest(project: FixtureProject, source: str, name: str = "feature") -> str:
    module = project.load({"m": source})["m"]
    return code_hash(getattr(module, name), project_packages=[project.package]).digest


# --- string constants ----------------------------------------------------------------------------

STRING_EDITS = {
    "module constant": ('NAME = "close"\n\ndef feature(x):\n    return x[NAME]\n', '"close"', '"clos"'),
    "module constant, one character": (
        'NAME = "px_close"\n\ndef feature(x):\n    return x[NAME]\n',
        "px_",
        "px-",
    ),
    "dict key": ('M = {"close": 1}\n\ndef feature(x):\n    return M\n', '"close"', '"open"'),
    "dict key, other entries equal": (
        'M = {"open": 0, "close": 1}\n\ndef feature(x):\n    return M\n',
        '"close"',
        '"close "',
    ),
    "dict value": ('M = {"k": "close"}\n\ndef feature(x):\n    return M\n', '"close"', '"open"'),
    "tuple element": ('T = ("close", "open")\n\ndef feature(x):\n    return T\n', '"open"', '"high"'),
    "frozenset element": (
        'S = frozenset({"close", "open"})\n\ndef feature(x):\n    return x in S\n',
        '"open"',
        '"high"',
    ),
    "nested dict key": ('M = {"a": {"close": 1}}\n\ndef feature(x):\n    return M\n', '"close"', '"open"'),
    "class attribute": (
        'class C:\n    K = "close"\n\ndef feature(x):\n    return C.K\n',
        '"close"',
        '"open"',
    ),
    "default argument": ('def feature(x, col="close"):\n    return x[col]\n', '"close"', '"open"'),
    "literal in the body": ('def feature(x):\n    return x["close"]\n', '"close"', '"open"'),
    "dict key literal in the body": ('def feature(x):\n    return {"close": x}\n', '"close"', '"open"'),
    "str vs bytes": ('NAME = "close"\n\ndef feature(x):\n    return x[NAME]\n', '"close"', 'b"close"'),
    "empty string": ('NAME = ""\n\ndef feature(x):\n    return x[NAME]\n', '""', '" "'),
}


@pytest.mark.parametrize("name", sorted(STRING_EDITS))
def test_a_changed_string_constant_changes_the_code_hash(project: FixtureProject, name: str) -> None:
    source, old, new = STRING_EDITS[name]
    assert source.count(old) == 1
    assert digest(project, source) != digest(project, source.replace(old, new))


CLOSURE_FACTORY = """
def make(name, mapping):
    def feature(x):
        return x[name], mapping
    return feature
"""


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("close", {}), ("open", {})),  # a string closure value
        (("close", {"close": 1}), ("close", {"open": 1})),  # a dict key inside a closure value
        (("close", {"k": "a"}), ("close", {"k": "b"})),  # a dict value inside a closure value
        (("close", {"k": ("a",)}), ("close", {"k": ("b",)})),
    ],
)
def test_a_changed_string_in_a_closure_changes_the_code_hash(
    project: FixtureProject, first: tuple, second: tuple
) -> None:
    make = project.load({"factory": CLOSURE_FACTORY})["factory"].make
    hasher = CodeHasher([project.package])
    assert hasher.hash_function(make(*first)).digest != hasher.hash_function(make(*second)).digest
    assert hasher.hash_function(make(*first)).digest == hasher.hash_function(make(*first)).digest


def test_a_changed_string_in_a_partial_argument_changes_the_code_hash(project: FixtureProject) -> None:
    import functools

    module = project.load({"m": "def pick(x, col):\n    return x[col]\n"})["m"]
    one = code_hash(functools.partial(module.pick, col="close"), project_packages=[project.package])
    two = code_hash(functools.partial(module.pick, col="open"), project_packages=[project.package])
    assert one.digest != two.digest


# --- leading statements: only a real docstring may be dropped ------------------------------------


def dump(source: str) -> str:
    return normalize(ast.parse(textwrap.dedent(source)).body[0]).dump


LEADING_STATEMENTS = {
    "string concatenation with a call": '"abc" + g()',
    "call": "g()",
    "f-string": 'f"{g()}"',
    "bytes": 'b"abc"',
    "number": "1",
    "ellipsis": "...",
    "string method call": '"abc".join(g())',
    "name": "g",
    "tuple with a string": '("abc", g())',
}


@pytest.mark.parametrize("name", sorted(LEADING_STATEMENTS))
def test_a_leading_expression_that_is_not_a_docstring_is_kept(name: str) -> None:
    statement = LEADING_STATEMENTS[name]
    plain = "def f():\n    x = 1\n    return x\n"
    led = f"def f():\n    {statement}\n    x = 1\n    return x\n"
    assert dump(led) != dump(plain)
    # ... also when it is the only statement, in a nested function, and in a class body
    assert dump(f"def f():\n    {statement}\n") != dump("def f():\n    pass\n")
    nested = "def f():\n    def inner():\n        {}x = 1\n        return x\n    return inner\n"
    assert dump(nested.format(statement + "\n        ")) != dump(nested.format(""))
    assert dump(f"class C:\n    {statement}\n    x = 1\n") != dump("class C:\n    x = 1\n")


def test_only_a_leading_string_constant_is_a_docstring() -> None:
    plain = dump("def f():\n    x = 1\n    return x\n")
    assert dump('def f():\n    """Doc."""\n    x = 1\n    return x\n') == plain
    assert dump("def f():\n    'doc' 'string'\n    x = 1\n    return x\n") == plain  # one constant
    # a second string statement is not a docstring, nor is the first when it is not first
    assert dump('def f():\n    """Doc."""\n    "more"\n    x = 1\n    return x\n') != plain
    assert dump('def f():\n    x = 1\n    "late"\n    return x\n') != plain


def test_a_leading_expression_changes_the_code_hash(project: FixtureProject) -> None:
    base = "def g():\n    return 2\n\n\ndef feature(x):\n    {}x = 1\n    return x\n"
    plain = digest(project, base.format(""))
    assert digest(project, base.format('"abc" + g()\n    ')) != plain
    assert digest(project, base.format('"""Docstring."""\n    ')) == plain


# --- graph hash: an upstream is identified by its key --------------------------------------------


def fixed_code(label: str) -> str:
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def test_renaming_an_upstream_key_with_an_equal_hash_changes_the_graph_hash() -> None:
    upstream = graph_hash(fixed_code("prices"), {})
    assert graph_hash(fixed_code("f"), {"prices": upstream}) != graph_hash(fixed_code("f"), {"px": upstream})
    before = compute_graph_hashes(
        [GraphNode("prices", fixed_code("p")), GraphNode("f", fixed_code("f"), ("prices",))]
    )
    after = compute_graph_hashes([GraphNode("px", fixed_code("p")), GraphNode("f", fixed_code("f"), ("px",))])
    assert before["prices"] == after["px"]  # the renamed node itself hashes the same ...
    assert before["f"] != after["f"]  # ... but its reader reads another asset


def test_swapping_the_hashes_of_two_upstream_keys_changes_the_graph_hash() -> None:
    one, two = graph_hash(fixed_code("a"), {}), graph_hash(fixed_code("b"), {})
    assert graph_hash(fixed_code("f"), {"a": one, "b": two}) != graph_hash(
        fixed_code("f"), {"a": two, "b": one}
    )


GRAPH_NODES = """
import polars as pl

from ml_platform.features import FeatureGraph, Upstream, feature


@feature(params={{"n": 2}})
def base(n):
    return pl.DataFrame({{"date": [], "instrument": [], "value": []}})


@feature(upstream={{"base": "base"}}{a_key})
def a(base):
    return base.select("date", "instrument", (pl.col("value") * 2).alias("a"))


@feature(upstream={{"base": "base"}})
def b(base):
    return base.select("date", "instrument", (pl.col("value") + 1).alias("b"))


@feature(upstream={{"left": "{left}", "right": "{right}"}})
def c(left, right):
    return left.join(right, on=["date", "instrument"])


GRAPH = FeatureGraph([base, a, b, c], project_packages=("{package}",))
"""


def feature_graph(project: FixtureProject, *, a_key: str = "a", left: str = "a", right: str = "b") -> dict:
    source = GRAPH_NODES.format(
        a_key="" if a_key == "a" else f", key={a_key!r}", left=left, right=right, package=project.package
    )
    graph = project.load({"nodes": source})["nodes"].GRAPH
    return {node.key: (node.code_hash, node.graph_hash) for node in graph}


def test_feature_graph_renamed_upstream_node_changes_its_readers(project: FixtureProject) -> None:
    before = feature_graph(project)
    after = feature_graph(project, a_key="a_renamed", left="a_renamed")
    assert after["a_renamed"] == before["a"]  # same function, same params: same code and graph hash
    assert after["b"] == before["b"] and after["base"] == before["base"]
    assert after["c"][1] != before["c"][1]  # c now reads another asset


def test_feature_graph_rewired_parameters_change_the_reader(project: FixtureProject) -> None:
    """Same function, same upstream keys, but which key feeds which parameter is swapped."""
    before = feature_graph(project)
    after = feature_graph(project, left="b", right="a")
    assert {k: after[k] for k in ("base", "a", "b")} == {k: before[k] for k in ("base", "a", "b")}
    assert after["c"][0] != before["c"][0] and after["c"][1] != before["c"][1]


# --- PYTHONHASHSEED ------------------------------------------------------------------------------

SEEDED_SOURCE = """
UNIVERSE = frozenset({"AAPL", "MSFT", "GOOG", "AMZN", "META", "NVDA", "TSLA", "JPM", "XOM", "KO"})
SECTORS = {"tech": {"AAPL", "MSFT", "GOOG", "NVDA"}, "energy": {"XOM", "CVX", "COP", "OXY"}}
PAIRS = frozenset({("AAPL", "MSFT"), ("XOM", "CVX"), ("KO", "PEP"), ("JPM", "BAC")})


def feature(ticker):
    return ticker in UNIVERSE and any(ticker in names for names in SECTORS.values()) and PAIRS


def make(names):
    def closure_feature(ticker):
        return ticker in names
    return closure_feature
"""

SEEDED_PROBE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
from ml_platform.lineage.code_hash import code_hash
module = importlib.import_module(sys.argv[2] + ".m")
packages = [sys.argv[2]]
print(json.dumps({
    "feature": code_hash(module.feature, project_packages=packages).digest,
    "closure": code_hash(module.make(set(module.UNIVERSE)), project_packages=packages).digest,
    "iteration order": list(module.UNIVERSE),
}))
"""


def test_sets_of_strings_hash_equally_under_every_pythonhashseed(tmp_path: Path) -> None:
    package = "mlp_hashseed_fixture"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "m.py").write_text(textwrap.dedent(SEEDED_SOURCE))
    results = []
    for seed in ("0", "1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONDONTWRITEBYTECODE": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        done = subprocess.run(
            [sys.executable, "-c", SEEDED_PROBE, str(tmp_path), package],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout))
    # The seeds really do reorder the set, so equal digests are not luck.
    assert len({tuple(r.pop("iteration order")) for r in results}) > 1
    assert results[0] == results[1] == results[2]
