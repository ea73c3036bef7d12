"""The alert outbox in a database table (PostgreSQL in production, SQLite for a local stand-in). No Dagster, no MLflow.

How it works, and why: docs/architecture.md, "ml_platform/monitoring/outbox_sql.py".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from ml_platform.database import database_cause
from ml_platform.errors import ConfigurationError, MonitoringError
from ml_platform.monitoring.outbox import AlertOutbox, Outbox, OutboxLog, file_lock, log_of

__all__ = ["OUTBOX_SCHEMA_VERSION", "OUTBOX_TABLE", "SqlOutbox", "check_outbox_url", "open_outbox"]

OUTBOX_TABLE = "ml_platform_outbox"
SCHEMA_TABLE = "ml_platform_outbox_schema"
_MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (1, "alert outboxes: one row per record, in seq order per route", (
        f"""CREATE TABLE {SCHEMA_TABLE} (
            version INTEGER NOT NULL,
            description VARCHAR(256) NOT NULL,
            applied_at VARCHAR(40) NOT NULL,
            CONSTRAINT {SCHEMA_TABLE}_pk PRIMARY KEY (version)
        )""",
        f"""CREATE TABLE {OUTBOX_TABLE} (
            route VARCHAR(64) NOT NULL,
            seq BIGINT NOT NULL,
            at TEXT NOT NULL,
            event VARCHAR(16) NOT NULL,
            alert_id TEXT NOT NULL,
            alert_key TEXT NOT NULL,
            line TEXT NOT NULL,
            CONSTRAINT {OUTBOX_TABLE}_pk PRIMARY KEY (route, seq),
            CONSTRAINT {OUTBOX_TABLE}_seq_positive CHECK (seq >= 1)
        )""",
        f"CREATE INDEX {OUTBOX_TABLE}_by_alert ON {OUTBOX_TABLE} (route, alert_id)",
    )),
)
OUTBOX_SCHEMA_VERSION = _MIGRATIONS[-1][0]
"""The schema version of the outbox table this code reads and writes."""

_METADATA = MetaData()
_ROWS = Table(
    OUTBOX_TABLE, _METADATA,
    Column("route", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", Text, nullable=False),
    Column("event", String(16), nullable=False),
    Column("alert_id", Text, nullable=False),
    Column("alert_key", Text, nullable=False),
    Column("line", Text, nullable=False),
)
_SCHEMA = Table(
    SCHEMA_TABLE, _METADATA,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(256), nullable=False),
    Column("applied_at", String(40), nullable=False),
)
_WRITE = "ml_platform_outbox_write"  # execution option: SQLite begins this connection's transactions IMMEDIATE
_BUSY_SECONDS = 30.0  # SQLite: how long a writer waits for another one's transaction


def _advisory_key(purpose: str, route: str = "") -> int:
    """A fixed 31-bit PostgreSQL advisory-lock key of ``purpose`` (and ``route``)."""
    return zlib.crc32(f"{OUTBOX_TABLE}:{purpose}:{route}".encode()) & 0x7FFFFFFF


def _label(url: URL) -> str:
    return str(url.render_as_string(hide_password=True))


def check_outbox_url(url: str, owner: str = "outbox_url") -> URL:
    """``url`` parsed: a SQLAlchemy URL of a PostgreSQL or SQLite-file database, else ConfigurationError.

    The error never repeats the URL itself (it may hold a password); ``owner`` names the setting.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"{owner} is empty: give the SQLAlchemy URL of the outbox database, e.g. "
                                 "postgresql+psycopg://user@host:5432/db")
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError):
        raise ConfigurationError(f"{owner} is not a SQLAlchemy URL (it is not shown: it may hold a password); give "
                                 "e.g. postgresql+psycopg://user@host:5432/db, the password in PGPASSWORD") from None
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "sqlite"):
        raise ConfigurationError(f"{owner} {_label(parsed)}: the outboxes are kept in PostgreSQL (or a SQLite file "
                                 f"for a local stand-in), not {backend!r}")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigurationError(f"{owner} {_label(parsed)}: an in-memory SQLite outbox would lose every alert with "
                                 "its process; give a file: sqlite:///PATH")
    return parsed


_ENGINES: dict[str, Engine] = {}
_READY: set[str] = set()
_ENGINES_LOCK = threading.Lock()


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        Path(str(url.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": _BUSY_SECONDS})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None  # the "begin" listener below issues BEGIN itself

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

        return engine
    # No pool: a sensor's process may fork, and an outbox makes a few short transactions per tick.
    return create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10})


def _engine(url: URL) -> Engine:
    """The process's engine of ``url``, its outbox table created or migrated once."""
    name = url.render_as_string(hide_password=False)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(name)
        if engine is None:
            engine = _ENGINES[name] = _create_engine(url)
        if name not in _READY:
            with engine.connect() as read, engine.connect().execution_options(**{_WRITE: True}) as write:
                _ensure_schema(read, write)
            _READY.add(name)
    return engine


