"""Hash schemes: the versioned names of the algorithms behind every recorded hash. Pure, stdlib only.

How it works, and why: docs/architecture.md, "ml_platform/lineage/schemes.py".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ml_platform.errors import HashSchemeError

__all__ = [
    "CODE_HASH_SCHEME",
    "DATA_HASH_SCHEME",
    "ENVIRONMENT_SCHEME",
    "GRAPH_HASH_SCHEME",
    "HASH_KINDS",
    "MANIFEST_HASH_SCHEME",
    "RECORD_SCHEMES",
    "REGISTRY",
    "SCHEMES",
    "HashScheme",
    "HashSchemeError",
    "SchemeRegistry",
    "check_digest",
    "current_scheme",
    "current_schemes",
    "recorded_scheme",
    "recorded_schemes",
    "verify_scheme",
]

CODE_HASH_SCHEME = "ml_platform.code_hash/v1"
"""The code hash of :mod:`ml_platform.lineage.code_hash` (``sha256:``, version tag ``mlp-code-v1``)."""
GRAPH_HASH_SCHEME = "ml_platform.graph_hash/v1"
"""The Merkle graph hash of :mod:`ml_platform.lineage.graph_hash` (``sha256:``, tag ``mlp-graph-v1``)."""
DATA_HASH_SCHEME = "ml_platform.data_hash/v1"
"""The Arrow table hash of :mod:`ml_platform.lineage.data_hash` (``xxh3_128:``, tag ``mlp-data-v1``)."""
ENVIRONMENT_SCHEME = "ml_platform.environment/v1"
"""The environment lock hash of :mod:`ml_platform.environment.lock` (equal to its ``LOCK_SCHEMA``)."""
MANIFEST_HASH_SCHEME = "ml_platform.manifest_hash/v1"
"""A manifest's own hash over every field (:mod:`ml_platform.io.manifest`; ``sha256:``, ``mlp-manifest-v1``)."""

_SCHEME_ID = re.compile(r"ml_platform\.[a-z_]+/v[1-9][0-9]*")
_ALGORITHM_DIGITS = {"sha256": 64, "xxh3_128": 32}


@dataclass(frozen=True)
class HashScheme:
    """One version of one hash algorithm.

    Attributes:
        scheme_id: the recorded name, ``ml_platform.<name>/v<N>``.
        kind: ``code``, ``graph``, ``data`` or ``environment``.
        algorithm: the digest's algorithm and prefix, ``sha256`` or ``xxh3_128``.
        tag: the version tag hashed inside every digest of this scheme.
        definition: the module that computes it.
        retired: None while the scheme is verifiable; else why it is not and what to do instead.
    """

    scheme_id: str
    kind: str
    algorithm: str
    tag: str
    definition: str
    retired: str | None = None

    def __post_init__(self) -> None:
        if not _SCHEME_ID.fullmatch(self.scheme_id):
            raise ValueError(f"malformed hash scheme id {self.scheme_id!r}; write ml_platform.<name>/v<N>")
        if self.algorithm not in _ALGORITHM_DIGITS:
            raise ValueError(f"unknown digest algorithm {self.algorithm!r} for {self.scheme_id}")

    @property
    def version(self) -> int:
        """The ``N`` of ``/vN``."""
        return int(self.scheme_id.rsplit("/v", 1)[1])

    @property
    def prefix(self) -> str:
        """What every digest of this scheme starts with, e.g. ``sha256:``."""
        return self.algorithm + ":"

    @property
    def hex_digits(self) -> int:
        """How many lower-case hex digits follow the prefix."""
        return _ALGORITHM_DIGITS[self.algorithm]


