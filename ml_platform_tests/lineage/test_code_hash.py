"""Code hash over real fixture packages: what must keep the digest and what must change it."""

from __future__ import annotations

import functools
import textwrap

import pytest

from ml_platform.errors import CodeHashError, ConfigurationError, UnresolvableReference
from ml_platform.lineage.code_hash import CodeHasher, code_hash
from ml_platform_tests.lineage.fixture_project import FixtureProject

BASE_SOURCES = {
    "constants": """
        SCALE = 20
    """,
    "deep": """
        def smooth(x):
            return x + 1
    """,
    "helpers": """
        from . import deep
        from .constants import SCALE


        def ratio(prices, lookback):
            return deep.smooth(prices[-1] / prices[-lookback] * SCALE)
    """,
    "model": """
        from dataclasses import dataclass


        @dataclass(frozen=True)
        class Config:
            lookback: int = 20

            def window(self):
                return self.lookback * 2
    """,
    "features": """
        from . import helpers
        from .model import Config


        def momentum(prices, lookback=20):
            \"\"\"Price momentum over a lookback.\"\"\"
            cfg = Config(lookback=lookback)
            return helpers.ratio(prices, cfg.lookback)


        def unrelated(x):
            return x * 3
    """,
}
BASE = {name: textwrap.dedent(source) for name, source in BASE_SOURCES.items()}


def edit(files: dict[str, str], module: str, old: str, new: str) -> dict[str, str]:
    """A copy of ``files`` with ``old`` replaced by ``new`` in one module (``old`` must occur once)."""
    assert files[module].count(old) == 1, f"{old!r} must occur exactly once in {module}"
    return {**files, module: files[module].replace(old, new)}


def momentum_digest(project: FixtureProject, files: dict[str, str], **params: object) -> str:
    modules = project.load(files)
    return code_hash(modules["features"].momentum, project_packages=[project.package], params=params).digest


def test_digest_format_and_references(project: FixtureProject) -> None:
    modules = project.load(BASE)
    result = code_hash(modules["features"].momentum, project_packages=[project.package])
    assert result.digest.startswith("sha256:") and len(result.digest) == len("sha256:") + 64
    p = project.package
    # A constant is named where it is read from: helpers did `from .constants import SCALE`.
    assert result.references == (
        f"{p}.deep.smooth",
        f"{p}.helpers.SCALE",
        f"{p}.helpers.ratio",
        f"{p}.model.Config",
    )


NEUTRAL_EDITS = {
    "comment": ("features", "    cfg = Config", "    # build the config\n    cfg = Config"),
    "reformat": (
        "helpers",
        "return deep.smooth(prices[-1] / prices[-lookback] * SCALE)",
        "return deep.smooth(\n        prices[ -1 ]/prices[-lookback]*SCALE ,\n    )",
    ),
    "docstring": (
        "features",
        "Price momentum over a lookback.",
        "Momentum: last price over the lagged price.",
    ),
    "added docstring": ("deep", "def smooth(x):\n", 'def smooth(x):\n    """Add one."""\n'),
    "argument hints": (
        "features",
        "def momentum(prices, lookback=20):",
        "def momentum(prices: list, lookback: int = 20) -> float:",
    ),
    "dataclass field hint": ("model", "lookback: int = 20", "lookback: float = 20"),
    "local variable hint": ("features", "cfg = Config(", "cfg: Config = Config("),
    "decorator on the feature": ("features", "def momentum(", "@functools.lru_cache\ndef momentum("),
}


@pytest.mark.parametrize("name", sorted(NEUTRAL_EDITS))
def test_edits_without_logic_change_keep_the_digest(project: FixtureProject, name: str) -> None:
    module, old, new = NEUTRAL_EDITS[name]
    edited = edit(BASE, module, old, new)
    if "functools" in new:
        edited["features"] = "import functools\n" + edited["features"]
    assert momentum_digest(project, BASE) == momentum_digest(project, edited)


