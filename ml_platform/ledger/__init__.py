"""The champion ledger: an append-only, hash-chained record of every champion move. No Dagster, no MLflow.

The ledger head is the champion of record; the MLflow ``champion`` alias only mirrors it. Layers:

* :mod:`~ml_platform.ledger.entry` (pure): :class:`LedgerEntry` and its hash, scheme ``ml_platform.ledger/v1``;
* :mod:`~ml_platform.ledger.verify` (pure): :func:`walk_chain`, naming the first altered, deleted or
  reordered entry in a :class:`ChainReport`;
* :mod:`~ml_platform.ledger.schema`: the tables, created and migrated by versioned DDL;
* :mod:`~ml_platform.ledger.store`: :class:`ChampionLedger`, compare-and-set appends on SQLite and PostgreSQL.

Example:
    >>> ledger = ChampionLedger("sqlite:///.ml_platform/mlflow/mlflow.db")  # doctest: +SKIP
    >>> ledger.move("alpha", kind="promotion", to_version="3", actor="alice", reason="...")  # doctest: +SKIP
    >>> ledger.head("alpha").to_version  # doctest: +SKIP
    '3'
"""

from __future__ import annotations

from ml_platform.ledger.entry import GENESIS_HASH, LEDGER_SCHEME, LedgerEntry, MoveKind, compute_entry_hash
from ml_platform.ledger.schema import SCHEMA_VERSION
from ml_platform.ledger.store import ChampionLedger
from ml_platform.ledger.verify import ChainProblem, ChainReport, walk_chain

__all__ = [
    "GENESIS_HASH",
    "LEDGER_SCHEME",
    "SCHEMA_VERSION",
    "ChainProblem",
    "ChainReport",
    "ChampionLedger",
    "LedgerEntry",
    "MoveKind",
    "compute_entry_hash",
    "walk_chain",
]
