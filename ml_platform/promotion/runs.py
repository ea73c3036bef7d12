"""What a finished ``promote_model`` run says: :func:`run_refusal`, the refused gate of a failed run.

``ml-platform promote`` and a project's own scripts (the example's demo) run the promotion job in
process and read its result here, so both name the refusing gate the same way.
"""

from __future__ import annotations

import re
from typing import Any

from ml_platform.errors import GateFailed, MLPlatformError
from ml_platform.metadata import GATE

__all__ = ["run_refusal"]

_CODE_PREFIX = re.compile(r"^\[[A-Z][A-Z0-9_]*\] ")


def run_refusal(result: Any) -> MLPlatformError | None:
    """Why a ``promote_model`` run (a Dagster ``ExecuteInProcessResult``) moved nothing; ``None`` if it succeeded.

    Returns:
        A :class:`~ml_platform.errors.GateFailed` for the first step failure that names a gate
        (metadata ``ml_platform/gate``): its message names the run and the gate, and it carries
        ``.gate``, ``.run_id`` and ``.detail`` (the gate's own message, without its error code).
        Otherwise (a failure no gate reported) an :class:`~ml_platform.errors.MLPlatformError`
        naming the run, with ``.gate`` ``None``.
    """
    if result.success:
        return None
    run_id = result.run_id
    for event in result.all_events:
        data = event.step_failure_data.user_failure_data if event.is_step_failure and event.step_failure_data else None
        if data is None or GATE not in (data.metadata or {}):
            continue
        raw = data.metadata[GATE]
        gate = str(getattr(raw, "value", raw))
        detail = _CODE_PREFIX.sub("", data.description or "")
        error: MLPlatformError = GateFailed(f"run {run_id} refused at gate '{gate}': {detail}; nothing moved")
        error.gate, error.run_id, error.detail = gate, run_id, detail  # type: ignore[attr-defined]
        return error
    failed = next((e for e in result.all_events if e.is_step_failure), None)
    where = f" at step {failed.step_key}" if failed is not None else ""
    error = MLPlatformError(f"the promotion run {run_id} failed{where}; nothing moved. See it in the Dagster UI")
    cause = failed.step_failure_data.error if failed is not None and failed.step_failure_data else None
    while cause is not None and cause.cause is not None:  # Dagster wraps the op's own exception
        cause = cause.cause
    detail = cause.message.strip() if cause is not None else str(error)
    error.gate, error.run_id, error.detail = None, run_id, detail  # type: ignore[attr-defined]
    return error
