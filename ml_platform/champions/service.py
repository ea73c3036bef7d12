"""Champion moves as one service: promote, roll back, reconcile; the ledger decides, the alias follows.

A move is checks, then ONE ledger transaction (compare-and-set on the head), then the MLflow alias
write, bounded and retried; a failed alias write is left for reconcile and never undoes the entry.
Rollback answers its checks from the ledger and MLflow's own rows (:mod:`ml_platform.champions.facts`),
so it succeeds while the MLflow client is down. See ``docs/architecture.md``.
"""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Self

from ml_platform.champions.anchor import format_anchor, head_report
from ml_platform.champions.catalog import read_anchor
from ml_platform.champions.chain import ChainProblem, ChainReport
from ml_platform.champions.entry import LedgerEntry, MoveKind, check_text
from ml_platform.champions.facts import VersionFacts, VersionFactsReader
from ml_platform.champions.ledger import ChampionLedger
from ml_platform.champions.location import open_ledger
from ml_platform.champions.reconcile import ReconcileReport, reconcile
from ml_platform.crashpoints import crash_point
from ml_platform.errors import (
    ConfigurationError,
    LedgerConflict,
    LedgerMoveRefused,
    LedgerTampered,
    MLPlatformError,
    RollbackRefused,
)
from ml_platform.registry.entities import (
    CHAMPION_ALIAS,
    LEDGER_HEAD_TAG,
    STATUS_TAG,
    VersionStatus,
    check_model_name,
    check_version,
)
from ml_platform.registry.store import ModelRegistry

__all__ = ["ChampionService", "previous_champion"]

logger = logging.getLogger(__name__)

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
        ledger: The champion ledger, normally the registry's own database (:meth:`ChampionService.open`).
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
        self._facts = VersionFactsReader(ledger, registry)

    @classmethod
    def open(cls, registry: ModelRegistry, *, production: bool | None = None, read_only: bool = False,
             create: bool = True, **options: Any) -> ChampionService:
        """The service on ``registry`` and its own ledger (:func:`~ml_platform.champions.location.open_ledger`).

        ``read_only`` and ``create`` are the ledger's (:class:`~ml_platform.champions.ledger.ChampionLedger`).

        Raises:
            ConfigurationError: no ledger can be found for the registry (an MLflow server, no ledger URL).
        """
        return cls(registry, open_ledger(registry, production=production, read_only=read_only, create=create),
                   **options)

    def __repr__(self) -> str:
        return f"ChampionService({self.registry!r}, {self.ledger!r})"

    def close(self) -> None:
        """Stop the alias writer threads (waiting for writes in flight)."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reads -----------------------------------------------------------------------------------

    def champion(self, model: str) -> str | None:
        """The champion of record: the ledger head's version (one ledger read), ``None`` if never promoted."""
        head = self.ledger.head(model)
        return None if head is None else head.to_version

    def history(self, model: str) -> tuple[LedgerEntry, ...]:
        """Every champion move of ``model``, oldest first."""
        return self.ledger.history(model)

    def verify(self, model: str, *, strict: bool = True) -> ChainReport:
        """Re-walk ``model``'s hash chain and cross-check its head with its anchor (one MLflow read).

        Raises:
            LedgerTampered: (``strict``) naming the first bad entry, a cut tail or a moved-back head.
        """
        return self.ledger.verify(model, strict=strict, anchor=read_anchor(self.registry, model))

    def check_anchor(self, model: str) -> ChainReport:
        """The cheap check: the head (one ledger read) against its anchor (one MLflow read), no re-walk.

        Finds a cut tail, a moved-back head and a head row that disagrees with its entry; an entry
        altered below the head needs :meth:`verify`. Never raises for what it finds: see the report.
        """
        reading = read_anchor(self.registry, model)
        try:
            head = self.ledger.head(model)
        except LedgerTampered as exc:
            seq = exc.seq or 0
            return ChainReport(model, 0, seq, None, ChainProblem(seq, exc.problem or "head", str(exc.args[0])),
                               anchor=reading.value, walked=False)
        return head_report(model, head, reading)

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
            raise RollbackRefused(f"version {version} of {model!r} is not ready ({STATUS_TAG}={facts.status!r}); "
                                  "it cannot serve; nothing moved")
        if live_feature_graph_hash is not None and facts.feature_graph_hash != live_feature_graph_hash:
            raise RollbackRefused(
                f"version {version} of {model!r} needs the feature graph {facts.feature_graph_hash}, but the live "
                f"feature graph is {live_feature_graph_hash}: its contract does not match what serving computes. "
                "Deploy that graph first, or roll back to another champion; nothing moved")

    def version_facts(self, model: str, version: str) -> VersionFacts:
        """Existence, status and feature graph of a version (see :mod:`ml_platform.champions.facts`)."""
        return self._facts.read(model, version)

    # -- the alias -------------------------------------------------------------------------------

    def mirror_alias(self, model: str, version: str) -> bool:
        """Anchor the head on the registered model, point the ``champion`` alias at ``version``; bounded.

        ``False`` (logged) if either write failed: reconcile repairs both.

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
                       CHAMPION_ALIAS, type(last).__name__, last)
        return False

    def _write_alias_of_head(self, model: str, version: str) -> None:
        # The head as of now, not as of the move: a write that lands late (after a timeout) or out of order
        # under concurrent moves still mirrors the newest head; only a write racing a newer move can lag,
        # and that move's own mirror write follows it.
        head = self.ledger.head(model)
        if head is not None:  # the anchor first: it is what a cut tail is found by
            self.registry.write_model_tag(model, LEDGER_HEAD_TAG, format_anchor(head))
            crash_point("champion.anchor_written")
        crash_point("champion.alias_writing")
        self.registry.write_champion_alias(model, version if head is None else head.to_version)
        crash_point("champion.alias_written")

    # -- reconcile -------------------------------------------------------------------------------

    # -- reconcile -------------------------------------------------------------------------------

    def reconcile(self, model: str | None = None, *, check_only: bool = False) -> ReconcileReport:
        """Find (and unless ``check_only`` repair) every alias that differs from its ledger head.

        See :mod:`ml_platform.champions.reconcile`.
        """
        return reconcile(self.ledger, self.registry, self._facts, model, check_only=check_only)
