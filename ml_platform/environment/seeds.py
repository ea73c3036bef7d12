"""Seeds come from one place: derived from the graph hash and partition unless given, and recorded.

A re-run of the same code on the same partition draws the same random numbers; a code change
anywhere upstream changes the graph hash and therefore draws new ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from ml_platform.errors import ConfigurationError

__all__ = ["SEED_LIMIT", "derive_seed", "resolve_seeds"]

_SEED_DOMAIN = b"ml_platform.seed/v1"
SEED_LIMIT = 2**63
"""Seeds are integers in ``[0, SEED_LIMIT)`` (63 bits: fits a signed 64-bit integer and numpy)."""


def derive_seed(graph_hash: str, partition_key: str | None, name: str = "default") -> int:
    """The one place seeds come from: a deterministic 63-bit seed for a node, partition and purpose.

    The seed is the first 8 bytes (big-endian, top bit dropped) of a SHA-256 over a length-prefixed
    encoding of a domain tag, the graph hash, the partition key (None is distinct from ``""``) and the
    name. Any upstream code change alters the graph hash and therefore every downstream seed.

    Example:
        >>> derive_seed("sha256:ab", "2012-01-03") == derive_seed("sha256:ab", "2012-01-03")
        True
    """
    if not isinstance(graph_hash, str) or not graph_hash:
        raise ConfigurationError(f"derive_seed needs the node's graph hash, got {graph_hash!r}")
    if partition_key is not None and not isinstance(partition_key, str):
        raise ConfigurationError(f"partition key must be a string or None, got {partition_key!r}")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"seed name must be a non-empty string, got {name!r}")
    digest = hashlib.sha256()
    fields = [
        _SEED_DOMAIN,
        graph_hash.encode(),
        b"\x00" if partition_key is None else b"\x01" + partition_key.encode(),
        name.encode(),
    ]
    for field in fields:
        digest.update(len(field).to_bytes(8, "big"))
        digest.update(field)
    return int.from_bytes(digest.digest()[:8], "big") >> 1


def resolve_seeds(
    graph_hash: str, partition_key: str | None, names: Sequence[str], given: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Seeds for ``names``: the given ones where supplied (validated), derived ones otherwise."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigurationError(f"seeds given for unknown names {unknown}; this node uses {sorted(names)}")
    seeds: dict[str, int] = {}
    for name in names:
        if name in given:
            value = given[name]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
                raise ConfigurationError(f"seed {name!r} must be an integer in [0, 2**63), got {value!r}")
            seeds[name] = value
        else:
            seeds[name] = derive_seed(graph_hash, partition_key, name)
    return seeds
