"""Named crash points of registration and promotion: a test seam that costs one comparison with ``None``.

The crash-matrix tests kill a registering process with ``SIGKILL`` at each point and check that
every MLflow client then sees either no new version or a complete one, and that
``ml-platform registry repair`` leaves a consistent registry; they kill a promoting process at each
of :data:`PROMOTION_POINTS` and check that the ledger verifies with the incumbent or the challenger
as its head, and that ``ml-platform registry reconcile`` repairs whatever the alias lags behind. A
point is armed by the environment variable :data:`CRASH_POINT_ENV`, read once when this module is
imported, or by :func:`arm` (for a test driver that forks after importing). Nothing is ever armed in
normal use.
"""

from __future__ import annotations

import os
import signal

__all__ = ["CRASH_POINT_ENV", "PROMOTION_POINTS", "REGISTRATION_POINTS", "arm", "crash_point"]

CRASH_POINT_ENV = "ML_PLATFORM_CRASH_POINT"

#: The points :meth:`~ml_platform.registry.store.ModelRegistry.register` passes, in order.
REGISTRATION_POINTS = (
    "register.run_created",          # a RUNNING run with its tags, nothing else
    "register.params_logged",        # + params and metrics
    "register.artifacts_uploaded",   # + every artefact, the contract included
    "register.model_ready",          # + the registered model exists (created here on a first registration)
    "register.version_created",      # + the complete version (one MLflow call); the run still RUNNING
    "register.run_finished",         # + the run FINISHED: the registration is done
)

#: The points a promotion passes, in order: :func:`~ml_platform.promotion.service.record`, then
#: :meth:`~ml_platform.registry.champions.ChampionService.promote` and its alias mirror (a rollback passes
#: the two ``champion.alias_*`` points too).
PROMOTION_POINTS = (
    "promotion.rationale_logged",   # the rationale the entry will link to, beside the version; no ledger entry
    "champion.contract_verified",   # + the challenger's contract loaded and verified; no ledger entry
    "champion.ledger_committed",    # + the ledger entry committed: the champion of record moved, the alias not
    "champion.alias_writing",       # + the head read again, the MLflow alias write about to start
    "champion.alias_written",       # + the alias written (in the alias writer thread)
    "promotion.recorded",           # + the move returned to the record step; the rationale not published yet
    "promotion.rationale_published",  # + the rationale published for later copy checks: only Dagster's bookkeeping
)

_armed: str | None = os.environ.get(CRASH_POINT_ENV) or None


def arm(name: str | None) -> None:
    """Kill this process at the next :func:`crash_point` called ``name`` (``None`` disarms). Tests only."""
    global _armed
    _armed = name


def crash_point(name: str) -> None:
    """``SIGKILL`` this process here if ``name`` is the armed point; otherwise do nothing."""
    if _armed is not None and _armed == name:
        os.kill(os.getpid(), signal.SIGKILL)
