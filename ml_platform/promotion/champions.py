"""The one switch between the promotion job and the champion of record (the ledger head).

The record step reads the head the report was compared against and promotes compare-and-set on it
through :class:`~ml_platform.registry.champions.ChampionService`, which appends the ledger entry and
then mirrors the MLflow alias.
"""

from __future__ import annotations

from typing import Any

from ml_platform.ledger import LedgerEntry
from ml_platform.registry.champions import ChampionService
from ml_platform.registry.store import ModelRegistry

__all__ = ["Champions", "champions_for"]


class Champions:
    """The ledger head of a model, and a compare-and-set promotion on it."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.ledger = registry.ledger()
        self.service = ChampionService(registry, self.ledger)

    def head(self, model: str) -> LedgerEntry | None:
        return self.ledger.head(model)

    def promote(self, model: str, version: str, *, expected_head_seq: int, **details: Any) -> LedgerEntry:
        return self.service.promote(model, version, expected_head_seq=expected_head_seq, **details)


def champions_for(registry: ModelRegistry) -> Champions:
    """The champion of record of ``registry``'s models (its ledger, through ChampionService)."""
    return Champions(registry)