LOGIC_EDITS = {
    "module constant 20 -> 21": ("constants", "SCALE = 20", "SCALE = 21"),
    "operator + -> - two levels down": ("deep", "return x + 1", "return x - 1"),
    "class method body": ("model", "return self.lookback * 2", "return self.lookback * 3"),
    "dataclass field default": ("model", "lookback: int = 20", "lookback: int = 21"),
    "dataclass field becomes a ClassVar": ("model", "lookback: int = 20", "lookback: ClassVar[int] = 20"),
    "class decorator argument": ("model", "@dataclass(frozen=True)", "@dataclass(frozen=False)"),
    "parameter default": ("features", "lookback=20):", "lookback=21):"),
    "helper argument order": ("helpers", "prices[-1] / prices[-lookback]", "prices[-lookback] / prices[-1]"),
}


@pytest.mark.parametrize("name", sorted(LOGIC_EDITS))
def test_one_token_logic_changes_change_the_digest(project: FixtureProject, name: str) -> None:
    module, old, new = LOGIC_EDITS[name]
    edited = edit(BASE, module, old, new)
    if "ClassVar" in new:
        edited["model"] = "from typing import ClassVar\n" + edited["model"]
    assert momentum_digest(project, BASE) != momentum_digest(project, edited)


def test_declared_params_are_part_of_the_digest(project: FixtureProject) -> None:
    assert momentum_digest(project, BASE, lookback=20) != momentum_digest(project, BASE, lookback=21)
    assert momentum_digest(project, BASE, a=1, b=[1, 2]) == momentum_digest(project, BASE, b=[1, 2], a=1)
    assert momentum_digest(project, BASE, flag=True) != momentum_digest(project, BASE, flag=1)


def test_unrelated_function_change_does_not_matter(project: FixtureProject) -> None:
    edited = edit(BASE, "features", "return x * 3", "return x * 4")
    before, after = project.load(BASE), None
    digest_unrelated = code_hash(before["features"].unrelated, project_packages=[project.package]).digest
    digest_momentum = code_hash(before["features"].momentum, project_packages=[project.package]).digest
    after = project.load(edited)
    assert code_hash(after["features"].momentum, project_packages=[project.package]).digest == digest_momentum
    assert (
        code_hash(after["features"].unrelated, project_packages=[project.package]).digest != digest_unrelated
    )


def test_mutual_recursion(project: FixtureProject) -> None:
    source = """
        def is_even(n):
            return True if n == 0 else is_odd(n - 1)


        def is_odd(n):
            return False if n == 0 else is_even(n - 1)
    """
    modules = project.load({"parity": source})
    result = code_hash(modules["parity"].is_even, project_packages=[project.package])
    assert result.references == (f"{project.package}.parity.is_odd",)
    changed = project.load({"parity": source.replace("False if", "True if")})
    assert code_hash(changed["parity"].is_even, project_packages=[project.package]).digest != result.digest


def test_unresolvable_name_names_the_function_and_the_name(project: FixtureProject) -> None:
    modules = project.load({"broken": "def feature(x):\n    return x * undefined_scale\n"})
    with pytest.raises(UnresolvableReference) as caught:
        code_hash(modules["broken"].feature, project_packages=[project.package])
    message = str(caught.value)
    assert f"{project.package}.broken.feature" in message
    assert "'undefined_scale'" in message
    assert "broken.py:2" in message
    assert "define or import it at module level" in message


def test_missing_attribute_of_a_project_module_is_unresolvable(project: FixtureProject) -> None:
    modules = project.load(
        {
            "constants": "SCALE = 1\n",
            "user": "from . import constants\n\ndef f():\n    return constants.SCALER\n",
        }
    )
    with pytest.raises(UnresolvableReference, match="SCALER"):
        code_hash(modules["user"].f, project_packages=[project.package])


def test_module_level_polars_expression_is_refused(project: FixtureProject) -> None:
    source = """
        import polars as pl

        DOUBLED = pl.col("x") * 2


        def feature(frame):
            return frame.select(DOUBLED)
    """
    modules = project.load({"exprs": source})
    with pytest.raises(CodeHashError, match="cannot hash a value of type polars") as caught:
        code_hash(modules["exprs"].feature, project_packages=[project.package])
    assert not isinstance(caught.value, UnresolvableReference)
    assert "wrap it in a function" in str(caught.value).lower()