class SchemeRegistry:
    """Every hash scheme ever issued, current, superseded or retired; exactly one current per kind.

    Args:
        schemes: every scheme, oldest first within a kind.
        current: kind -> the scheme id new hashes are computed with.
        unversioned: kind -> the scheme id of records written before scheme ids were recorded.
    """

    def __init__(
        self,
        schemes: Iterable[HashScheme],
        current: Mapping[str, str],
        unversioned: Mapping[str, str],
    ) -> None:
        by_id: dict[str, HashScheme] = {}
        for scheme in schemes:
            if scheme.scheme_id in by_id:
                raise ValueError(f"hash scheme {scheme.scheme_id!r} is listed twice")
            by_id[scheme.scheme_id] = scheme
        self.schemes: Mapping[str, HashScheme] = MappingProxyType(by_id)
        self.kinds: tuple[str, ...] = tuple(dict.fromkeys(s.kind for s in by_id.values()))
        for label, table in (("current", current), ("unversioned", unversioned)):
            for kind in self.kinds:
                scheme = by_id.get(table.get(kind, ""))
                if scheme is None or scheme.kind != kind:
                    raise ValueError(
                        f"the {label} scheme of {kind!r} hashes must be one of its listed schemes"
                    )
            if set(table) - set(self.kinds):
                raise ValueError(
                    f"{label} names kinds without schemes: {sorted(set(table) - set(self.kinds))}"
                )
        for kind in self.kinds:
            if by_id[current[kind]].retired is not None:
                raise ValueError(f"the current scheme of {kind!r} hashes, {current[kind]}, is retired")
        self._current = dict(current)
        self._unversioned = dict(unversioned)

    def _check_kind(self, kind: str) -> None:
        if kind not in self.kinds:
            raise HashSchemeError(
                f"unknown kind of hash {kind!r}; the versioned kinds are {', '.join(map(repr, self.kinds))}"
            )

    def current(self, kind: str) -> HashScheme:
        """The scheme new hashes of ``kind`` are computed with."""
        self._check_kind(kind)
        return self.schemes[self._current[kind]]

    def verify(self, kind: str, scheme_id: str) -> HashScheme:
        """The scheme ``scheme_id`` names, checked to be a verifiable scheme of ``kind``.

        Raises:
            HashSchemeError: ``kind`` is unknown; ``scheme_id`` is not a string, is unknown (for
                example written by a newer ml_platform), belongs to another kind, or is retired.
        """
        self._check_kind(kind)
        if not isinstance(scheme_id, str):
            raise HashSchemeError(
                f"the {kind} hash scheme must be a scheme id string such as {self._current[kind]!r}, "
                f"got {scheme_id!r}"
            )
        scheme = self.schemes.get(scheme_id)
        if scheme is None:
            known = ", ".join(s.scheme_id for s in self.schemes.values() if s.kind == kind)
            raise HashSchemeError(
                f"unknown {kind} hash scheme {scheme_id!r}: this ml_platform can verify {known}. "
                "The record was written by another (newer?) ml_platform, or is corrupt; verify it with "
                "the version that wrote it"
            )
        if scheme.kind != kind:
            raise HashSchemeError(
                f"{scheme_id!r} is a {scheme.kind} hash scheme, recorded where a {kind} hash scheme belongs; "
                "the record is corrupt"
            )
        if scheme.retired is not None:
            raise HashSchemeError(
                f"the {kind} hash scheme {scheme_id!r} is retired and can no longer be recomputed: "
                f"{scheme.retired}"
            )
        return scheme

    def recorded(self, kind: str, scheme_id: str | None) -> HashScheme:
        """Like :meth:`verify`, with ``None`` (a record older than scheme ids) meaning the first scheme."""
        self._check_kind(kind)
        return self.verify(kind, self._unversioned[kind] if scheme_id is None else scheme_id)


_ISSUED = (
    HashScheme(CODE_HASH_SCHEME, "code", "sha256", "mlp-code-v1", "ml_platform.lineage.code_hash"),
    HashScheme(GRAPH_HASH_SCHEME, "graph", "sha256", "mlp-graph-v1", "ml_platform.lineage.graph_hash"),
    HashScheme(DATA_HASH_SCHEME, "data", "xxh3_128", "mlp-data-v1", "ml_platform.lineage.data_hash"),
    HashScheme(
        ENVIRONMENT_SCHEME, "environment", "sha256", ENVIRONMENT_SCHEME, "ml_platform.environment.lock"
    ),
)
"""Every scheme ever issued. A new version is appended (and made current in ``_CURRENT``); an entry is
never edited or removed, except to set ``retired`` when its code is removed."""
_CURRENT = {
    "code": CODE_HASH_SCHEME,
    "graph": GRAPH_HASH_SCHEME,
    "data": DATA_HASH_SCHEME,
    "environment": ENVIRONMENT_SCHEME,
}
_UNVERSIONED = {
    "code": CODE_HASH_SCHEME,
    "graph": GRAPH_HASH_SCHEME,
    "data": DATA_HASH_SCHEME,
    "environment": ENVIRONMENT_SCHEME,
}
"""The schemes of records written before scheme ids were recorded: forever the v1 schemes."""

