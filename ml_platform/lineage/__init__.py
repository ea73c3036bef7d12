"""Lineage core: code hash (AST), graph hash (Merkle) and data hash (Arrow). Pure, no Dagster.

How it works, and why: docs/architecture.md, "ml_platform/lineage/__init__.py".
"""

from ml_platform.lineage.code_hash import CODE_HASH_VERSION, CodeHash, CodeHasher, code_hash
from ml_platform.lineage.data_hash import DATA_HASH_VERSION, hash_table, raw_buffer_hash
from ml_platform.lineage.graph_hash import GRAPH_HASH_VERSION, GraphNode, compute_graph_hashes, graph_hash
from ml_platform.lineage.schemes import (
    CODE_HASH_SCHEME,
    DATA_HASH_SCHEME,
    ENVIRONMENT_SCHEME,
    GRAPH_HASH_SCHEME,
    HashScheme,
    HashSchemeError,
    check_digest,
    current_scheme,
    recorded_scheme,
    verify_scheme,
)

__all__ = [
    "CODE_HASH_SCHEME",
    "CODE_HASH_VERSION",
    "DATA_HASH_SCHEME",
    "DATA_HASH_VERSION",
    "ENVIRONMENT_SCHEME",
    "GRAPH_HASH_SCHEME",
    "GRAPH_HASH_VERSION",
    "CodeHash",
    "CodeHasher",
    "GraphNode",
    "HashScheme",
    "HashSchemeError",
    "check_digest",
    "code_hash",
    "compute_graph_hashes",
    "current_scheme",
    "graph_hash",
    "hash_table",
    "raw_buffer_hash",
    "recorded_scheme",
    "verify_scheme",
]
