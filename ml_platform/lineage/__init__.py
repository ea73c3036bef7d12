"""Lineage core: code hash (AST), graph hash (Merkle) and data hash (Arrow). Pure, no Dagster.

* :func:`code_hash` / :class:`CodeHasher`: what a feature function computes, as a digest that
  survives comments, formatting, docstrings and type hints but changes with any logic edit in the
  function or a project helper, class or constant it uses.
* :func:`graph_hash` / :func:`compute_graph_hashes`: Merkle hashes over the feature DAG, used as the
  Dagster ``code_version`` so an ancestor's code change marks every descendant unsynced.
* :func:`hash_table`: the content hash of a table, used as the Dagster ``DataVersion`` and recorded
  in manifests; independent of chunking, compression, row groups and writer.
* :mod:`~ml_platform.lineage.schemes`: the versioned scheme id of each hash (``CODE_HASH_SCHEME``,
  ``GRAPH_HASH_SCHEME``, ``DATA_HASH_SCHEME``, ``ENVIRONMENT_SCHEME``), recorded next to the hash, and
  :func:`verify_scheme`, which refuses a recorded id this code cannot recompute.
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
