"""Normalize a function's or class's AST and find the outside names it reads.

How it works, and why: docs/architecture.md, "ml_platform/lineage/ast_normalize.py".
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

_MARKED_ANNOTATIONS = ("ClassVar", "InitVar")
_ScopeKind = Literal["outer", "function", "comprehension", "class"]


@dataclass(frozen=True)
class NameReference:
    """A free name read by hashed code, with the attribute chain read on it.

    Attributes:
        name: the free name, e.g. ``helpers``.
        attributes: attributes read on it in order, e.g. ``("sub", "CONST")`` for ``helpers.sub.CONST``.
        lineno: 1-based line, relative to the parsed source, of its first read.
    """

    name: str
    attributes: tuple[str, ...]
    lineno: int


@dataclass(frozen=True)
class NormalizedCode:
    """The normalized form of one function, lambda or class.

    Attributes:
        dump: ``ast.dump`` of the normalized top node, without positions.
        references: the free names it reads, in order of first appearance, one per distinct chain.
    """

    dump: str
    references: tuple[NameReference, ...]


def normalize(node: ast.AST) -> NormalizedCode:
    """Normalize a parsed top node (``def``, ``async def``, ``lambda`` or ``class``) in place.

    Args:
        node: the top node, freshly parsed; it is modified.

    Returns:
        The normalized dump and the free references of the normalized node.
    """
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.decorator_list = []
    _Normalizer().visit(node)
    return NormalizedCode(dump=ast.dump(node, include_attributes=False), references=free_references(node))


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr):
        value = body[0].value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            body = body[1:]
    return body or [ast.Pass()]


def _annotation_marker(annotation: ast.expr) -> str:
    for sub in ast.walk(annotation):
        if isinstance(sub, ast.Name) and sub.id in _MARKED_ANNOTATIONS:
            return sub.id
        if isinstance(sub, ast.Attribute) and sub.attr in _MARKED_ANNOTATIONS:
            return sub.attr
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            for marker in _MARKED_ANNOTATIONS:
                if marker in sub.value:
                    return marker
    return "field"


class _Normalizer(ast.NodeTransformer):
    """Drops docstrings and annotations; knows whether it stands directly in a class body."""

    def __init__(self) -> None:
        self._in_class_body: list[bool] = [False]

    def _visit_scope(self, node: ast.AST, in_class_body: bool) -> ast.AST:
        self._in_class_body.append(in_class_body)
        try:
            return self.generic_visit(node)
        finally:
            self._in_class_body.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.AST:
        node.returns = None
        node.type_comment = None
        node.body = _strip_docstring(node.body)
        return self._visit_scope(node, in_class_body=False)

    visit_AsyncFunctionDef = visit_FunctionDef  # async functions normalize the same way

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return self._visit_scope(node, in_class_body=False)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.body = _strip_docstring(node.body)
        return self._visit_scope(node, in_class_body=True)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        node.kind = None  # the spelling u"x" vs "x" is formatting
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.annotation = None
        node.type_comment = None
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        if self._in_class_body[-1]:
            node.annotation = ast.Constant(value=_annotation_marker(node.annotation))
            return self.generic_visit(node)
        target = self.visit(node.target)
        if node.value is None:
            return ast.copy_location(ast.Expr(value=target), node)
        value = self.visit(node.value)
        return ast.copy_location(ast.Assign(targets=[target], value=value, type_comment=None), node)


class _Scope:
    """One Python scope: what it binds and which (name, chain, line) it reads."""

    __slots__ = ("bound", "kind", "parent", "reads")

    def __init__(self, kind: _ScopeKind, parent: _Scope | None) -> None:
        self.kind = kind
        self.parent = parent
        self.bound: set[str] = set()
        self.reads: list[NameReference] = []

    def binding_scope(self) -> _Scope:
        """The scope a walrus target binds in: the nearest enclosing non-comprehension scope."""
        scope = self
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        return scope

    def sees(self, name: str) -> bool:
        """Whether ``name`` is bound here or in an enclosing scope visible from here."""
        if name in self.bound:
            return True
        scope = self.parent
        while scope is not None:
            if scope.kind != "class" and name in scope.bound:
                return True
            scope = scope.parent
        return False


def free_references(top: ast.AST) -> tuple[NameReference, ...]:
    """The free names (with attribute chains) read by a normalized top node, first read first."""
    collector = _ScopeCollector()
    collector.visit_top(top)
    seen: dict[tuple[str, tuple[str, ...]], NameReference] = {}
    for scope in collector.scopes:
        for read in scope.reads:
            if not scope.sees(read.name):
                seen.setdefault((read.name, read.attributes), read)
    return tuple(sorted(seen.values(), key=lambda ref: (ref.lineno, ref.name, ref.attributes)))


def arg_names(args: ast.arguments) -> Iterable[str]:
    """The names of every parameter of a function or lambda (positional-only, keyword-only, * and **)."""
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    every += [a for a in (args.vararg, args.kwarg) if a is not None]
    return (a.arg for a in every)


class _ScopeCollector(ast.NodeVisitor):
    """Builds the scope tree of one top node: bindings and reads per scope."""

    def __init__(self) -> None:
        self.scopes: list[_Scope] = []
        self._scope = self._new_scope("outer", None)

    def _new_scope(self, kind: _ScopeKind, parent: _Scope | None) -> _Scope:
        scope = _Scope(kind, parent)
        self.scopes.append(scope)
        return scope

    def _visit_all(self, nodes: Iterable[ast.AST | None]) -> None:
        for node in nodes:
            if node is not None:
                self.visit(node)

    def _in_scope(self, kind: _ScopeKind, names: Iterable[str], body: Iterable[ast.AST]) -> None:
        outer = self._scope
        self._scope = self._new_scope(kind, outer)
        self._scope.bound.update(names)
        try:
            self._visit_all(body)
        finally:
            self._scope = outer

    def visit_top(self, top: ast.AST) -> None:
        """Visit the top node without binding its own name (self-references resolve globally)."""
        if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self._visit_definition(top, bind_name=False)
        else:
            self.visit(top)

    def _visit_definition(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, bind_name: bool
    ) -> None:
        if bind_name:
            self._scope.bound.add(node.name)
        self._visit_all(node.decorator_list)
        if isinstance(node, ast.ClassDef):
            self._visit_all([*node.bases, *node.keywords])
            self._in_scope("class", (), node.body)
        else:
            self._visit_all([*node.args.defaults, *node.args.kw_defaults])
            self._in_scope("function", arg_names(node.args), node.body)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._visit_definition(node, bind_name=True)

    visit_AsyncFunctionDef = visit_FunctionDef  # scoping is the same for async functions

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._visit_definition(node, bind_name=True)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_all([*node.args.defaults, *node.args.kw_defaults])
        self._in_scope("function", arg_names(node.args), [node.body])

    def _visit_comprehension(self, generators: list[ast.comprehension], results: list[ast.expr]) -> None:
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        outer = self._scope
        self._scope = self._new_scope("comprehension", outer)
        try:
            for index, generator in enumerate(generators):
                if index:
                    self.visit(generator.iter)
                self.visit(generator.target)
                self._visit_all(generator.ifs)
            self._visit_all(results)
        finally:
            self._scope = outer

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._visit_comprehension(node.generators, [node.elt])

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._visit_comprehension(node.generators, [node.elt])

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._visit_comprehension(node.generators, [node.elt])

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node.generators, [node.key, node.value])

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self._scope.binding_scope().bound.add(node.target.id)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._scope.reads.append(NameReference(node.id, (), getattr(node, "lineno", 0)))
        else:
            self._scope.bound.add(node.id)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        chain: list[str] = [node.attr]
        base: ast.expr = node.value
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if not isinstance(base, ast.Name):
            self.generic_visit(node)
            return
        chain.reverse()
        if not isinstance(node.ctx, ast.Load):
            chain.pop()  # ``mod.X = v`` reads ``mod`` but not ``X``
        self._scope.reads.append(NameReference(base.id, tuple(chain), getattr(base, "lineno", 0)))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._scope.bound.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self._scope.bound.add(alias.asname or alias.name)

    def visit_Global(self, node: ast.Global) -> None:
        self._scope.bound.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self._scope.bound.update(node.names)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._scope.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self._scope.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self._scope.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self._scope.bound.add(node.rest)
        self.generic_visit(node)