def test_closure_values_are_folded_in(project: FixtureProject) -> None:
    source = """
        def make_feature(window):
            def feature(xs):
                return sum(xs[-window:]) / window
            return feature
    """
    factory = project.load({"factory": source})["factory"].make_feature
    hasher = CodeHasher([project.package])
    assert hasher.hash_function(factory(20)).digest == hasher.hash_function(factory(20)).digest
    assert hasher.hash_function(factory(20)).digest != hasher.hash_function(factory(21)).digest


def test_constants_enums_dataclass_instances_and_dispatch_tables(project: FixtureProject) -> None:
    source = """
        import enum
        import math
        from dataclasses import dataclass


        class Side(enum.Enum):
            BUY = "buy"
            SELL = "sell"


        @dataclass(frozen=True)
        class Costs:
            bps: float


        def fast(x):
            return x * 2


        DEFAULT_SIDE = Side.BUY
        COSTS = Costs(bps=1.5)
        DISPATCH = {"fast": fast, "log": math.log}


        def feature(x, how="fast"):
            sign = 1 if DEFAULT_SIDE is Side.BUY else -1
            return sign * DISPATCH[how](x) - COSTS.bps
    """
    digests = {}
    for label, variant in {
        "base": source,
        "side": source.replace("DEFAULT_SIDE = Side.BUY", "DEFAULT_SIDE = Side.SELL"),
        "costs": source.replace("bps=1.5", "bps=2.5"),
        "dispatched": source.replace("return x * 2", "return x * 3"),
    }.items():
        module = project.load({"consts": variant})["consts"]
        digests[label] = code_hash(module.feature, project_packages=[project.package]).digest
    assert len(set(digests.values())) == 4


def test_partials_and_lambdas(project: FixtureProject) -> None:
    source = """
        import functools


        def scaled(x, factor):
            return x * factor


        DOUBLE = functools.partial(scaled, factor=2)
        INC, DEC = (lambda x: x + 1), (lambda x: x - 1)


        def feature(x):
            return DOUBLE(INC(x)) + sorted([x], key=lambda v: -v)[0]
    """
    base = project.load({"parts": source})["parts"]
    p = project.package
    result = code_hash(base.feature, project_packages=[p])
    assert result.references == (f"{p}.parts.<lambda>", f"{p}.parts.DOUBLE", f"{p}.parts.scaled")
    root_partial = code_hash(functools.partial(base.scaled, factor=3), project_packages=[p]).digest
    assert root_partial != code_hash(functools.partial(base.scaled, factor=4), project_packages=[p]).digest
    for old, new in [("factor=2", "factor=3"), ("x + 1", "x + 2"), ("key=lambda v: -v", "key=lambda v: v")]:
        changed = project.load({"parts": source.replace(old, new)})["parts"]
        assert code_hash(changed.feature, project_packages=[p]).digest != result.digest, (old, new)
    unchanged = project.load({"parts": source.replace("x - 1", "x - 2")})["parts"]
    assert code_hash(unchanged.feature, project_packages=[p]).digest == result.digest


def test_decorated_function_is_unwrapped(project: FixtureProject) -> None:
    plain = "def feature(x):\n    return x + 1\n"
    wrapped = (
        "import functools\n\n"
        "def logged(fn):\n    @functools.wraps(fn)\n    def inner(*a):\n        return fn(*a)\n    return inner\n\n"
        "@logged\ndef feature(x):\n    return x + 1\n"
    )
    digest = code_hash(
        project.load({"deco": plain})["deco"].feature, project_packages=[project.package]
    ).digest
    decorated = project.load({"deco": wrapped})["deco"].feature
    assert code_hash(decorated, project_packages=[project.package]).digest == digest


def test_attribute_chains_through_subpackages(project: FixtureProject) -> None:
    files = {
        "sub.values": "LIMIT = 3\n",
        "user": f"import {project.package}.sub.values\n\n\ndef f(x):\n    return min(x, {project.package}.sub.values.LIMIT)\n",
    }
    base = code_hash(project.load(files)["user"].f, project_packages=[project.package])
    assert base.references == (f"{project.package}.sub.values.LIMIT",)
    changed = project.load({**files, "sub.values": "LIMIT = 4\n"})["user"].f
    assert code_hash(changed, project_packages=[project.package]).digest != base.digest


