"""Bounded waits on MLflow's SQL store, and its database failures reported by their real cause.

MLflow (3.x) builds one SQLAlchemy engine per database URI and offers no setting for how long a
busy SQLite database is waited on: ``mlflow.store.db.utils._get_managed_session_maker`` runs
``PRAGMA busy_timeout = 20000`` at the start of every session, and the engine is created without
``connect_args``, so the queries MLflow runs outside its sessions while it builds a store (the
table check) wait for :mod:`sqlite3`'s default of 5 s. No ``MLFLOW_SQLALCHEMYSTORE_*`` variable
touches either (they set the pool size, overflow, recycle, class and echo only).

The registry therefore bounds the wait itself, for its own calls only. :func:`registry_call` sets
a context variable for the duration of a :class:`~ml_platform.registry.store.ModelRegistry` call;
two process-wide SQLAlchemy listeners, installed once by :func:`install` when a registry first
connects (importing this module changes nothing), act only while it is set:

* on every pool checkout of a :mod:`sqlite3` connection, ``PRAGMA busy_timeout`` is set to the
  registry's bound (this covers MLflow's store construction);
* MLflow's own ``PRAGMA busy_timeout = 20000`` statement is rewritten to the same bound.

Any other user of the same engines (a plain ``MlflowClient`` in the process, Dagster's SQLite
storage) is left exactly as MLflow or Dagster configured it. While a registry call runs, the
records ``mlflow.store.db.utils`` logs about a database failure (a full traceback, under
``_logger.exception``) are dropped: the registry raises that failure itself, as one
:class:`~ml_platform.errors.RegistryError` naming the cause first.

PostgreSQL: before MLflow first builds its store, :func:`preflight` opens one connection with a
``connect_timeout`` of the same bound, so an unreachable server fails in seconds instead of going
through MLflow's ten engine retries (about 100 s of back-off).
"""

from __future__ import annotations

import contextvars
import logging
import math
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["DatabaseCause", "database_cause", "install", "preflight", "registry_call"]


@dataclass(frozen=True)
class _Call:
    busy_timeout_ms: int


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("ml_platform_registry_call", default=None)
_BUSY_PRAGMA = re.compile(r"^\s*PRAGMA\s+busy_timeout\s*=\s*\d+\s*;?\s*$", re.IGNORECASE)
_MLFLOW_DB_LOGGER = "mlflow.store.db.utils"
_installed = False
_install_lock = threading.Lock()


@contextmanager
def registry_call(busy_timeout_seconds: float) -> Iterator[None]:
    """Mark the MLflow calls made inside as the registry's: busy SQLite waits bounded, MLflow's DB tracebacks muted."""
    token = _CALL.set(_Call(max(0, int(busy_timeout_seconds * 1000))))
    try:
        yield
    finally:
        _CALL.reset(token)


def _on_checkout(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    call = _CALL.get()
    if call is not None and isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute(f"PRAGMA busy_timeout = {call.busy_timeout_ms}")


def _before_cursor_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                           executemany: bool) -> tuple[str, Any]:
    call = _CALL.get()
    if call is not None and conn.dialect.name == "sqlite" and _BUSY_PRAGMA.match(statement):
        statement = f"PRAGMA busy_timeout = {call.busy_timeout_ms}"
    return statement, parameters


class _MuteHandledFailures(logging.Filter):
    """Drop MLflow's logged database failures inside a registry call: the registry raises them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _CALL.get() is None or (record.levelno < logging.WARNING and not record.exc_info)


def install() -> None:
    """Install the listeners and the log filter once per process (idempotent, thread-safe)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        from sqlalchemy.pool import Pool

        event.listen(Pool, "checkout", _on_checkout)
        event.listen(Engine, "before_cursor_execute", _before_cursor_execute, retval=True)
        logging.getLogger(_MLFLOW_DB_LOGGER).addFilter(_MuteHandledFailures())
        _installed = True


def preflight(uri: str, timeout_seconds: float) -> None:
    """Open and close one connection to a PostgreSQL ``uri`` within ``timeout_seconds`` (others: no-op).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the server cannot be reached (the caller re-raises it).
    """
    if not uri.startswith(("postgresql", "postgres")):
        return
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(uri, poolclass=NullPool,
                                      connect_args={"connect_timeout": max(2, math.ceil(timeout_seconds))})
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)


def _is_driver_error(exc: BaseException) -> bool:
    module = type(exc).__module__.split(".")[0]
    return module in {"sqlite3", "psycopg", "psycopg2", "pymysql", "MySQLdb", "pyodbc"}


def _is_sqlalchemy_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("sqlalchemy.")


_SQLALCHEMY_NOISE = (
    re.compile(r"\(Background on this error at: [^)]*\)"),
    re.compile(r"\(raised as a result of Query-invoked autoflush;[^)]*\)"),
)


@dataclass(frozen=True)
class DatabaseCause:
    """The root database failure behind an exception.

    Attributes:
        message: The driver's message (first lines only, no SQL), e.g. ``database is locked``.
        kind: The driver's exception type, e.g. ``sqlite3.OperationalError``.
        busy: The database was locked by another connection (a bounded wait ran out).
        unreachable: The server could not be reached.
    """

    message: str
    kind: str
    busy: bool
    unreachable: bool


def database_cause(exc: BaseException) -> DatabaseCause | None:
    """The driver (or SQLAlchemy) failure at the root of ``exc``, or ``None`` if there is none."""
    chain = list(_chain(exc))
    driver = next((e for e in chain if _is_driver_error(e)), None)
    root = driver if driver is not None else next((e for e in chain if _is_sqlalchemy_error(e)), None)
    if root is None:
        return None
    text = str(root)
    if driver is None:
        for noise in _SQLALCHEMY_NOISE:
            text = noise.sub("", text)
        text = re.sub(r"^\([\w.]+\)\s*", "", text.strip())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("[")]
    message = "; ".join(lines[:3]) or type(root).__name__
    kind = f"{type(root).__module__}.{type(root).__qualname__}"
    lowered = message.lower()
    busy = ("database is locked" in lowered or "database table is locked" in lowered
            or type(root).__name__ in {"LockNotAvailable", "DeadlockDetected"})
    unreachable = any(s in lowered for s in ("could not connect", "connection refused", "connection failed",
                                             "could not translate host name", "timeout expired"))
    return DatabaseCause(message, kind, busy, unreachable)
