"""Every reach into Dagster's or MLflow's internals, in one module, each pinned by a test.

Everywhere else the library uses public APIs only. What is here depends on how the pinned releases
work inside; ``ml_platform_tests/test_compat.py`` checks each assumption and fails naming it when an
upgrade changes what it relies on. Dagster is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy import inspect as inspect_database
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError
from sqlalchemy.pool import Pool

from ml_platform.errors import ConfigurationError

__all__ = [
    "DAGSTER_WORKSPACE_REFRESH_SECONDS",
    "MLFLOW_DB_LOGGER",
    "MLFLOW_DELETED_STAGE",
    "MLFLOW_VERSION_TABLES",
    "bounded_sqlite_waits",
    "dagster_record_unreadable",
    "fail_abandoned_run",
    "holds_mlflow_versions",
    "install_sqlite_wait_bounds",
    "mlflow_version_tags",
    "run_dagster_daemon",
    "set_backfill_tick",
    "set_workspace_refresh",
]

# -- MLflow: how long its SQL store waits on a busy SQLite file ---------------------------------------
# MLflow 3 runs ``PRAGMA busy_timeout = 20000`` at the start of every session
# (mlflow.store.db.utils._get_managed_session_maker) and offers no setting for it; the registry bounds
# the wait itself, for its own calls only, by rewriting that statement while a call runs.

#: The logger MLflow's SQL store writes a failed session to, with a full traceback.
MLFLOW_DB_LOGGER = "mlflow.store.db.utils"

_BUSY_PRAGMA = re.compile(r"^\s*PRAGMA\s+busy_timeout\s*=\s*\d+\s*;?\s*$", re.IGNORECASE)
_BOUND: contextvars.ContextVar[int | None] = contextvars.ContextVar("ml_platform_sqlite_bound", default=None)
_installed = False
_install_lock = threading.Lock()


@contextmanager
def bounded_sqlite_waits(busy_timeout_seconds: float) -> Iterator[None]:
    """Inside, SQLite waits of MLflow's store are bounded and its logged database tracebacks muted."""
    token = _BOUND.set(max(0, int(busy_timeout_seconds * 1000)))
    try:
        yield
    finally:
        _BOUND.reset(token)


def _on_checkout(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    bound = _BOUND.get()
    if bound is not None and isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(f"PRAGMA busy_timeout = {bound}")


def _before_cursor_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                           executemany: bool) -> tuple[str, Any]:
    bound = _BOUND.get()
    if bound is not None and conn.dialect.name == "sqlite" and _BUSY_PRAGMA.match(statement):
        statement = f"PRAGMA busy_timeout = {bound}"
    return statement, parameters


