"""The registry crash matrix's workload, run in a child of :mod:`ml_platform_tests.crash.driver`.

Driver arguments: ``TRACKING_URI ARTIFACT_ROOT``. A trial ``{"name", "before", "shift"}`` registers
``before`` versions of model ``name`` normally, arms its point and registers one more.

Points: the registry's own (:data:`~ml_platform.crashpoints.REGISTRATION_POINTS`), plus points inside
MLflow and the artefact store that :func:`hook` installs:

``mlflow.model_flushed`` / ``mlflow.version_flushed``
    after SQLAlchemy flushed the INSERT of the registered model / of the model version and its tags,
    before the transaction commits;
``artifacts.copy#K`` / ``artifacts.half#K``
    after the K-th artefact file was copied into the artefact store / half-way through copying it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.crash.driver import die
from ml_platform_tests.registry.conftest import CODE_SNAPSHOT, make_contract, make_model

HOOKED_POINTS = ("mlflow.model_flushed", "mlflow.version_flushed", "artifacts.copy", "artifacts.half")


def hook(args: list[str], point: str, nth: int) -> bool:
    if point in ("mlflow.model_flushed", "mlflow.version_flushed"):
        _hook_mlflow_flush(point)
    elif point in ("artifacts.copy", "artifacts.half"):
        _hook_artifact_copies(point, nth, os.path.abspath(args[1]))
    else:
        return False
    return True


def _hook_mlflow_flush(point: str) -> None:
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion, SqlRegisteredModel
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    kind = SqlRegisteredModel if point == "mlflow.model_flushed" else SqlModelVersion

    def after_flush(session: Session, flush_context: Any) -> None:
        if any(isinstance(obj, kind) for obj in session.new):
            die()  # the INSERTs are sent, the COMMIT is not

    event.listen(Session, "after_flush", after_flush)


def _hook_artifact_copies(point: str, target: int, artifact_root: str) -> None:
    original = shutil.copy2
    seen = 0

    def copy2(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        if not os.path.abspath(str(dst)).startswith(artifact_root):
            return original(src, dst, *args, **kwargs)
        seen += 1
        if seen == target and point == "artifacts.half":
            data = Path(src).read_bytes()
            with open(dst, "wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.fsync(handle.fileno())
            die()
        result = original(src, dst, *args, **kwargs)
        if seen == target:
            die()
        return result

    shutil.copy2 = copy2  # type: ignore[assignment]


def _register(registry: ModelRegistry, name: str, shift: float) -> None:
    model = make_model(shift)
    registry.register(model_name=name, model=model, contract=make_contract(name, model), params={"shift": shift},
                      metrics={"sharpe": 1.0}, code_snapshot=CODE_SNAPSHOT)


def run(args: list[str], trial: dict[str, Any], arm: Callable[[], None]) -> None:
    tracking_uri, artifact_root = args
    registry = ModelRegistry(tracking_uri, artifact_location=artifact_root)
    for k in range(trial["before"]):
        _register(registry, trial["name"], trial["shift"] + 0.001 * (k + 1))
    arm()
    _register(registry, trial["name"], trial["shift"])
