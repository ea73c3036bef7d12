"""What the database drivers were really handed: seen through SQLAlchemy's events, never by a clock.

A bounded wait on a database is a setting the driver applies (SQLite's ``PRAGMA busy_timeout``, libpq's
``connect_timeout``), so the tests read that setting where the driver used it instead of timing the
wait, which a busy machine stretches past any figure:

* :func:`sqlite_failures` records every statement that fails on a :mod:`sqlite3` connection with the
  ``busy_timeout`` that very connection had when it failed (read back with ``PRAGMA busy_timeout``);
* :func:`connect_attempts` records the keyword arguments of every DBAPI ``connect`` SQLAlchemy makes;
* :data:`SITECUSTOMIZE` records the same failures in a child Python process (``python -m ...``): put it
  as ``sitecustomize.py`` in a folder on the child's ``PYTHONPATH`` and name a file in
  ``ML_PLATFORM_TEST_SQLITE_FAILURES``; :func:`read_recorded_failures` reads that file back.

The listeners are process-wide on :class:`sqlalchemy.engine.Engine` (so they see the engines MLflow
builds itself) and are removed on leaving the context.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

__all__ = ["SITECUSTOMIZE", "FailedStatement", "connect_attempts", "read_recorded_failures", "sqlite_failures"]

#: The environment variable naming the file a child process appends its failed statements to.
FAILURES_FILE_ENV = "ML_PLATFORM_TEST_SQLITE_FAILURES"


@dataclass(frozen=True)
class FailedStatement:
    """A statement that failed on a sqlite3 connection.

    Attributes:
        statement: The SQL, as sent to the driver.
        error: The driver's message, e.g. ``database is locked``.
        busy_timeout_ms: ``PRAGMA busy_timeout`` of the connection it failed on, read right after the failure.
    """

    statement: str
    error: str
    busy_timeout_ms: int


def _sqlite_connection(context: Any) -> sqlite3.Connection | None:
    cursor = getattr(context, "cursor", None)
    if isinstance(getattr(cursor, "connection", None), sqlite3.Connection):
        return cursor.connection
    connection = getattr(context, "connection", None)
    dbapi = getattr(getattr(connection, "connection", None), "dbapi_connection", None)
    return dbapi if isinstance(dbapi, sqlite3.Connection) else None


def _failure(context: Any) -> FailedStatement | None:
    connection = _sqlite_connection(context)
    if connection is None:
        return None
    busy = int(connection.execute("PRAGMA busy_timeout").fetchone()[0])
    return FailedStatement(str(context.statement), str(context.original_exception), busy)


@contextmanager
def sqlite_failures() -> Iterator[list[FailedStatement]]:
    """Record, while inside, each statement that fails on a sqlite3 connection (a list filled as they fail)."""
    seen: list[FailedStatement] = []

    def on_error(context: Any) -> None:
        failure = _failure(context)
        if failure is not None:
            seen.append(failure)

    event.listen(Engine, "handle_error", on_error)
    try:
        yield seen
    finally:
        event.remove(Engine, "handle_error", on_error)


@contextmanager
def connect_attempts() -> Iterator[list[dict[str, Any]]]:
    """Record, while inside, the keyword arguments of every DBAPI connect (``connect_timeout``, ...) in order."""
    seen: list[dict[str, Any]] = []

    def on_connect(dialect: Any, connection_record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seen.append(dict(cparams))

    event.listen(Engine, "do_connect", on_connect)
    try:
        yield seen
    finally:
        event.remove(Engine, "do_connect", on_connect)


def record_to_file(path: str) -> None:
    """In a child process: append each failed sqlite3 statement to ``path`` as one JSON line (never removed)."""

    def on_error(context: Any) -> None:
        failure = _failure(context)
        if failure is not None:
            with open(path, "a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(failure)) + "\n")

    event.listen(Engine, "handle_error", on_error)


def read_recorded_failures(path: Path) -> list[FailedStatement]:
    """The failures a child process recorded with :data:`SITECUSTOMIZE` (none if it recorded nothing)."""
    if not path.exists():
        return []
    return [FailedStatement(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]


SITECUSTOMIZE = f"""\
import os
if os.environ.get({FAILURES_FILE_ENV!r}):
    from ml_platform_tests.harness.driver_probe import record_to_file
    record_to_file(os.environ[{FAILURES_FILE_ENV!r}])
"""
