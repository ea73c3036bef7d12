"""Registrations killed with SIGKILL at a named point: the driver process of the crash-matrix test.

Run as ``python -m ml_platform_tests.registry.crash_driver TRACKING_URI ARTIFACT_ROOT``. It imports
everything once, then reads one trial per line on stdin (JSON ``{"name", "point", "before", "shift"}``)
and, for each, forks a child that registers ``before`` versions of model ``name`` normally, arms
``point`` and registers one more, which kills the child with ``SIGKILL`` at that point. The driver
reaps the child and answers one JSON line ``{"killed": bool, "exit": int}``. Forking after the
imports makes a trial cost a registration instead of a Python start (seconds of imports).

Points: the registry's own (:data:`~ml_platform.crashpoints.REGISTRATION_POINTS`), plus
points inside MLflow and the artefact store that the driver hooks in the child:

``mlflow.model_flushed`` / ``mlflow.version_flushed``
    after SQLAlchemy flushed the INSERT of the registered model / of the model version and its tags,
    before the transaction commits;
``artifacts.copy#K`` / ``artifacts.half#K``
    after the K-th artefact file was copied into the artefact store / half-way through copying it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from ml_platform import crashpoints
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.registry.conftest import CODE_SNAPSHOT, make_contract, make_model

MLFLOW_POINTS = ("mlflow.model_flushed", "mlflow.version_flushed")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _hook_mlflow_flush(point: str) -> None:
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersion, SqlRegisteredModel
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    kind = SqlRegisteredModel if point == "mlflow.model_flushed" else SqlModelVersion

    def after_flush(session: Session, flush_context: Any) -> None:
        if any(isinstance(obj, kind) for obj in session.new):
            _die()  # the INSERTs are sent, the COMMIT is not

    event.listen(Session, "after_flush", after_flush)


def _hook_artifact_copies(point: str, artifact_root: str) -> None:
    kind, _, count = point.partition("#")
    target = int(count)
    original = shutil.copy2
    seen = 0

    def copy2(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal seen
        if not os.path.abspath(str(dst)).startswith(artifact_root):
            return original(src, dst, *args, **kwargs)
        seen += 1
        if seen == target and kind == "artifacts.half":
            data = Path(src).read_bytes()
            with open(dst, "wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.fsync(handle.fileno())
            _die()
        result = original(src, dst, *args, **kwargs)
        if seen == target:
            _die()
        return result

    shutil.copy2 = copy2  # type: ignore[assignment]


def _register(registry: ModelRegistry, name: str, shift: float) -> None:
    model = make_model(shift)
    registry.register(model_name=name, model=model, contract=make_contract(name, model), params={"shift": shift},
                      metrics={"sharpe": 1.0}, code_snapshot=CODE_SNAPSHOT)


def _child(tracking_uri: str, artifact_root: str, trial: dict[str, Any]) -> None:
    registry = ModelRegistry(tracking_uri, artifact_location=artifact_root)
    for k in range(trial["before"]):
        _register(registry, trial["name"], trial["shift"] + 0.001 * (k + 1))
    point: str = trial["point"]
    if point in MLFLOW_POINTS:
        _hook_mlflow_flush(point)
    elif point.startswith("artifacts."):
        _hook_artifact_copies(point, os.path.abspath(artifact_root))
    else:
        crashpoints.arm(point)
    _register(registry, trial["name"], trial["shift"])


def main(tracking_uri: str, artifact_root: str) -> None:
    for line in sys.stdin:
        trial = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: never returns into the driver's loop, never flushes the driver's buffers
            code = 0
            try:
                _child(tracking_uri, artifact_root, trial)
            except BaseException as exc:  # noqa: BLE001 - reported to the test as an exit code
                os.write(2, f"crash driver child failed: {type(exc).__name__}: {exc}\n".encode())
                code = 3
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        sys.stdout.write(json.dumps({"killed": killed, "exit": exit_code}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