def _current_version(conn: Connection) -> int:
    inspector = inspect(conn)
    if not inspector.has_table(SCHEMA_TABLE):
        if inspector.has_table(OUTBOX_TABLE):
            raise MonitoringError(f"the table {OUTBOX_TABLE} exists but {SCHEMA_TABLE} does not, so its schema "
                                  "version is unknown: it was not created by ml_platform; rename it or use another "
                                  "database")
        return 0
    version = conn.execute(select(func.max(_SCHEMA.c.version))).scalar()
    if version is None:
        raise MonitoringError(f"{SCHEMA_TABLE} exists but is empty; restore the database from a backup")
    if version > OUTBOX_SCHEMA_VERSION:
        raise MonitoringError(f"the outbox table is at schema version {version}, newer than the "
                              f"{OUTBOX_SCHEMA_VERSION} this ml_platform knows; upgrade ml_platform in this environment")
    return int(version)


def _ensure_schema(read: Connection, write: Connection) -> None:
    """Create or migrate the outbox table (the champion ledger's pattern: versioned DDL, one lock)."""
    version = _current_version(read)
    if read.in_transaction():
        read.rollback()
    if version == OUTBOX_SCHEMA_VERSION:
        return
    with write.begin():
        if write.dialect.name == "postgresql":
            write.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _advisory_key("schema")})
        version = _current_version(write)  # another process may have migrated while we waited
        for number, description, statements in _MIGRATIONS:
            if number <= version:
                continue
            for statement in statements:
                write.exec_driver_sql(statement)
            write.execute(_SCHEMA.insert().values(version=number, description=description,
                                                  applied_at=dt.datetime.now(dt.UTC).isoformat()))


class SqlOutbox(AlertOutbox):
    """One route's outbox as rows of the ``ml_platform_outbox`` table (see the module documentation).

    Args:
        url: The SQLAlchemy URL of the database (:func:`check_outbox_url`); the table is created on
            first use.
        route: The route whose records these are (``pager``, ``research``).
    """

    def __init__(self, url: str | URL, route: str) -> None:
        self.url = url if isinstance(url, URL) else check_outbox_url(url)
        if not route or not route.isidentifier():
            raise ConfigurationError(f"outbox route {route!r}: give a name of letters, digits and _")
        self.route = route
        self._backend = self.url.get_backend_name()

    def __repr__(self) -> str:  # never shows a password
        return f"SqlOutbox({_label(self.url)!r}, {self.route!r})"

    @property
    def location(self) -> str:
        return f"{_label(self.url)} (table {OUTBOX_TABLE}, route {self.route})"

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            cause = database_cause(exc)
            reason = cause.message if cause is not None else type(exc).__name__
            raise MonitoringError(f"cannot {doing} the outbox {self.location}: {reason}; check that the database "
                                  "is reachable and ML_PLATFORM_OUTBOX_URL (and PGPASSWORD)") from None

    def read(self) -> OutboxLog:
        """Every record in ``seq`` order (one consistent snapshot: a record is seen whole or not at all)."""
        with self._errors("read"), _engine(self.url).connect() as conn:
            rows = conn.execute(select(_ROWS.c.seq, _ROWS.c.line).where(_ROWS.c.route == self.route)
                                .order_by(_ROWS.c.seq)).all()
        return log_of(self.location, ((int(seq), line.encode("utf-8"), False) for seq, line in rows))

    def _write(self, record: Mapping[str, Any], text_line: str) -> None:
        """One transaction: the route's append lock, the next ``seq``, the row; durable at its commit."""
        with self._errors("append to"):
            engine = _engine(self.url)
            with engine.connect().execution_options(**{_WRITE: True}) as conn, conn.begin():
                if self._backend == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": _advisory_key("append", self.route)})
                last = conn.execute(select(func.max(_ROWS.c.seq)).where(_ROWS.c.route == self.route)).scalar()
                conn.execute(_ROWS.insert().values(
                    route=self.route, seq=int(last or 0) + 1, at=str(record["at"]), event=str(record["event"]),
                    alert_id=str(record["id"]), alert_key=str(record["key"]), line=text_line))

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the route's delivery lock: a session advisory lock on PostgreSQL (released by the server
        if the process dies), an ``flock`` beside the database file on SQLite."""
        if self._backend != "postgresql":
            database = Path(str(self.url.database)).expanduser().absolute()
            with file_lock(database.with_name(f"{database.name}.{self.route}.outbox.lock")):
                yield
            return
        key = _advisory_key("deliver", self.route)
        with self._errors("lock"):
            conn = _engine(self.url).connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            with self._errors("lock"):
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                with contextlib.suppress(SQLAlchemyError):  # closing the session releases it anyway
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        finally:
            conn.close()


def open_outbox(route: str, *, outbox_dir: str | Path | None = None, outbox_url: str | None = None) -> AlertOutbox:
    """The outbox of ``route``: rows in the database at ``outbox_url``, else ``<outbox_dir>/<route>.jsonl``.

    Raises:
        ConfigurationError: both or neither are given, or the URL is not one the outbox can use.
    """
    if outbox_url and outbox_dir:
        raise ConfigurationError("give the outbox as a folder (outbox_dir) or a database (outbox_url), not both")
    if outbox_url:
        return SqlOutbox(outbox_url, route)
    if not outbox_dir:
        raise ConfigurationError("no outbox: give outbox_dir (a folder) or outbox_url (a database URL)")
    return Outbox(Path(outbox_dir) / f"{route}.jsonl")
