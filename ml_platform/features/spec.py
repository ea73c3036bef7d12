"""Feature specifications: what a feature node is, before Dagster sees it. Pure, no Dagster.

A feature is a pure function from upstream frames to a frame keyed by the graph's key columns (see
:class:`~ml_platform.keys.FrameKeys`). The :func:`feature` decorator records the function together with
what the framework must know to run it point-in-time: which upstream nodes feed which parameter, how
much history (lookback) or future (lookahead, labels only) each needs, in partitions of the graph's
calendar or in calendar days, and the declared parameters whose defaults are part of the node's code
hash.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import polars as pl

from ml_platform.errors import ConfigurationError, GraphError

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_SCALARS = (bool, int, float, str)
#: Parameter names the framework fills in itself (never from upstream or params).
RESERVED_ARGS = frozenset({"window", "seed"})


@dataclass(frozen=True)
class Upstream:
    """An upstream feature node feeding one parameter of a feature function.

    History and future are stated in partitions of the graph's calendar (``lookback=5``: the five
    partitions before each one, whatever the calendar: five business days, five weeks), in calendar
    days (``lookback_days=100``, turned into enough partitions to cover that many days), or both
    (they add up).

    Attributes:
        key: the upstream node's key.
        lookback_days: calendar days of history before the window that the function needs to compute
            the window's first day point-in-time (e.g. 100 for a 63-bar momentum on a daily calendar).
        lookahead_days: calendar days after the window; only labels may look ahead.
        lookback: partitions of history before each partition.
        lookahead: partitions after each partition; only labels may look ahead.
    """

    key: str
    lookback_days: int = 0
    lookahead_days: int = 0
    lookback: int = 0
    lookahead: int = 0

    def __post_init__(self) -> None:
        for name in ("lookback_days", "lookahead_days", "lookback", "lookahead"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(
                    f"upstream {self.key!r}: {name} must be an integer >= 0, got {value!r}"
                )

    @property
    def looks_ahead(self) -> bool:
        return bool(self.lookahead_days or self.lookahead)

    def hashed(self) -> list[object]:
        """What of this edge is part of the reading node's code hash.

        Partition offsets are appended only when set, so graphs that state history in days keep the
        hashes they were recorded with.
        """
        out: list[object] = [self.key, self.lookback_days, self.lookahead_days]
        if self.lookback or self.lookahead:
            out += [self.lookback, self.lookahead]
        return out


@dataclass(frozen=True)
class FeatureSpec:
    """One node of the feature graph: a pure function plus how to feed it.

    Attributes:
        key: asset key (a single lower-case name).
        fn: the pure function; it receives upstream frames by parameter name, declared ``params`` as
            keyword arguments, ``window`` (a :class:`~ml_platform.window.DataWindow`) if it has such a
            parameter, and ``seed`` (derived by the framework from graph hash and partition) if it has one.
        upstream: parameter name -> :class:`Upstream`.
        params: declared parameters and their defaults (JSON scalars); part of the code hash; exposed
            as Dagster run config so a run may override them (the override is recorded in the manifest).
        seed_params: names of ``params`` that are seeds (recorded as seeds, never derived).
        partitioned: partitioned on the graph's calendar (True) or a windowed, unpartitioned node that
            reads its upstream for a configured window from the store (False), like a training set.
        label: the node looks ahead (forward returns); only labels may declare lookahead.
    """

    key: str
    fn: Callable[..., pl.DataFrame]
    upstream: Mapping[str, Upstream] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    seed_params: tuple[str, ...] = ()
    partitioned: bool = True
    label: bool = False
    group: str = "features"
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstream", MappingProxyType(dict(self.upstream)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        where = f"feature {self.key!r} ({getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')})"
        if not _KEY.match(self.key):
            raise ConfigurationError(f"{where}: key must match {_KEY.pattern}")
        sig = inspect.signature(self.fn)
        names = set(sig.parameters)
        for name, value in self.params.items():
            if not isinstance(value, _SCALARS):
                raise ConfigurationError(
                    f"{where}: param {name!r} has default {value!r} of type {type(value).__name__}; "
                    "params must be bool, int, float or str so they can be hashed and set as run config"
                )
        for name in self.seed_params:
            if name not in self.params:
                raise ConfigurationError(f"{where}: seed param {name!r} is not among its params")
        # a declared `seed` param is a *given* seed; only an undeclared `seed` argument is derived
        clash = (set(self.upstream) & set(self.params)) | (set(self.upstream) & RESERVED_ARGS) | (
            set(self.params) & RESERVED_ARGS - set(self.seed_params))
        if clash:
            raise ConfigurationError(f"{where}: parameter names {sorted(clash)} are used twice or reserved")
        wanted = set(self.upstream) | set(self.params) | (names & RESERVED_ARGS)
        missing = wanted - names
        extra = names - wanted
        if missing or extra:
            raise ConfigurationError(
                f"{where}: the function's parameters {sorted(names)} must be exactly its upstream inputs "
                f"{sorted(self.upstream)}, its params {sorted(self.params)} and optionally 'window'/'seed'; "
                f"missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        for up in self.upstream.values():
            if up.looks_ahead and not self.label:
                raise GraphError(
                    f"{where}: upstream {up.key!r} looks ahead, but only a label may "
                    "look ahead; a feature that sees the future is look-ahead bias"
                )
            if up.key == self.key:
                raise GraphError(f"{where}: a node cannot be its own upstream")

    @property
    def wants_window(self) -> bool:
        return "window" in inspect.signature(self.fn).parameters

    @property
    def wants_seed(self) -> bool:
        """The function takes a ``seed`` the framework derives (graph hash + partition), not a given one."""
        return "seed" in inspect.signature(self.fn).parameters and "seed" not in self.params

    @property
    def upstream_keys(self) -> tuple[str, ...]:
        return tuple(sorted({u.key for u in self.upstream.values()}))

    def __call__(self, *args: Any, **kwargs: Any) -> pl.DataFrame:
        """Call the underlying pure function (handy in notebooks and tests)."""
        return self.fn(*args, **kwargs)


def feature(
    *,
    upstream: Mapping[str, Upstream | str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed_params: tuple[str, ...] = (),
    partitioned: bool = True,
    label: bool = False,
    group: str = "features",
    key: str | None = None,
) -> Callable[[Callable[..., pl.DataFrame]], FeatureSpec]:
    """Declare a pure function as a feature node.

    Example:
        >>> @feature(upstream={"bars": Upstream("market_bars", lookback_days=100)})
        ... def momentum(bars: pl.DataFrame) -> pl.DataFrame:
        ...     return compute.momentum(bars)

    The decorated name becomes a :class:`FeatureSpec`; :class:`~ml_platform.features.graph.FeatureGraph`
    hashes it and :func:`~ml_platform.features.assets.build_feature_assets` turns it into a Dagster asset.
    """

    def wrap(fn: Callable[..., pl.DataFrame]) -> FeatureSpec:
        ups = {name: (u if isinstance(u, Upstream) else Upstream(u)) for name, u in (upstream or {}).items()}
        return FeatureSpec(
            key=key or fn.__name__,
            fn=fn,
            upstream=ups,
            params=dict(params or {}),
            seed_params=seed_params,
            partitioned=partitioned,
            label=label,
            group=group,
            description=inspect.cleandoc(fn.__doc__ or "").split("\n\n")[0],
        )

    return wrap
