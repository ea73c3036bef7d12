"""The one switch between this package and the champion of record.

``ml_platform.registry.champions.ChampionService`` (the ledger plus the mirrored MLflow alias) is used
when it exists; until then a small adapter over :class:`~ml_platform.ledger.ChampionLedger` does the
same two things: read the head, and append a promotion compare-and-set then mirror the alias.
"""

from __future__ import annotations

from typing import Any, Protocol

from ml_platform.ledger import ChampionLedger, LedgerEntry, MoveKind
from ml_platform.registry.store import ModelRegistry

__all__ = ["Champions", "champions_for"]


class Champions(Protocol):
    def head(self, model: str) -> LedgerEntry | None: ...

    def promote(self, model: str, version: str, *, expected_head_seq: int, **details: Any) -> LedgerEntry: ...


class _ServiceChampions:
    """Over ``ChampionService`` (registry/champions.py)."""

    def __init__(self, registry: ModelRegistry) -> None:
        from ml_platform.registry.champions import ChampionService  # type: ignore[import-not-found]

        self.ledger = registry.ledger()  # type: ignore[attr-defined]
        self.service = ChampionService(registry, self.ledger)

    def head(self, model: str) -> LedgerEntry | None:
        return self.ledger.head(model)

    def promote(self, model: str, version: str, *, expected_head_seq: int, **details: Any) -> LedgerEntry:
        return self.service.promote(model, version, expected_head_seq=expected_head_seq, **details)


class _LedgerChampions:
    """Fallback: the ledger in the registry's database, then the MLflow alias mirrored."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self.ledger = ChampionLedger(registry.registry_uri, busy_timeout_seconds=max(registry.busy_timeout_seconds, 1))

    def head(self, model: str) -> LedgerEntry | None:
        return self.ledger.head(model)

    def promote(self, model: str, version: str, *, expected_head_seq: int, actor: str, approver: str, reason: str,
                **refs: Any) -> LedgerEntry:
        entry = self.ledger.append(model, expected_head_seq=expected_head_seq, kind=MoveKind.PROMOTION,
                                   to_version=version, actor=actor, approver=approver, reason=reason, **refs)
        self.registry.set_champion(model, version)  # the mirror; reconcile repairs it if this fails
        return entry


def champions_for(registry: ModelRegistry) -> Champions:
    """``ChampionService`` if the registry offers it, else the ledger adapter."""
    try:
        return _ServiceChampions(registry)
    except (ImportError, AttributeError):
        return _LedgerChampions(registry)
