"""AST normalization and free-name analysis, checked against Python's own scoping rules."""

from __future__ import annotations

import ast
import textwrap

import pytest

from ml_platform.lineage.ast_normalize import normalize


def free(source: str) -> set[str]:
    """Dotted free names read by the first definition in ``source``."""
    node = ast.parse(textwrap.dedent(source)).body[0]
    return {".".join((r.name, *r.attributes)) for r in normalize(node).references}


def dump(source: str) -> str:
    return normalize(ast.parse(textwrap.dedent(source)).body[0]).dump


def test_locals_of_every_binding_form_are_not_free() -> None:
    source = """
        def f(a, /, b, *args, c, **kw):
            import os
            from math import tau as full_turn
            x = a
            y: int = 1
            for i in range(3):
                pass
            with open(b) as handle:
                pass
            try:
                pass
            except ValueError as err:
                print(err)
            total = [j * k for j in args for k in range(j) if (last := k)]
            match c:
                case {"k": value, **rest}:
                    print(value, rest)
                case [first, *others]:
                    print(first, others)
            def inner():
                return x + y
            class Local:
                pass
            global STATE
            del x
            return os, full_turn, i, handle, total, last, inner, Local, STATE, kw
    """
    assert free(source) == {"range", "open", "ValueError", "print"}


def test_free_names_keep_attribute_chains_and_defaults() -> None:
    source = """
        def f(x, scale=DEFAULT_SCALE):
            helpers.sub.CONST.value = 1
            return helpers.compute(x).mean() * np.pi
    """
    assert free(source) == {"DEFAULT_SCALE", "helpers.sub.CONST", "helpers.compute", "np.pi"}


def test_class_bodies_are_invisible_to_methods_and_comprehensions() -> None:
    source = """
        class C:
            LIMIT = 3
            DOUBLE = LIMIT * 2
            ROWS = [LIMIT for _ in range(2)]

            def method(self):
                return LIMIT
    """
    # Inside the method and the comprehension LIMIT is a global read, as in Python itself.
    assert free(source) == {"range", "LIMIT"}


def test_comprehension_first_iterable_is_read_in_the_enclosing_scope() -> None:
    assert free("def f():\n    return [x for x in x]\n") == {"x"}
    assert free("def f(x):\n    return [x for x in x]\n") == set()


def test_recursion_reads_the_function_name_globally() -> None:
    assert free("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n") == {"fact"}


def test_docstrings_annotations_and_top_decorators_vanish() -> None:
    plain = dump("def f(a, b=1):\n    x = a + b\n    return x\n")
    noisy = dump(
        '''
        @asset(key="f")
        def f(a: "Frame", b: int = 1) -> float:
            """Docstring."""
            # comment
            x: float = a + b
            return x
        '''
    )
    assert noisy == plain
    assert dump("def f():\n    return (u'a', 1_000, 0x10)\n") == dump('def f():\n    return "a", 1000, 16\n')
    assert dump("def f():\n    '''doc'''\n") == dump("def f():\n    pass\n")


@pytest.mark.parametrize(
    ("before", "after", "same"),
    [
        ("x: int = 1", "x: float = 1", True),
        ("x: int", "x: 'float'", True),
        ("x: int = 1", "x: int = 2", False),
        ("x: int = 1", "x = 1", False),
        ("x: int = 1", "x: ClassVar[int] = 1", False),
        ("x: int", "y: int", False),
    ],
)
def test_class_field_annotations(before: str, after: str, same: bool) -> None:
    make = "@dataclass\nclass C:\n    {}\n".format
    assert (dump(make(before)) == dump(make(after))) is same


def test_class_decorators_are_kept() -> None:
    assert dump("@dataclass(frozen=True)\nclass C:\n    x = 1\n") != dump("@dataclass\nclass C:\n    x = 1\n")
