"""Named crash points: the one test seam that kills this process with SIGKILL at a named place.

Writes, garbage collection, registration and promotion call :func:`crash_point` at each step a
crash test must stop at. A point is armed by ``ML_PLATFORM_CRASH_POINT=name`` (or ``name#n``: its
n-th pass in the process), read when this module is imported, or by :func:`arm` in a test driver
that forks after importing. Disarmed (always, outside tests), a point costs one comparison.
"""

from __future__ import annotations

import os
import signal

__all__ = [
    "CRASH_POINT_ENV",
    "GC_POINTS",
    "PROMOTION_POINTS",
    "REGISTRATION_POINTS",
    "WRITE_POINTS",
    "arm",
    "crash_point",
]

CRASH_POINT_ENV = "ML_PLATFORM_CRASH_POINT"

#: A partition write of the pinned store (:meth:`~ml_platform.io.store.PinnedStore.write`), in order.
WRITE_POINTS = (
    "write:object:before-link", "write:object:after-link", "write:object-reused",
    "write:old-history:before-rename", "write:old-history:after-rename",
    "write:head:before-rename", "write:head:after-rename",
    "write:history:before-rename", "write:history:after-rename",
    "write:repair:before-rename", "write:repair:after-rename",  # a damaged object rewritten with its content
)

#: A garbage collection of the pinned store (:func:`~ml_platform.io.gc.collect`), in order.
GC_POINTS = ("gc:start", "gc:listed", "gc:delete-history", "gc:delete-object", "gc:delete-temporary", "gc:done")

#: A registration (:meth:`~ml_platform.registry.store.ModelRegistry.register`), in order.
REGISTRATION_POINTS = (
    "register.run_created",          # a RUNNING run with its tags, nothing else
    "register.params_logged",        # + params and metrics
    "register.artifacts_uploaded",   # + every artefact, the contract included
    "register.model_ready",          # + the registered model exists (created here on a first registration)
    "register.version_created",      # + the complete version (one MLflow call); the run still RUNNING
    "register.run_finished",         # + the run FINISHED: the registration is done
)

#: A promotion's record step, then the champion move and its alias mirror (a rollback passes the two
#: ``champion.alias_*`` points too), in order.
PROMOTION_POINTS = (
    "promotion.rationale_logged",   # the rationale the entry will link to, beside the version; no ledger entry
    "champion.contract_verified",   # + the challenger's contract loaded and verified; no ledger entry
    "champion.ledger_committed",    # + the ledger entry committed: the champion of record moved, the alias not
    "champion.anchor_written",      # + the head's anchor written on the registered model (in the writer thread)
    "champion.alias_writing",       # + the head read again, the MLflow alias write about to start
    "champion.alias_written",       # + the alias written (in the alias writer thread)
    "promotion.recorded",           # + the move returned to the record step; the rationale not published yet
    "promotion.rationale_published",  # + the rationale published for later copy checks: only Dagster's bookkeeping
)


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, nth = value.partition("#")
    return name, int(nth or 1)


_armed: tuple[str, int] | None = _parse(os.environ.get(CRASH_POINT_ENV))
_passes = 0


def arm(name: str | None, nth: int = 1) -> None:
    """Kill this process at the ``nth`` pass of :func:`crash_point` ``name`` from now (``None`` disarms)."""
    global _armed, _passes
    if nth < 1:
        raise ValueError(f"nth must be at least 1, got {nth}")
    _armed = None if name is None else (name, nth)
    _passes = 0


def crash_point(name: str) -> None:
    """``SIGKILL`` this process here if ``name`` is the armed point and this is its armed pass."""
    global _passes
    if _armed is None or _armed[0] != name:
        return
    _passes += 1
    if _passes >= _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)
