"""Code hash: a content hash of a function's logic and of every project object it uses.

How it works, and why: docs/architecture.md, "ml_platform/lineage/code_hash.py".
"""

from __future__ import annotations

import builtins
import functools
import inspect
import json
import logging
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ml_platform.errors import CodeHashError, ConfigurationError, UnresolvableReference
from ml_platform.lineage.ast_normalize import NameReference, NormalizedCode, normalize
from ml_platform.lineage.code_values import ValueEncoder, is_named_callable, qualified_name, unwrap
from ml_platform.lineage.encoding import sha256_of_fields
from ml_platform.lineage.source import SourceReader

CODE_HASH_VERSION = "mlp-code-v1"
_BUILTINS: Mapping[str, Any] = vars(builtins)


@dataclass(frozen=True)
class CodeHash:
    """The code hash of one function.

    Attributes:
        digest: ``"sha256:<64 hex digits>"``.
        references: qualified names of the project objects folded in besides the function itself,
            sorted and distinct (for display and debugging; the digest is what counts).
    """

    digest: str
    references: tuple[str, ...]


@dataclass(frozen=True)
class _Folded:
    """One object folded into a hash: its encoding and what it reads (objects or folded values)."""

    key: tuple[Any, ...]
    qualname: str
    encoding: str
    edges: tuple[Any, ...]


@dataclass(frozen=True)
class _Context:
    """Where the free names of one function or class resolve, and how to name it in errors."""

    qualname: str
    module: str
    location: str
    first_line: int
    closure: Mapping[str, Any]
    globals: Mapping[str, Any]