class _MuteHandledFailures(logging.Filter):
    """Drop MLflow's logged database failures inside a bounded call: the registry raises them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _BOUND.get() is None or (record.levelno < logging.WARNING and not record.exc_info)


def install_sqlite_wait_bounds() -> None:
    """Install the listeners and the log filter once per process (idempotent, thread-safe).

    They act only inside :func:`bounded_sqlite_waits`: any other user of the same engines (a plain
    ``MlflowClient``, Dagster's SQLite storage) is left as MLflow or Dagster configured it.
    """
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        event.listen(Pool, "checkout", _on_checkout)
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute, retval=True)
        logging.getLogger(MLFLOW_DB_LOGGER).addFilter(_MuteHandledFailures())
        _installed = True


# -- MLflow: its model registry's rows, read where the ledger's database holds them ----------------------

#: MLflow's SQL store keeps a deleted version's row, with this stage.
MLFLOW_DELETED_STAGE = "Deleted_Internal"
#: The tables of MLflow's SQL store that hold model versions and their tags.
MLFLOW_VERSION_TABLES = ("model_versions", "model_version_tags")

def holds_mlflow_versions(conn: Connection) -> bool:
    """Whether the database behind ``conn`` holds MLflow's model version tables."""
    inspector = inspect_database(conn)
    return all(inspector.has_table(table) for table in MLFLOW_VERSION_TABLES)


def mlflow_version_tags(conn: Connection, model: str, version: str | int,
                        keys: Sequence[str]) -> Mapping[str, str] | None:
    """The tags ``keys`` of a model version read from MLflow's rows; ``None``: no such version, or deleted."""
    rows = conn.execute(
        text("SELECT v.current_stage AS stage, t.key AS key, t.value AS value FROM model_versions v "
             "LEFT JOIN model_version_tags t ON t.name = v.name AND t.version = v.version "
             f"AND t.key IN ({', '.join(f':k{i}' for i in range(len(keys)))}) "
             "WHERE v.name = :name AND v.version = :version"),
        {"name": model, "version": int(version), **{f"k{i}": key for i, key in enumerate(keys)}},
    ).mappings().all()
    if not rows or rows[0]["stage"] == MLFLOW_DELETED_STAGE:
        return None
    return {row["key"]: row["value"] for row in rows if row["key"] is not None}


# -- Dagster: the daemon's loop intervals --------------------------------------------------------------
# Dagster's backfill daemon evaluates asset backfills every DEFAULT_DAEMON_INTERVAL_SECONDS (30 s) and
# re-reads its workspace every RELOAD_WORKSPACE_INTERVAL (60 s), both module constants of
# dagster._daemon.controller that dagster.yaml cannot set.

#: How often Dagster's daemon re-reads its workspace files, unless shortened.
DAGSTER_WORKSPACE_REFRESH_SECONDS = 60.0
_TICK = "DEFAULT_DAEMON_INTERVAL_SECONDS"
_REFRESH = "RELOAD_WORKSPACE_INTERVAL"


def set_backfill_tick(seconds: float) -> None:
    """Set the backfill daemon's tick of this process's Dagster (before its daemon controller starts).

    Raises:
        ConfigurationError: ``seconds`` is not positive, or the installed Dagster no longer reads the
            interval where this sets it.
    """
    if not seconds > 0:
        raise ConfigurationError(f"backfill tick {seconds!r} s: give a positive number of seconds")
    from dagster._daemon import backfill, controller

    try:
        loop_source = inspect.getsource(backfill.execute_backfill_iteration_loop)
    except (OSError, TypeError):  # an install without sources: the loop cannot be checked
        loop_source = ""
    if not hasattr(controller, _TICK) or _TICK not in loop_source:
        raise ConfigurationError(f"this Dagster's backfill daemon does not read dagster._daemon.controller.{_TICK}; "
                                 "the reproduction cannot shorten its tick (see ml_platform.compat)")
    setattr(controller, _TICK, float(seconds))


def set_workspace_refresh(seconds: float) -> None:
    """Set how often this process's Dagster daemon re-reads its workspace files (before the daemon starts).

    Raises:
        ConfigurationError: ``seconds`` is not positive, or the installed Dagster no longer reads the setting.
    """
    if not seconds > 0:
        raise ConfigurationError(f"workspace refresh {seconds!r} s: give a positive number of seconds")
    from dagster._daemon import controller

    if not hasattr(controller, _REFRESH):
        raise ConfigurationError(f"this Dagster's daemon has no dagster._daemon.controller.{_REFRESH}; the "
                                 "workspace refresh cannot be shortened")
    setattr(controller, _REFRESH, float(seconds))


def run_dagster_daemon(args: Sequence[str]) -> None:
    """``dagster-daemon ARGS`` in this process, after the intervals above were set."""
    from dagster._daemon.cli import cli

    cli.main(args=list(args), prog_name="dagster-daemon", obj={})


def dagster_record_unreadable(exc: BaseException) -> bool:
    """Whether ``exc``, raised reading a Dagster instance's storage, says a stored record cannot be read back.

    A row cut short raises a bare ``json.JSONDecodeError`` (a ValueError), a row of an unknown shape
    ``dagster_shared.serdes.errors.DeserializationError``, a damaged SQLite file SQLAlchemy's ``DatabaseError``.
    """
    kind = type(exc)
    return isinstance(exc, ValueError | DatabaseError) or (
        kind.__name__ == "DeserializationError" and kind.__module__.startswith("dagster_shared.serdes"))


def fail_abandoned_run(instance: Any, run: Any, message: str) -> None:
    """Mark ``run`` failed from outside its (dead) process, as Dagster's run monitoring does: ``message`` as an
    engine event, then the run failure. ``report_engine_event`` and ``report_run_failed`` are not ``@public``."""
    instance.report_engine_event(message, run)
    instance.report_run_failed(run, message)
