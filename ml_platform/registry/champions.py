"""Champion moves as one service: promote, roll back, reconcile; the ledger decides, the alias follows.

:class:`ChampionService` joins the :class:`~ml_platform.ledger.ChampionLedger` (the champion of record)
and the :class:`~ml_platform.registry.store.ModelRegistry` (versions, contracts, the MLflow ``champion``
alias that mirrors the ledger head for the MLflow UI).

Order of a move: checks, then ONE ledger transaction (compare-and-set on the head), then the alias
write, bounded by ``alias_timeout_seconds`` and retried ``alias_retries`` times. A failed or timed-out
alias write is logged and left for :meth:`ChampionService.reconcile` (``ml-platform registry
reconcile``); it never undoes the ledger entry, which is already the champion of record.

Rollback does not wait on the MLflow client. Its checks (was the target champion, does the version
exist, is it ``ready``, which feature graph does it need) are answered by the ledger's history and by
MLflow's own version rows read with one SQL query through the ledger's engine, whenever the ledger's
database holds MLflow's tables (the embedded SQLite file, a PostgreSQL tracking store, or an MLflow
server in front of the same database given as the ledger URL). The feature graph is the version's
``ml_platform.feature_graph_hash`` tag, written with the version in one transaction together with the
contract's SHA-256; the target's contract itself was verified when it was promoted (every champion of
record passed :meth:`~ml_platform.registry.store.ModelRegistry.load_contract`). Only when the ledger
database holds no MLflow tables does rollback ask the MLflow client (and then needs it up). So a
rollback succeeds while the MLflow tracking store refuses writes or its server is down, as long as
the database itself answers; the alias is repaired later by reconcile.

Promotion loads and verifies the version's contract through MLflow (it needs the artefact store).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ml_platform.compat import holds_mlflow_versions, mlflow_version_tags
from ml_platform.crashpoints import crash_point
from ml_platform.errors import (
    ConfigurationError,
    LedgerConflict,
    LedgerMoveRefused,
    MLPlatformError,
    ModelNotFound,
    RollbackRefused,
)
from ml_platform.ledger import ChainReport, ChampionLedger, LedgerEntry, MoveKind
from ml_platform.ledger.entry import check_text
from ml_platform.registry import entities as E
from ml_platform.registry.entities import VersionStatus, check_model_name, check_version

if TYPE_CHECKING:
    from ml_platform.registry.store import ModelRegistry

__all__ = ["ChampionService", "ReconcileFinding", "ReconcileReport", "VersionFacts", "previous_champion"]

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class VersionFacts:
    """What a rollback needs to know about a version, read from MLflow's rows or its client.

    Attributes:
        exists: The version row exists and is not deleted.
        status: Its ``ml_platform.status`` tag (``ready`` when usable).
        feature_graph_hash: The feature graph its features need (its contract's, tagged at registration).
        source: ``database`` (MLflow's rows read directly) or ``mlflow`` (the MLflow client).
    """

    exists: bool
    status: str | None
    feature_graph_hash: str | None
    source: str


@dataclass(frozen=True)
class ReconcileFinding:
    """One inconsistency between the ledger, the alias and the versions.

    Attributes:
        model: Registered model name.
        problem: ``alias_drift``, ``alias_missing``, ``head_version_deleted``, ``head_version_unusable``,
            ``chain_broken`` or ``alias_without_ledger``.
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


def previous_champion(entries: tuple[LedgerEntry, ...] | list[LedgerEntry]) -> str | None:
    """The champion a rollback without ``to`` returns to, from a model's ledger entries (oldest first).

    The ledger is replayed as a stack: a promotion pushes its version, a rollback pops back to its
    target. So after promotions 1, 2, 3 a rollback goes to 2 and the next one to 1 (never back to 3,
    the version just rolled back from). ``None`` when there is no earlier champion.
    """
    stack: list[str] = []
    for entry in entries:
        version = entry.to_version
        if entry.kind == MoveKind.ROLLBACK and version in stack:
            del stack[stack.index(version) + 1:]
        else:
            if version in stack:
                stack.remove(version)
            stack.append(version)
    return stack[-2] if len(stack) >= 2 else None


class ChampionService:
    """Promote, roll back and reconcile champions: the ledger first, the MLflow alias after.

    Args:
        registry: The model registry (versions, contracts, the alias).
        ledger: The champion ledger, normally :meth:`ModelRegistry.ledger` (the registry's own database).
        alias_timeout_seconds: Bound on each attempt to write the MLflow alias after a move.
        alias_retries: Further attempts after a failed alias write.
        conflict_timeout_seconds: How long a rollback to the previous champion keeps re-deciding when
            concurrent moves overtake it (each attempt is a compare-and-set on the head it decided on).
    """

    def __init__(self, registry: ModelRegistry, ledger: ChampionLedger, *, alias_timeout_seconds: float = 2.0,
                 alias_retries: int = 1, conflict_timeout_seconds: float = 30.0) -> None:
        for name, value in (("alias_timeout_seconds", alias_timeout_seconds),
                            ("conflict_timeout_seconds", conflict_timeout_seconds)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 3600:
                raise ConfigurationError(f"{name} must be a number of seconds in (0, 3600], got {value!r}")
        if isinstance(alias_retries, bool) or not isinstance(alias_retries, int) or not 0 <= alias_retries <= 10:
            raise ConfigurationError(f"alias_retries must be an integer from 0 to 10, got {alias_retries!r}")
        self.registry = registry
        self.ledger = ledger
        self.alias_timeout_seconds = float(alias_timeout_seconds)
        self.alias_retries = alias_retries
        self.conflict_timeout_seconds = float(conflict_timeout_seconds)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ml_platform_alias")
        self._has_mlflow_tables: bool | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ChampionService({self.registry!r}, {self.ledger!r})"

    def close(self) -> None:
        """Stop the alias writer threads (waiting for writes in flight)."""
        self._pool.shutdown(wait=True)

    # -- reads -----------------------------------------------------------------------------------

    def champion(self, model: str) -> str | None:
        """The champion of record: the ledger head's version (one ledger read), ``None`` if never promoted."""
        head = self.ledger.head(model)
        return None if head is None else head.to_version

    def history(self, model: str) -> tuple[LedgerEntry, ...]:
        """Every champion move of ``model``, oldest first."""
        return self.ledger.history(model)

    def verify(self, model: str, *, strict: bool = True) -> ChainReport:
        """Re-walk ``model``'s hash chain (raises ``LedgerTampered`` naming the first bad entry unless not strict)."""
        return self.ledger.verify(model, strict=strict)

    # -- promotion -------------------------------------------------------------------------------

    def promote(self, model: str, version: str | int, *, actor: str, approver: str | None, reason: str,
                report_ref: str | None = None, report_sha256: str | None = None, rationale_ref: str | None = None,
                rationale_sha256: str | None = None, override: bool = False,
                expected_head_seq: int | None = None) -> LedgerEntry:
        """Record ``version`` as the champion of ``model``, then mirror the alias.

        The version must exist, be ``ready`` and its contract must load and verify
        (:meth:`ModelRegistry.load_contract`). With ``expected_head_seq`` the move is a compare-and-set
        on that head (the promotion job passes the head its gates compared against); without it, on the
        head as found under the lock in the move's transaction.

        Raises:
            ModelNotFound / RegistryError / IntegrityError: the version is unknown or unusable; nothing moved.
            LedgerConflict: the head is no longer ``expected_head_seq``; nothing moved.
            LedgerMoveRefused: the version already is the champion; nothing moved.
        """
        number = check_version(version)
        check_model_name(model)
        self.registry.load_contract(model, number)
        crash_point("champion.contract_verified")
        details: dict[str, Any] = {"approver": approver, "report_ref": report_ref, "report_sha256": report_sha256,
                                   "rationale_ref": rationale_ref, "rationale_sha256": rationale_sha256,
                                   "override": override}
        if expected_head_seq is None:
            entry = self.ledger.move(model, kind=MoveKind.PROMOTION, to_version=number, actor=actor, reason=reason,
                                     **details)
        else:
            entry = self.ledger.append(model, expected_head_seq=expected_head_seq, kind=MoveKind.PROMOTION,
                                       to_version=number, actor=actor, reason=reason, **details)
        crash_point("champion.ledger_committed")
        self.mirror_alias(model, entry.to_version)
        return entry

    # -- rollback --------------------------------------------------------------------------------

    def rollback(self, model: str, *, to: str | int | None = None, reason: str, actor: str,
                 live_feature_graph_hash: str | None = None) -> LedgerEntry:
        """Move the champion back to the previous ledger champion (or ``to``, an earlier champion).

        One ledger transaction; the alias is written after, bounded (see the module docstring for what
        is read while MLflow is down).

        Raises:
            RollbackRefused: no champion to roll back from, no earlier champion, a target that was never
                champion, is deleted or not ready, or needs another feature graph than
                ``live_feature_graph_hash``; nothing moved.
            LedgerConflict: concurrent moves kept overtaking this one for ``conflict_timeout_seconds``.
        """
        check_model_name(model)
        target = None if to is None else check_version(to)
        check_text("reason", reason, max_length=10_000, multiline=True)  # bad input fails before any read
        check_text("actor", actor, max_length=256)
        if target is not None:
            # The target does not depend on the head: check it, then move on the head found under the lock
            # (the ledger refuses, in the move's transaction, a target already champion or never champion).
            self._check_target(model, target, live_feature_graph_hash)
            try:
                entry = self.ledger.move(model, kind=MoveKind.ROLLBACK, to_version=target, actor=actor, reason=reason)
            except LedgerMoveRefused as exc:
                raise RollbackRefused(str(exc)) from exc
            self.mirror_alias(model, entry.to_version)
            return entry
        deadline = time.monotonic() + self.conflict_timeout_seconds
        attempt = 0
        while True:
            attempt += 1
            entries = self.ledger.history(model)
            if not entries:
                raise RollbackRefused(f"model {model!r} has no champion of record to roll back from; "
                                      "promote a version first")
            head = entries[-1]
            chosen = previous_champion(entries)
            if chosen is None:
                raise RollbackRefused(
                    f"model {model!r} has no earlier champion to roll back to: version {head.to_version} is "
                    f"the only one left on its ledger (see `ml-platform history {model}`)")
            self._check_target(model, chosen, live_feature_graph_hash)
            try:
                entry = self.ledger.append(model, expected_head_seq=head.seq, kind=MoveKind.ROLLBACK,
                                           to_version=chosen, actor=actor, reason=reason)
                break
            except LedgerMoveRefused as exc:
                raise RollbackRefused(str(exc)) from exc
            except LedgerConflict:  # overtaken: re-read the chain and decide again
                if time.monotonic() >= deadline:
                    raise
                time.sleep(random.uniform(0, min(0.02, 0.001 * 2 ** min(attempt, 5))))
        self.mirror_alias(model, entry.to_version)
        return entry

    def _check_target(self, model: str, version: str, live_feature_graph_hash: str | None) -> None:
        try:
            facts = self.version_facts(model, version)
        except MLPlatformError as exc:
            raise RollbackRefused(f"cannot check version {version} of {model!r} before rolling back to it: {exc}; "
                                  "nothing moved") from exc
        if not facts.exists:
            raise RollbackRefused(
                f"version {version} of {model!r} was deleted from the registry; it cannot serve again. Roll back "
                f"to another earlier champion (`ml-platform history {model}`) or promote a new version")
        if facts.status != VersionStatus.READY:
            raise RollbackRefused(f"version {version} of {model!r} is not ready ({E.STATUS_TAG}={facts.status!r}); "
                                  "it cannot serve; nothing moved")
        if live_feature_graph_hash is not None and facts.feature_graph_hash != live_feature_graph_hash:
            raise RollbackRefused(
                f"version {version} of {model!r} needs the feature graph {facts.feature_graph_hash}, but the live "
                f"feature graph is {live_feature_graph_hash}: its contract does not match what serving computes. "
                "Deploy that graph first, or roll back to another champion; nothing moved")

    def version_facts(self, model: str, version: str) -> VersionFacts:
        """Existence, status and feature graph of a version: MLflow's rows in the ledger's database, else MLflow.

        Raises:
            LedgerError: the database failed. RegistryError: (no MLflow tables there) MLflow failed.
        """
        if self._mlflow_tables_here():
            with self.ledger.engine.connect() as conn:
                tags = mlflow_version_tags(conn, model, version, (E.STATUS_TAG, E.FEATURE_GRAPH_HASH_TAG))
            if tags is None:
                return VersionFacts(False, None, None, "database")
            return VersionFacts(True, tags.get(E.STATUS_TAG), tags.get(E.FEATURE_GRAPH_HASH_TAG), "database")
        try:
            found = self.registry.model_version(model, version)
        except ModelNotFound:
            return VersionFacts(False, None, None, "mlflow")
        return VersionFacts(True, found.tags.get(E.STATUS_TAG), found.tags.get(E.FEATURE_GRAPH_HASH_TAG), "mlflow")

    def _mlflow_tables_here(self) -> bool:
        if self._has_mlflow_tables is None:
            with self._lock, self.ledger.engine.connect() as conn:
                self._has_mlflow_tables = holds_mlflow_versions(conn)
        return self._has_mlflow_tables

    # -- the alias -------------------------------------------------------------------------------

    def mirror_alias(self, model: str, version: str) -> bool:
        """Point the MLflow ``champion`` alias at ``version``, bounded; ``False`` (logged) if it failed.

        Each attempt waits at most ``alias_timeout_seconds``. The alias is set to the ledger head read
        just before the write (normally ``version``), so a write that lands late after a timeout, or
        out of order among concurrent moves, does not pin an old champion; reconcile corrects whatever
        is left off the head.
        """
        last: BaseException | None = None
        for _attempt in range(1 + self.alias_retries):
            future = self._pool.submit(self._write_alias_of_head, model, version)
            try:
                future.result(timeout=self.alias_timeout_seconds)
                return True
            except FutureTimeout as exc:
                last = exc
            except Exception as exc:  # noqa: BLE001 - any failure is left for reconcile, never raised
                last = exc
        logger.warning("model %r: the ledger moved the champion to version %s but the MLflow %r alias could not be "
                       "written (%s: %s); it is left for `ml-platform registry reconcile`", model, version,
                       E.CHAMPION_ALIAS, type(last).__name__, last)
        return False

    def _write_alias_of_head(self, model: str, version: str) -> None:
        # The head as of now, not as of the move: a write that lands late (after a timeout) or out of order
        # under concurrent moves still mirrors the newest head; only a write racing a newer move can lag,
        # and that move's own mirror write follows it.
        head = self.ledger.head(model)
        crash_point("champion.alias_writing")
        self.registry.write_champion_alias(model, version if head is None else head.to_version)
        crash_point("champion.alias_written")

    # -- reconcile -------------------------------------------------------------------------------

    def reconcile(self, model: str | None = None, *, check_only: bool = False) -> ReconcileReport:
        """Find (and unless ``check_only`` repair) every alias that differs from its ledger head.

        Repaired: an alias off the head (a crash between the ledger write and the alias write, an alias
        moved by hand in the MLflow UI) is set back to the head. Only reported, never moved: a head
        pointing at a deleted or unusable version (a person decides where to roll back), a chain that
        does not verify, and an alias on a model the ledger has no champion for.
        """
        if model is not None:
            check_model_name(model)
            models: tuple[str, ...] = (model,)
        else:
            models = tuple(sorted(set(self.ledger.models()) | set(self.registry.models_with_champion_alias())))
        findings: list[ReconcileFinding] = []
        for name in models:
            findings.extend(self._reconcile_one(name, check_only))
        return ReconcileReport(models, tuple(findings), check_only)

    def _reconcile_one(self, model: str, check_only: bool) -> list[ReconcileFinding]:
        report = self.ledger.verify(model, strict=False)
        if not report.ok:
            return [ReconcileFinding(model, "chain_broken", report.describe(),
                                     "none: restore the ledger tables from a backup; the alias is left alone")]
        head = self.ledger.head(model)
        try:
            alias = self.registry.champion_alias(model)
        except ModelNotFound:
            alias = None
        if head is None:
            if alias is None:
                return []
            return [ReconcileFinding(model, "alias_without_ledger",
                                     f"the MLflow alias points at version {alias} but the ledger records no champion",
                                     f"none: promote it to record it (ml_platform promote {model} {alias})")]
        facts = self.version_facts(model, head.to_version)
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
                self.registry.write_champion_alias(model, head.to_version)
                found.append(ReconcileFinding(model, problem, detail, f"alias set to {head.to_version}", True))
        return found
