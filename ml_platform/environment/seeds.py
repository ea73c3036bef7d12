"""Seeds come from one place: derived from the graph hash and partition unless given, and recorded.

A re-run of the same code on the same partition draws the same random numbers; a code change
anywhere upstream changes the graph hash and therefore draws new ones.
"""

from __future__ import annotations

import hashlib

from ml_platform.errors import ConfigurationError

__all__ = ["SEED_LIMIT", "derive_seed", "validate_seed"]

_SEED_DOMAIN = b"ml_platform.seed/v1"
SEED_LIMIT = 2**63
"""Seeds are integers in ``[0, SEED_LIMIT)`` (63 bits: fits a signed 64-bit integer and numpy)."""


def validate_seed(name: object, value: object) -> int:
    """Check one recorded or given seed: a non-empty name and an integer in ``[0, SEED_LIMIT)``.

    Args:
        name: the seed's name (what it is drawn for, e.g. ``"default"``).
        value: the seed.

    Returns:
        The seed, unchanged.

    Raises:
        ConfigurationError: the name is not a non-empty string, or the value is not an integer in
            range (``bool`` is refused although it is an ``int``).
    """
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"seed names must be non-empty strings, got {name!r}")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ConfigurationError(
            f"seed {name!r} must be an integer in [0, 2**63), got {value!r}; "
            "use derive_seed or pass a non-negative 63-bit integer"
        )
    return value


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
    # The framing (8-byte *big*-endian lengths) is frozen as part of the seed definition
    # ml_platform.seed/v1. It deliberately does not use lineage.encoding.frame (little-endian):
    # switching would change every derived seed and break reproduction of recorded runs.
    for field in fields:
        digest.update(len(field).to_bytes(8, "big"))
        digest.update(field)
    return int.from_bytes(digest.digest()[:8], "big") >> 1
