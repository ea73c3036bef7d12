"""The promotion crash matrix's workload, run in a child of :mod:`ml_platform_tests.crash.driver`.

Driver argument: ``ROOT``, which holds a project made by :func:`~ml_platform_tests.promotion.conftest.make_project`
(its ``.ml_platform`` home: MLflow's SQLite file with the champion ledger, the artefacts, the store) and a
Dagster instance in ``ROOT/dagster``. :func:`prepare` imports what every child would import on its first
promotion. A trial ``{"version", "tail"}`` arms its point, opens the project and the instance and runs the
real ``promote_model`` job in process for ``version`` (the rationale template of the conftest with ``tail``);
it returns what the job did: ``{"success": bool, "gate": str | None, "message": str}``.

Points: the library's own (:data:`~ml_platform.crashpoints.PROMOTION_POINTS`), plus points :func:`hook`
installs in code the tests do not own:

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from sqlalchemy import event
from sqlalchemy.engine import Engine

from ml_platform.environment import capture_environment
from ml_platform.promotion import service as promotion_service
from ml_platform.promotion.job import GATE_METADATA
from ml_platform.registry import run_files
from ml_platform_tests.crash.driver import die
from ml_platform_tests.promotion.conftest import build_graph, make_project

#: The hooked points of the matrix: ``op.<name>`` works for every step of the service the job calls; the
#: states before the gates after the report differ by nothing, so the first and the last stand for them.
HOOKED_POINTS = ("report.logged", "op.rationale_gate", "op.record", "ledger.inserted", "ledger.commit",
                 "mlflow.alias_flushed")
_LEDGER_INSERT = "INSERT INTO ML_PLATFORM_LEDGER_ENTRIES"

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


def prepare(args: list[str]) -> None:
    """Import :data:`WARM_MODULES` and capture the environment (cached per process, as the contract gate reads it)."""
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # another version of a dependency: the child imports what it needs itself
            continue
    capture_environment()
    capture_environment(build_graph().project_root)


def hook(args: list[str], point: str, nth: int) -> bool:
    if point not in HOOKED_POINTS:
        return False
    if point == "report.logged":
        original = run_files.log_files

        def log_files(registry: Any, run_id: str, folder: str, files: Any) -> None:
            original(registry, run_id, folder, files)
            if "report.json" in files:
                die()

        run_files.log_files = log_files  # type: ignore[assignment]
    elif point.startswith("op."):
        name = point.removeprefix("op.")

        def at_entry(*args: Any, **kwargs: Any) -> Any:
            die()

        setattr(promotion_service, name, at_entry)
    elif point in ("ledger.inserted", "ledger.commit"):
        def after_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith(_LEDGER_INSERT):
                if point == "ledger.inserted":
                    die()
                conn.info["ml_platform_crash_ledger_insert"] = True

        def before_commit(conn: Any) -> None:
            if conn.info.get("ml_platform_crash_ledger_insert"):
                die()

        event.listen(Engine, "after_cursor_execute", after_execute)
        event.listen(Engine, "commit", before_commit)
    elif point == "mlflow.alias_flushed":
        from mlflow.store.model_registry.dbmodels.models import SqlRegisteredModelAlias
        from sqlalchemy.orm import Session

        def after_flush(session: Session, flush_context: Any) -> None:
            if any(isinstance(obj, SqlRegisteredModelAlias) for obj in (*session.new, *session.dirty)):
                die()  # the alias row is sent, the COMMIT is not

        event.listen(Session, "after_flush", after_flush)
    return True


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


def run(args: list[str], trial: dict[str, Any], arm: Callable[[], None]) -> dict[str, Any]:
    arm()
    root = Path(args[0])
    instance = dg.DagsterInstance.local_temp(tempdir=str(root / "dagster"))
    project = make_project(root, instance, existing=True)
    return run_outcome(project.run(trial["version"], tail=trial.get("tail", "")))
