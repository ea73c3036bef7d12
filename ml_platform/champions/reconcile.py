"""Reconcile: every MLflow champion alias and ledger anchor set back to its ledger head; the rest reported.

Repaired: an alias off the head (a crash between the ledger write and the alias write, an alias moved
by hand in the MLflow UI), an anchor behind the head or missing (a crash before the anchor write). Only
reported, never moved: a head on a deleted or unusable version (a person decides where to roll back),
a chain that does not verify or an anchor ahead of it (tampering), an alias the ledger has no champion for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ml_platform.champions.anchor import ANCHOR_SOURCE, format_anchor
from ml_platform.champions.catalog import read_anchor
from ml_platform.champions.facts import VersionFactsReader
from ml_platform.champions.ledger import ChampionLedger
from ml_platform.errors import ModelNotFound
from ml_platform.registry.entities import LEDGER_HEAD_TAG, VersionStatus, check_model_name
from ml_platform.registry.store import ModelRegistry

__all__ = ["ReconcileFinding", "ReconcileReport", "reconcile"]


@dataclass(frozen=True)
class ReconcileFinding:
    """One inconsistency between the ledger, the alias and the versions.

    Attributes:
        model: Registered model name.
        problem: ``alias_drift``, ``alias_missing``, ``anchor_behind``, ``anchor_missing``,
            ``head_version_deleted``, ``head_version_unusable``, ``chain_broken`` or ``alias_without_ledger``.
        detail: What was found.
        action: What was done (or would be done, or must be done by a person).
        repaired: Whether this run repaired it.
    """

    model: str
    problem: str
    detail: str
    action: str
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "problem": self.problem, "detail": self.detail, "action": self.action,
                "repaired": self.repaired}


@dataclass(frozen=True)
class ReconcileReport:
    """What :meth:`ChampionService.reconcile` found and did.

    Attributes:
        models: The models looked at.
        findings: Every inconsistency found.
        check_only: Nothing was changed.
    """

    models: tuple[str, ...]
    findings: tuple[ReconcileFinding, ...] = field(default_factory=tuple)
    check_only: bool = False

    @property
    def consistent(self) -> bool:
        """Nothing was found (with ``check_only``) or everything found was repaired."""
        return all(f.repaired for f in self.findings) and not (self.check_only and self.findings)

    def lines(self) -> list[str]:
        if not self.findings:
            return [f"champions consistent: {len(self.models)} model(s), every alias equals its ledger head"]
        return [f"{f.model}: {f.problem}: {f.detail} -> {f.action}" for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {"models": list(self.models), "check_only": self.check_only, "consistent": self.consistent,
                "findings": [f.to_dict() for f in self.findings]}


def reconcile(ledger: ChampionLedger, registry: ModelRegistry, facts: VersionFactsReader, model: str | None = None,
              *, check_only: bool = False) -> ReconcileReport:
    """Find (and unless ``check_only`` repair) every alias that differs from its ledger head."""
    if model is not None:
        check_model_name(model)
        models: tuple[str, ...] = (model,)
    else:
        models = tuple(sorted(set(ledger.models()) | set(registry.models_with_champion_alias())))
    findings: list[ReconcileFinding] = []
    for name in models:
        findings.extend(_reconcile_one(ledger, registry, facts, name, check_only))
    return ReconcileReport(models, tuple(findings), check_only)


def _reconcile_one(ledger: ChampionLedger, registry: ModelRegistry, facts_reader: VersionFactsReader, model: str,
                   check_only: bool) -> list[ReconcileFinding]:
    report = ledger.verify(model, strict=False, anchor=read_anchor(registry, model))
    if not report.ok:
        return [ReconcileFinding(model, "chain_broken", report.describe(),
                                 "none: restore the ledger tables from a backup; the alias is left alone")]
    head = ledger.head(model)
    try:
        alias = registry.champion_alias(model)
    except ModelNotFound:
        alias = None
    if head is None:
        if alias is None:
            return []
        return [ReconcileFinding(model, "alias_without_ledger",
                                 f"the MLflow alias points at version {alias} but the ledger records no champion",
                                 f"none: promote it to record it (ml_platform promote {model} {alias})")]
    facts = facts_reader.read(model, head.to_version)
    if not facts.exists:
        return [ReconcileFinding(model, "head_version_deleted",
                                 f"the champion of record, version {head.to_version}, was deleted from MLflow",
                                 f"none: roll back (`ml-platform rollback {model}`) or promote another version")]
    found: list[ReconcileFinding] = []
    if facts.status != VersionStatus.READY:
        found.append(ReconcileFinding(model, "head_version_unusable",
                                      f"the champion of record, version {head.to_version}, is not ready "
                                      f"({facts.status!r})", "none: roll back or promote another version"))
    if alias != head.to_version:
        problem = "alias_missing" if alias is None else "alias_drift"
        detail = (f"the MLflow alias points at {alias if alias is not None else 'nothing'} but the ledger head "
                  f"(entry {head.seq}) is version {head.to_version}")
        if check_only:
            found.append(ReconcileFinding(model, problem, detail, f"would set the alias to {head.to_version}"))
        else:
            registry.write_champion_alias(model, head.to_version)
            found.append(ReconcileFinding(model, problem, detail, f"alias set to {head.to_version}", True))
    if report.anchor_state in ("behind", "missing"):  # a move's anchor write did not finish; ahead is tampering
        anchor = format_anchor(head)
        problem = f"anchor_{report.anchor_state}"
        detail = (f"{ANCHOR_SOURCE} {'is not set' if report.anchor is None else f'names {report.anchor}'} but the "
                  f"ledger head is entry {head.seq}")
        if check_only:
            found.append(ReconcileFinding(model, problem, detail, f"would set the anchor to {anchor}"))
        else:
            registry.write_model_tag(model, LEDGER_HEAD_TAG, anchor)
            found.append(ReconcileFinding(model, problem, detail, f"anchor set to {anchor}", True))
    return found
