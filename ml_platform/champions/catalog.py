"""The registry's listings with the champion of record: the ledger head checked against its anchor.

Without a ledger (an MLflow server and no ledger URL), the MLflow alias.
"""

from __future__ import annotations

import dataclasses

from ml_platform.champions.anchor import AnchorReading, anchor_of, refuse_unanchored_head
from ml_platform.champions.location import ledger_url_of, open_ledger
from ml_platform.errors import ModelNotFound
from ml_platform.registry.entities import ModelSummary, VersionDetails, check_model_name
from ml_platform.registry.store import ModelRegistry

__all__ = ["champion_of_record", "list_models", "read_anchor", "show_versions"]


def champion_of_record(registry: ModelRegistry, model: str) -> str | None:
    """``model``'s champion of record: its ledger head's version (one read), or ``None`` if never promoted.

    Without a ledger for the registry (an MLflow server and no ledger URL), the MLflow alias.

    Raises:
        ModelNotFound: no registered model of that name (the known ones listed).
        LedgerTampered: the head disagrees with its own row, with the newest entry, or with its anchor
            (a cut tail, a moved-back head): the message says to run ``ml-platform audit verify``.
    """
    if ledger_url_of(registry) is None:
        return registry.champion_alias(model)
    check_model_name(model)
    with open_ledger(registry, read_only=True) as ledger:
        head = ledger.head(model)  # refuses a head row that disagrees with its own entry or moved back
    # one MLflow read: the head's anchor (an unknown model: ModelNotFound listing the known ones)
    refuse_unanchored_head(model, head, anchor_of(registry.model_tags(model)))
    return None if head is None else head.to_version


def read_anchor(registry: ModelRegistry, model: str) -> AnchorReading:
    """``model``'s ledger anchor as stored on its MLflow registered model (none if there is no such model)."""
    try:
        return anchor_of(registry.model_tags(model))
    except ModelNotFound:
        return anchor_of(None)


def list_models(registry: ModelRegistry) -> list[ModelSummary]:
    """Every registered model with its usable versions and its champion of record, by name."""
    summaries = registry.list_models()
    if not summaries or ledger_url_of(registry) is None:
        return summaries
    with open_ledger(registry, read_only=True) as ledger:
        heads = {s.name: ledger.head(s.name) for s in summaries}
    return [dataclasses.replace(s, champion=None if heads[s.name] is None else heads[s.name].to_version)
            for s in summaries]


def show_versions(registry: ModelRegistry, name: str, version: str | int | None = None) -> tuple[VersionDetails, ...]:
    """:meth:`ModelRegistry.show`, with ``is_champion`` marking the champion of record."""
    details = registry.show(name, version)
    champion = champion_of_record(registry, name)
    return tuple(dataclasses.replace(d, is_champion=d.version == champion) for d in details)
