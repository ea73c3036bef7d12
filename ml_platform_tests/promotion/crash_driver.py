"""Promotions killed with SIGKILL: the driver process of the promotion crash matrix.

Run as ``python -m ml_platform_tests.promotion.crash_driver ROOT``, where ``ROOT`` holds a project made by
:func:`~ml_platform_tests.promotion.conftest.make_project` (its ``.ml_platform`` home: MLflow's SQLite file
with the champion ledger, the artefacts, the store) and a Dagster instance in ``ROOT/dagster``. It imports
everything once, then reads one trial per line on stdin (JSON ``{"version", "tail", "point", "delay"}``)
and, for each, forks a child that opens the project and the instance and runs the real ``promote_model``
job in process for ``version`` (the rationale template of the conftest with ``tail``). The child dies with
``SIGKILL`` at ``point`` if one is given; with ``delay`` (seconds after the fork) the driver kills it
itself; with neither it runs to the end. The driver reaps the child and answers one JSON line
``{"killed", "exit", "seconds", "run", "hung"}``: ``run`` is ``null`` for a killed child, else what the
job did (``{"success": bool, "gate": str | None, "message": str}``); ``hung``: a child that was neither
to be killed nor done after :data:`HANG_SECONDS` was killed. Forking after the imports makes a trial
cost a promotion instead of a Python start. The children's stderr (each run's Dagster console log) goes
to :data:`CHILD_LOG` beside ``ROOT``.

Points: the library's own (:data:`~ml_platform.crashpoints.PROMOTION_POINTS`, armed with
:func:`~ml_platform.crashpoints.arm`), plus points the child hooks into code it does not own:

``report.logged``
    the report's JSON/HTML/PNG uploaded beside the challenger (the ``promotion_report`` op's last write);
``op.<name>``
    the steps before ``<name>`` passed and handed on, ``<name>`` (a step function of
    :mod:`ml_platform.promotion.service`: ``rationale_gate`` ... ``record``) not started;
``ledger.inserted``
    inside the ledger's transaction: the entry's INSERT sent, the head not moved, nothing committed;
``ledger.commit``
    inside the ledger's transaction: the entry and the head written, the COMMIT about to be sent;
``mlflow.alias_flushed``
    inside MLflow's transaction of the alias write: the alias row flushed, not committed.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ml_platform import crashpoints
from ml_platform.environment import capture_environment
from ml_platform.promotion import service as promotion_service
from ml_platform.promotion.job import GATE_METADATA
from ml_platform.registry import run_files
from ml_platform_tests.promotion.conftest import build_graph, make_project

#: The hooked points of the matrix: ``op.<name>`` works for every step of the service the job calls; the
#: states before the gates after the report differ by nothing, so the first and the last stand for them.
HOOKED_POINTS = ("report.logged", "op.rationale_gate", "op.record", "ledger.inserted", "ledger.commit",
                 "mlflow.alias_flushed")
_LEDGER_INSERT = "INSERT INTO ML_PLATFORM_LEDGER_ENTRIES"
#: The children's stderr (each run's Dagster console log), beside ``ROOT``.
CHILD_LOG = "crash_children.log"
#: A child still running this long after its fork is killed and reported ``hung`` (a promotion takes ~1 s).
HANG_SECONDS = 120.0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


#: What every child would import on its first promotion (a Dagster instance on SQLite, MLflow's SQL stores,
#: the report's plot): imported once, before the first fork. Only imports: the driver never runs a polars
#: operation or opens a database before forking (a child cannot use a thread pool its parent started).
WARM_MODULES = (
    "alembic.command", "alembic.config", "fsspec", "upath", "rich", "structlog", "PIL.PngImagePlugin",
    "matplotlib.figure", "matplotlib.backends.backend_agg",
    "mlflow.store.model_registry.sqlalchemy_store", "mlflow.store.tracking.sqlalchemy_store",
    "dagster._core.instance.factory", "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage", "dagster._core.storage.fs_io_manager",
    "dagster._core.execution.execute_in_process", "dagster._daemon.controller", "dagster._scheduler.scheduler",
    "dagster._core.secrets", "pyarrow.dataset", "upath.implementations.local", "dotenv", "watchdog.observers.polling",
    "mlflow.utils.search_logged_model_utils", "PIL.JpegImagePlugin",
)


def _warm_up() -> None:
    """Import :data:`WARM_MODULES` and capture the environment (cached per process, as the contract gate reads it)."""
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # another version of a dependency: the child imports what it needs itself
            continue
    capture_environment()
    capture_environment(build_graph().project_root)


def _hook(point: str) -> None:
    if point == "report.logged":
        original = run_files.log_files

        def log_files(registry: Any, run_id: str, folder: str, files: Any) -> None:
            original(registry, run_id, folder, files)
            if "report.json" in files:
                _die()

        run_files.log_files = log_files  # type: ignore[assignment]
    elif point.startswith("op."):
        name = point.removeprefix("op.")

        def at_entry(*args: Any, **kwargs: Any) -> Any:
            _die()

        setattr(promotion_service, name, at_entry)
    elif point in ("ledger.inserted", "ledger.commit"):
        def after_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith(_LEDGER_INSERT):
                if point == "ledger.inserted":
                    _die()
                conn.info["ml_platform_crash_ledger_insert"] = True

        def before_commit(conn: Any) -> None:
            if conn.info.get("ml_platform_crash_ledger_insert"):
                _die()

        event.listen(Engine, "after_cursor_execute", after_execute)
        event.listen(Engine, "commit", before_commit)
    elif point == "mlflow.alias_flushed":
        from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelAlias
        from sqlalchemy.orm import Session

        def after_flush(session: Session, flush_context: Any) -> None:
            if any(isinstance(obj, SqlRegisteredModelAlias) for obj in (*session.new, *session.dirty)):
                _die()  # the alias row is sent, the COMMIT is not

        event.listen(Session, "after_flush", after_flush)
    else:
        crashpoints.arm(point)


def run_outcome(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """``{"success", "gate", "message"}`` of a run of the job (the failed gate's name and message, if any)."""
    if result.success:
        return {"success": True, "gate": None, "message": ""}
    for ev in result.all_events:
        if ev.is_step_failure:
            data = ev.step_failure_data.user_failure_data
            if data is None:
                return {"success": False, "gate": None, "message": str(ev.step_failure_data.error)}
            gate = data.metadata.get(GATE_METADATA)
            return {"success": False, "gate": None if gate is None else str(gate.value),
                    "message": data.description or ""}
    return {"success": False, "gate": None, "message": "the run failed without a step failure"}


def _child(root: Path, trial: dict[str, Any], out: int) -> None:
    point = trial.get("point")
    if point:
        _hook(point)
    instance = dg.DagsterInstance.local_temp(tempdir=str(root / "dagster"))
    project = make_project(root, instance, existing=True)
    result = project.run(trial["version"], tail=trial.get("tail", ""))
    outcome = run_outcome(result)
    outcome["message"] = outcome["message"][:4000]  # well inside a pipe's buffer: the driver reads after the exit
    os.write(out, json.dumps(outcome).encode())


def _reap(pid: int, delay: float | None) -> tuple[int, bool]:
    """The child's wait status, and whether it hung (still running :data:`HANG_SECONDS` after the fork)."""
    deadline = time.monotonic() + (HANG_SECONDS if delay is None else delay)
    tick = 0.02 if delay is None else 0.002  # a kill at a random time lands within 2 ms of it
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1], delay is None
        time.sleep(tick)


def main(root: str) -> None:
    _warm_up()
    log = os.open(Path(root).parent / CHILD_LOG, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for line in sys.stdin:
        trial = json.loads(line)
        read, write = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the driver's loop, never flushes the driver's buffers
            os.close(read)
            os.dup2(log, 2)  # Dagster's console log of the run, kept beside the work folder
            code = 0
            try:
                _child(Path(root), trial, write)
            except BaseException as exc:  # noqa: BLE001 - reported to the test as an exit code
                os.write(2, f"promotion crash driver child failed: {type(exc).__name__}: {exc}\n".encode())
                code = 3
            os._exit(code)
        os.close(write)
        status, hung = _reap(pid, trial.get("delay"))
        seconds = time.monotonic() - started
        with os.fdopen(read, "rb") as pipe:
            written = pipe.read()
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        run = json.loads(written) if written and not killed else None
        sys.stdout.write(json.dumps({"killed": killed, "exit": exit_code, "seconds": round(seconds, 3),
                                     "run": run, "hung": hung}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
