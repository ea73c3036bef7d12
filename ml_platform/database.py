"""Database failures named by their real cause, and a bounded first connection: shared by registry and ledger.

Neither MLflow nor Dagster is imported here; the registry (MLflow's SQL store) and the champion
ledger (SQLAlchemy) both report a failure by the driver's own message through :func:`database_cause`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import sqlalchemy
from sqlalchemy.pool import NullPool

from ml_platform.errors import exception_chain

__all__ = ["DatabaseCause", "database_cause", "preflight"]


def preflight(uri: str, timeout_seconds: float) -> None:
    """Open and close one connection to a PostgreSQL ``uri`` within ``timeout_seconds`` (others: no-op).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the server cannot be reached (the caller re-raises it).
    """
    if not uri.startswith(("postgresql", "postgres")):
        return
    engine = sqlalchemy.create_engine(uri, poolclass=NullPool,
                                      connect_args={"connect_timeout": max(2, math.ceil(timeout_seconds))})
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _links(exc: BaseException) -> tuple[object, ...]:
    return getattr(exc, "orig", None), exc.__cause__, exc.__context__


def _is_driver_error(exc: BaseException) -> bool:
    module = type(exc).__module__.split(".")[0]
    return module in {"sqlite3", "psycopg", "psycopg2", "pymysql", "MySQLdb", "pyodbc"}


def _is_sqlalchemy_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("sqlalchemy.")


_SQLALCHEMY_NOISE = (
    re.compile(r"\(Background on this error at: [^)]*\)"),
    re.compile(r"\(raised as a result of Query-invoked autoflush;[^)]*\)"),
)


#: What drivers say when the server cannot be reached, or went away under an open connection (a restart:
#: PostgreSQL ends its sessions with "terminating connection due to administrator command").
_UNREACHABLE = ("could not connect", "connection refused", "connection failed", "could not translate host name",
                "timeout expired", "server closed the connection", "terminating connection",
                "the database system is shutting down", "the database system is starting up",
                "the database system is in recovery mode", "the connection is closed", "connection is lost",
                "consuming input failed", "ssl syscall error: eof detected")


@dataclass(frozen=True)
class DatabaseCause:
    """The root database failure behind an exception.

    Attributes:
        message: The driver's message (first lines only, no SQL), e.g. ``database is locked``.
        kind: The driver's exception type, e.g. ``sqlite3.OperationalError``.
        busy: The database was locked by another connection (a bounded wait ran out).
        unreachable: The server could not be reached, or closed the connection (it was stopped or restarted).
    """

    message: str
    kind: str
    busy: bool
    unreachable: bool


def database_cause(exc: BaseException) -> DatabaseCause | None:
    """The driver (or SQLAlchemy) failure at the root of ``exc``, or ``None`` if there is none."""
    chain = list(exception_chain(exc, _links))
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
    unreachable = any(s in lowered for s in _UNREACHABLE)
    return DatabaseCause(message, kind, busy, unreachable)