REGISTRY = SchemeRegistry(_ISSUED, current=_CURRENT, unversioned=_UNVERSIONED)
"""The hash schemes of this ml_platform."""

SCHEMES: Mapping[str, HashScheme] = REGISTRY.schemes
"""Scheme id -> :class:`HashScheme`, for every scheme ever issued (retired ones included)."""
HASH_KINDS: tuple[str, ...] = REGISTRY.kinds
"""The kinds of hash versioned here: ``code``, ``graph``, ``data``, ``environment``."""


RECORD_SCHEMES = SchemeRegistry(
    (HashScheme(MANIFEST_HASH_SCHEME, "manifest", "sha256", "mlp-manifest-v1", "ml_platform.io.manifest"),),
    current={"manifest": MANIFEST_HASH_SCHEME},
    unversioned={"manifest": MANIFEST_HASH_SCHEME},
)
"""The schemes of hashes over whole records (a manifest's own hash). Kept apart from :data:`REGISTRY`:
a record names its own scheme beside its hash, and ``hash_schemes`` (which contracts hash) stays as is."""


def current_scheme(kind: str) -> HashScheme:
    """The scheme new hashes of ``kind`` are computed with (record its ``scheme_id`` with the hash).

    Example:
        >>> current_scheme("data").scheme_id
        'ml_platform.data_hash/v1'
    """
    return REGISTRY.current(kind)


def verify_scheme(kind: str, scheme_id: str) -> HashScheme:
    """Check that a recorded scheme id names a scheme of ``kind`` this code can still recompute.

    Args:
        kind: ``code``, ``graph``, ``data`` or ``environment``.
        scheme_id: the scheme id stored with the hash.

    Returns:
        The scheme (its ``algorithm``, ``tag`` and ``definition`` say how to recompute the hash).

    Raises:
        HashSchemeError: unknown kind; unknown, retired or other-kind scheme id (the message says which
            and what to do).

    Example:
        >>> verify_scheme("code", "ml_platform.code_hash/v1").tag
        'mlp-code-v1'
    """
    return REGISTRY.verify(kind, scheme_id)


def recorded_scheme(kind: str, scheme_id: str | None) -> HashScheme:
    """:func:`verify_scheme` for a record that may predate scheme ids (``None`` means the ``v1`` scheme)."""
    return REGISTRY.recorded(kind, scheme_id)


def check_digest(kind: str, scheme_id: str, digest: object) -> str:
    """Check that ``digest`` has the form the scheme produces (prefix and hex digits) and return it.

    Raises:
        HashSchemeError: the scheme does not verify (see :func:`verify_scheme`) or the digest is not
            ``<algorithm>:<lower-case hex>`` of the scheme's length.
    """
    scheme = verify_scheme(kind, scheme_id)
    if not (
        isinstance(digest, str)
        and digest.startswith(scheme.prefix)
        and re.fullmatch(f"[0-9a-f]{{{scheme.hex_digits}}}", digest[len(scheme.prefix) :])
    ):
        raise HashSchemeError(
            f"{digest!r} is not a {kind} hash of scheme {scheme_id}: expected {scheme.prefix} followed by "
            f"{scheme.hex_digits} lower-case hex digits"
        )
    return digest


def current_schemes() -> dict[str, str]:
    """Kind -> scheme id of every hash this code computes now: what a manifest or contract records."""
    return {kind: current_scheme(kind).scheme_id for kind in HASH_KINDS}


def recorded_schemes(recorded: object) -> dict[str, str]:
    """Check the ``hash_schemes`` a record carries; a record without one (or without a kind) predates them.

    Returns:
        Kind -> scheme id for every kind, each one verified as recomputable by this code.

    Raises:
        HashSchemeError: not a mapping of kinds to ids, or an id this code cannot recompute.
    """
    if recorded is None:
        recorded = {}
    if not isinstance(recorded, Mapping) or not all(isinstance(k, str) for k in recorded):
        raise HashSchemeError(f"hash_schemes must map hash kinds to scheme ids, got {recorded!r}")
    unknown = sorted(set(recorded) - set(HASH_KINDS))
    if unknown:
        raise HashSchemeError(f"hash_schemes names unknown kinds {unknown}; known kinds: {list(HASH_KINDS)}")
    return {kind: recorded_scheme(kind, recorded.get(kind)).scheme_id for kind in HASH_KINDS}