def test_third_party_objects_are_not_folded_in(project: FixtureProject) -> None:
    source = "import math\nimport numpy as np\nfrom math import sqrt\n\ndef f(x):\n    return np.log(x) + math.pi + sqrt(x)\n"
    result = code_hash(project.load({"ext": source})["ext"].f, project_packages=[project.package])
    assert result.references == ()


def test_a_shared_hasher_agrees_with_fresh_ones(project: FixtureProject) -> None:
    modules = project.load(BASE)
    shared = CodeHasher([project.package])
    for fn in (modules["features"].momentum, modules["features"].unrelated, modules["helpers"].ratio):
        assert shared.hash_function(fn) == code_hash(fn, project_packages=[project.package])


def test_function_without_source_file_is_refused(project: FixtureProject) -> None:
    namespace: dict[str, object] = {"__name__": f"{project.package}.generated"}
    exec("def feature(x):\n    return x + 1\n", namespace)  # noqa: S102 - a function without a source file
    with pytest.raises(CodeHashError, match="must be defined in a module file"):
        code_hash(namespace["feature"], project_packages=[project.package])  # type: ignore[arg-type]


def test_bad_arguments_are_refused(project: FixtureProject) -> None:
    modules = project.load(BASE)
    with pytest.raises(ConfigurationError, match="not the string"):
        CodeHasher(project.package)
    with pytest.raises(ConfigurationError, match="at least one"):
        CodeHasher([])
    with pytest.raises(CodeHashError, match="outside project_packages"):
        code_hash(modules["features"].momentum, project_packages=["some_other_package"])
    with pytest.raises(CodeHashError, match="plain Python function"):
        code_hash(len, project_packages=[project.package])  # type: ignore[arg-type]
    with pytest.raises(CodeHashError, match="parameter 'when'"):
        code_hash(modules["features"].momentum, project_packages=[project.package], params={"when": object()})
    with pytest.raises(CodeHashError, match="parameter 'x'"):
        code_hash(
            modules["features"].momentum, project_packages=[project.package], params={"x": float("nan")}
        )


def test_loggers_are_ignored_and_opaque_values_refused(project: FixtureProject) -> None:
    source = """
        import logging

        import numpy as np

        log = logging.getLogger(__name__)
        WEIGHTS = np.array([0.5, 0.5])


        def logged(x):
            log.info("computing")
            return x


        def weighted(x):
            return x @ WEIGHTS
    """
    module = project.load({"misc": source})["misc"]
    assert code_hash(module.logged, project_packages=[project.package]).references == ()
    with pytest.raises(CodeHashError, match=r"numpy.ndarray .*misc.WEIGHTS, read by .*misc.weighted"):
        code_hash(module.weighted, project_packages=[project.package])


def test_lru_cached_helper_is_unwrapped(project: FixtureProject) -> None:
    source = """
        import functools


        @functools.lru_cache(maxsize=None)
        def table(n):
            return n * 2


        def feature(n):
            return table(n)
    """
    module = project.load({"cached": source})["cached"]
    base = code_hash(module.feature, project_packages=[project.package])
    assert base.references == (f"{project.package}.cached.table",)
    changed = project.load({"cached": source.replace("n * 2", "n * 3")})["cached"]
    assert code_hash(changed.feature, project_packages=[project.package]).digest != base.digest


def test_frame_schema_constants_hash_by_content():
    import polars as pl
    import pyarrow as pa

    from ml_platform.lineage.code_values import ValueEncoder

    enc = ValueEncoder(lambda m: False, "test")
    a = enc.encode(pl.Schema({"date": pl.Date, "x": pl.Float64}))
    assert a == enc.encode(pl.Schema({"date": pl.Date, "x": pl.Float64}))
    assert a != enc.encode(pl.Schema({"date": pl.Date, "x": pl.Float32}))
    assert a != enc.encode(pl.Schema({"date": pl.Date, "y": pl.Float64}))
    assert enc.encode(pl.Datetime("us", "UTC")) != enc.encode(pl.Datetime("ns", "UTC"))
    s = pa.schema([pa.field("x", pa.int64(), nullable=False)])
    assert enc.encode(s) != enc.encode(pa.schema([pa.field("x", pa.int64())]))
    assert enc.encode(pa.timestamp("us", "UTC")) != enc.encode(pa.timestamp("us"))
