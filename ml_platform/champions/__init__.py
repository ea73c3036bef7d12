"""Champions of record: the hash-chained ledger, promotion and rollback moves, reconcile, serving.

The ledger head is the champion of record; the MLflow ``champion`` alias only mirrors it. This
package sits above :mod:`ml_platform.registry` (MLflow) and below the promotion and rollback jobs.
Importing it loads the ledger only (no Dagster, no MLflow); the service, serving and the Dagster
resource live in their own modules.
"""

from __future__ import annotations

from ml_platform.champions.chain import ChainProblem, ChainReport, walk_chain
from ml_platform.champions.entry import GENESIS_HASH, LEDGER_SCHEME, LedgerEntry, MoveKind, compute_entry_hash
from ml_platform.champions.ledger import ChampionLedger
from ml_platform.champions.schema import SCHEMA_VERSION

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
