"""Read and parse the source code of functions, lambdas and classes for the code hasher.

Functions and classes are read with ``inspect.getsourcelines``, dedented and parsed, as the source
file is on disk now (``linecache`` re-reads files whose modification time changed). When the
dedented text does not parse on its own (e.g. a multi-line string less indented than its ``def``),
the node is taken from the parsed file instead. A lambda is located in the parsed file by its first
line, its argument names and the columns its bytecode covers, so several lambdas on one line are
told apart when their code spans differ.
"""

from __future__ import annotations

import ast
import copy
import inspect
import linecache
import textwrap
import types
from typing import Any

from ml_platform.errors import CodeHashError
from ml_platform.lineage.ast_normalize import arg_names
from ml_platform.lineage.code_values import qualified_name


class SourceReader:
    """Parses object sources; caches whole-file parse trees (used for lambdas and fallbacks)."""

    def __init__(self) -> None:
        self._file_trees: dict[str, ast.Module] = {}

    def read(self, obj: Any) -> tuple[ast.AST, str, int]:
        """Parse the source of a function, lambda or class.

        Args:
            obj: the function or class.

        Returns:
            The freshly parsed top node (safe to modify), the source file name, and the file line
            that line 1 of the node's line numbers corresponds to.

        Raises:
            CodeHashError: the source is unavailable or does not define ``obj``.
        """
        try:
            filename = inspect.getsourcefile(obj)
            lines, first_line = inspect.getsourcelines(obj)
        except (OSError, TypeError) as exc:
            raise CodeHashError(
                f"cannot read the source of {qualified_name(obj)} ({exc}); feature functions and the "
                "helpers they use must be defined in a module file, not in a REPL, a notebook or exec()"
            ) from exc
        if filename is None:
            raise CodeHashError(f"{qualified_name(obj)} has no source file; define it in a module file")
        if inspect.isfunction(obj) and obj.__name__ == "<lambda>":
            return self._lambda(obj, filename), filename, 1
        expected = (ast.ClassDef,) if inspect.isclass(obj) else (ast.FunctionDef, ast.AsyncFunctionDef)
        try:
            node: ast.AST = ast.parse(textwrap.dedent("".join(lines))).body[0]
        except (SyntaxError, IndexError):  # e.g. a multi-line string less indented than the def
            candidates = [
                n
                for n in ast.walk(self._file_tree(filename))
                if isinstance(n, expected)
                and (n.decorator_list[0].lineno if n.decorator_list else n.lineno) == first_line
            ]
            node, first_line = (copy.deepcopy(candidates[0]), 1) if candidates else (ast.Pass(), first_line)
        if not isinstance(node, expected) or node.name != obj.__name__:
            raise CodeHashError(
                f"the source of {qualified_name(obj)} at {filename}:{first_line} does not define it; "
                "was the file edited after it was imported? Re-import it, then hash again"
            )
        return node, filename, first_line

    def _file_tree(self, filename: str) -> ast.Module:
        tree = self._file_trees.get(filename)
        if tree is None:
            linecache.checkcache(filename)
            tree = ast.parse("".join(linecache.getlines(filename)), filename=filename)
            self._file_trees[filename] = tree
        return tree

    def _lambda(self, fn: types.FunctionType, filename: str) -> ast.Lambda:
        code = fn.__code__
        arg_count = code.co_argcount + code.co_kwonlyargcount
        arg_count += bool(code.co_flags & inspect.CO_VARARGS) + bool(code.co_flags & inspect.CO_VARKEYWORDS)
        code_arg_names = set(code.co_varnames[:arg_count])
        spans = [
            (line, col, end_line, end_col)
            for line, end_line, col, end_col in code.co_positions()
            if None not in (line, end_line, col, end_col) and (end_line, end_col) > (line, col)
        ]
        candidates = []
        for node in ast.walk(self._file_tree(filename)):
            if not isinstance(node, ast.Lambda) or node.lineno != code.co_firstlineno:
                continue
            names = set(arg_names(node.args))
            inside = all(
                (node.lineno, node.col_offset) <= (line, col)
                and (end_line, end_col) <= (node.end_lineno, node.end_col_offset)
                for line, col, end_line, end_col in spans
            )
            if names == code_arg_names and inside:
                candidates.append(node)
        if len(candidates) != 1:
            raise CodeHashError(
                f"cannot single out the source of lambda {qualified_name(fn)} at {filename}:{code.co_firstlineno}; "
                "give it a name with def (or put it on a line of its own)"
            )
        return copy.deepcopy(candidates[0])