class CodeHasher:
    """Computes code hashes, caching the per-object work across calls on this instance.

    Args:
        project_packages: top-level package (or module) names whose objects are folded in.

    Example:
        >>> hasher = CodeHasher(["my_research"])  # doctest: +SKIP
        >>> hasher.hash_function(momentum, params={"lookback": 20}).digest  # doctest: +SKIP
        'sha256:…'
    """

    def __init__(self, project_packages: Iterable[str]) -> None:
        if isinstance(project_packages, str):
            raise ConfigurationError(
                f"project_packages must be a list of package names, not the string {project_packages!r}; "
                f"write [{project_packages!r}]"
            )
        packages = tuple(sorted(set(project_packages)))
        if not packages or not all(isinstance(p, str) and p and not p.startswith(".") for p in packages):
            raise ConfigurationError(
                f"project_packages must name at least one importable package, got {packages!r}; "
                "pass the top-level package(s) holding your feature code, e.g. ['my_research']"
            )
        self.project_packages = packages
        self._normalized: dict[Any, tuple[NormalizedCode, str, int]] = {}
        self._folded: dict[int, tuple[Any, _Folded]] = {}
        self._sources = SourceReader()

    def is_project_module(self, module_name: str | None) -> bool:
        """Whether a module name is one of the project packages or inside one."""
        if not isinstance(module_name, str):
            return False
        return any(module_name == p or module_name.startswith(p + ".") for p in self.project_packages)

    def hash_function(self, fn: Callable[..., Any], params: Mapping[str, Any] | None = None) -> CodeHash:
        """Hash ``fn`` with everything project-local it uses and its declared parameters.

        Args:
            fn: a project function (decorated ones are unwrapped) or a ``functools.partial`` of one.
            params: declared parameters / config defaults: JSON-able scalars, lists and dicts.

        Returns:
            The code hash.

        Raises:
            CodeHashError: the function or something it uses cannot be hashed.
            UnresolvableReference: it reads a name defined nowhere.
        """
        root = self._root(fn)
        params_json = _canonical_params(params, root.qualname)
        visited = {root.key}
        others: list[_Folded] = []
        stack = list(root.edges)
        while stack:
            item = stack.pop()
            node = item if isinstance(item, _Folded) else self._fold_object(item)
            if node.key not in visited:
                visited.add(node.key)
                others.append(node)
                stack.extend(node.edges)
        others.sort(key=lambda n: (n.qualname, n.encoding))
        fields = [CODE_HASH_VERSION, root.encoding, params_json]
        for node in others:
            fields += [node.qualname, node.encoding]
        return CodeHash(
            digest=sha256_of_fields(fields), references=tuple(sorted({n.qualname for n in others}))
        )

    def _root(self, fn: Any) -> _Folded:
        if isinstance(fn, functools.partial):
            inner = self._root(fn.func)
            encoder = ValueEncoder(
                self.is_project_module, where=f"an argument of the partial of {inner.qualname}"
            )
            args = encoder.encode(tuple(fn.args)) + ";" + encoder.encode(dict(fn.keywords))
            return _Folded(
                inner.key, inner.qualname, f"{inner.encoding}\npartial{args}", (*inner.edges, *encoder.edges)
            )
        fn = unwrap(fn)
        if not inspect.isfunction(fn):
            raise CodeHashError(
                f"cannot code-hash {fn!r} of type {type(fn).__qualname__}: pass a plain Python function "
                "(def) defined in a module file of your project, or a functools.partial of one"
            )
        if not self.is_project_module(fn.__module__):
            raise CodeHashError(
                f"{qualified_name(fn)} lives in module {fn.__module__!r}, outside project_packages "
                f"{list(self.project_packages)}; add its package to project_packages so its helpers are hashed"
            )
        return self._fold_object(fn)

    def _fold_object(self, obj: Any) -> _Folded:
        cached = self._folded.get(id(obj))
        if cached is not None and cached[0] is obj:
            return cached[1]
        if inspect.isfunction(obj):
            folded = self._fold_code(obj, self._function_context(obj))
        elif inspect.isclass(obj):
            folded = self._fold_code(obj, self._class_context(obj))
        elif isinstance(obj, types.MethodType):
            encoder = ValueEncoder(self.is_project_module, where=f"the object bound to {qualified_name(obj)}")
            bound_to = encoder.encode(obj.__self__)
            folded = _Folded(
                ("object", id(obj)),
                qualified_name(obj),
                f"method of {bound_to}",
                (obj.__func__, *encoder.edges),
            )
        else:
            raise CodeHashError(
                f"the code hasher cannot hash {qualified_name(obj)}, a value of type {type(obj).__qualname__}: "
                "wrap it in a plain function, or make it a plain constant"
            )
        self._folded[id(obj)] = (obj, folded)
        return folded

    def _fold_code(self, obj: Any, context: _Context) -> _Folded:
        normalized, _, _ = self._normalize(obj)
        edges: list[Any] = []
        for reference in normalized.references:
            edges.extend(self._resolve(reference, context))
        return _Folded(("object", id(obj)), context.qualname, normalized.dump, tuple(edges))

    def _function_context(self, fn: types.FunctionType) -> _Context:
        _, filename, first_line = self._normalize(fn)
        closure = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        return _Context(qualified_name(fn), fn.__module__, filename, first_line, closure, fn.__globals__)

    def _class_context(self, cls: type) -> _Context:
        _, filename, first_line = self._normalize(cls)
        module = sys.modules.get(cls.__module__)
        if module is None:
            raise CodeHashError(
                f"class {qualified_name(cls)} claims module {cls.__module__!r}, which is not imported; "
                "define project classes in an importable module"
            )
        closure: dict[str, Any] = {}
        for member in vars(cls).values():
            func = getattr(member, "__func__", getattr(member, "fget", member))
            if inspect.isfunction(func):
                closure.update(zip(func.__code__.co_freevars, func.__closure__ or ()))
        return _Context(qualified_name(cls), cls.__module__, filename, first_line, closure, vars(module))

    def _resolve(self, reference: NameReference, context: _Context) -> list[Any]:
        name = reference.name
        if name in context.closure:
            try:
                value = context.closure[name].cell_contents
            except ValueError:
                raise self._unresolvable(
                    reference, context, "a closure variable that is never assigned"
                ) from None
            label = f"{context.qualname}.<closure>.{name}"
        elif name in context.globals:
            value, label = context.globals[name], f"{context.module}.{name}"
        elif name in _BUILTINS:
            return []
        else:
            raise self._unresolvable(reference, context, "defined nowhere")
        for attribute in reference.attributes:
            if not isinstance(value, types.ModuleType):
                break
            if not self.is_project_module(value.__name__):
                return []
            if not hasattr(value, attribute):
                raise self._unresolvable(
                    reference, context, f"not an attribute of project module {value.__name__!r}"
                )
            value, label = getattr(value, attribute), f"{value.__name__}.{attribute}"
        return self._edges_for(value, label, context)

    def _edges_for(self, value: Any, label: str, context: _Context) -> list[Any]:
        if isinstance(value, types.ModuleType):
            if self.is_project_module(value.__name__):
                raise CodeHashError(
                    f"{context.qualname} ({context.location}) uses project module {value.__name__!r} as a "
                    "value; the code hasher follows only attribute access such as module.function"
                )
            return []
        value = unwrap(value)
        if inspect.isfunction(value) or inspect.isclass(value):
            return [value] if self.is_project_module(value.__module__) else []
        if isinstance(value, types.MethodType):
            return [value] if self.is_project_module(getattr(value.__func__, "__module__", "")) else []
        if is_named_callable(value) and not self.is_project_module(value.__module__):
            return []
        if isinstance(value, (logging.Logger, logging.LoggerAdapter)) or type(value).__module__ in (
            "typing",
            "typing_extensions",
        ):
            return []
        encoder = ValueEncoder(self.is_project_module, where=f"{label}, read by {context.qualname}")
        text = encoder.encode(value)
        return [_Folded(("value", label, text), label, f"value {text}", tuple(encoder.edges))]

    def _unresolvable(self, reference: NameReference, context: _Context, why: str) -> UnresolvableReference:
        line = context.first_line + reference.lineno - 1
        shown = ".".join((reference.name, *reference.attributes))
        return UnresolvableReference(
            f"{context.qualname} ({context.location}:{line}) reads {shown!r}, and {reference.name!r} is {why}; "
            f"define or import it at module level of {context.module!r} (a name imported only under "
            "`if TYPE_CHECKING:` may be used in annotations only)"
        )

    def _normalize(self, obj: Any) -> tuple[NormalizedCode, str, int]:
        key = obj.__code__ if inspect.isfunction(obj) else obj
        cached = self._normalized.get(key)
        if cached is None:
            node, filename, first_line = self._sources.read(obj)
            cached = (normalize(node), filename, first_line)
            self._normalized[key] = cached
        return cached


def _canonical_params(params: Mapping[str, Any] | None, qualname: str) -> str:
    if params is None:
        return "{}"
    if not isinstance(params, Mapping):
        raise CodeHashError(
            f"params of {qualname} must be a mapping of name to value, got {type(params).__qualname__}"
        )
    for key, value in params.items():
        if not isinstance(key, str):
            raise CodeHashError(
                f"parameter name {key!r} of {qualname} is not a string; name parameters with strings"
            )
        try:
            json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise CodeHashError(
                f"parameter {key!r} of {qualname} = {value!r} is not JSON-able ({exc}); declare parameters as "
                "numbers, strings, booleans, None, lists or dicts with string keys (finite floats only)"
            ) from exc
    return json.dumps(
        dict(params), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def code_hash(
    fn: Callable[..., Any], *, project_packages: Iterable[str], params: Mapping[str, Any] | None = None
) -> CodeHash:
    """Hash one function with a fresh :class:`CodeHasher` (see it for the details).

    Example:
        >>> code_hash(momentum, project_packages=["my_research"], params={"lookback": 20})  # doctest: +SKIP
    """
    return CodeHasher(project_packages).hash_function(fn, params)
