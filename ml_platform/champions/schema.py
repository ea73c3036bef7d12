"""The ledger's tables and their migrations: explicit, versioned DDL with a schema-version table.

How it works, and why: docs/architecture.md, "ml_platform/champions/schema.py".
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
    text,
)

from ml_platform.champions.entry import format_time
from ml_platform.errors import LedgerSchemaError

__all__ = ["ENTRIES", "HEADS", "MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "Migration", "ensure_schema"]

ENTRIES_TABLE = "ml_platform_ledger_entries"
HEADS_TABLE = "ml_platform_ledger_heads"
SCHEMA_TABLE = "ml_platform_ledger_schema"


@dataclass(frozen=True)
class Migration:
    """One schema step: its version, what it does, and its portable DDL statements."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "champion ledger: entries, heads, schema versions", (
        f"""CREATE TABLE {SCHEMA_TABLE} (
            version INTEGER NOT NULL,
            description VARCHAR(256) NOT NULL,
            applied_at VARCHAR(27) NOT NULL,
            CONSTRAINT {SCHEMA_TABLE}_pk PRIMARY KEY (version)
        )""",
        f"""CREATE TABLE {ENTRIES_TABLE} (
            model VARCHAR(128) NOT NULL,
            seq BIGINT NOT NULL,
            scheme VARCHAR(64) NOT NULL,
            kind VARCHAR(16) NOT NULL,
            from_version VARCHAR(32),
            to_version VARCHAR(32) NOT NULL,
            actor VARCHAR(256) NOT NULL,
            approver VARCHAR(256),
            reason TEXT NOT NULL,
            report_ref VARCHAR(2048),
            report_sha256 VARCHAR(71),
            rationale_ref VARCHAR(2048),
            rationale_sha256 VARCHAR(71),
            override BOOLEAN NOT NULL,
            recorded_at VARCHAR(27) NOT NULL,
            prev_hash VARCHAR(71) NOT NULL,
            entry_hash VARCHAR(71) NOT NULL,
            CONSTRAINT {ENTRIES_TABLE}_pk PRIMARY KEY (model, seq),
            CONSTRAINT {ENTRIES_TABLE}_seq_positive CHECK (seq >= 1),
            CONSTRAINT {ENTRIES_TABLE}_kind CHECK (kind IN ('promotion', 'rollback')),
            CONSTRAINT {ENTRIES_TABLE}_one_successor UNIQUE (model, prev_hash),
            CONSTRAINT {ENTRIES_TABLE}_hash_unique UNIQUE (entry_hash)
        )""",
        f"CREATE INDEX {ENTRIES_TABLE}_by_version ON {ENTRIES_TABLE} (model, to_version)",
        f"""CREATE TABLE {HEADS_TABLE} (
            model VARCHAR(128) NOT NULL,
            seq BIGINT NOT NULL,
            entry_hash VARCHAR(71) NOT NULL,
            CONSTRAINT {HEADS_TABLE}_pk PRIMARY KEY (model),
            CONSTRAINT {HEADS_TABLE}_entry FOREIGN KEY (model, seq) REFERENCES {ENTRIES_TABLE} (model, seq)
        )""",
    )),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema version this code reads and writes."""

# The tables as the queries see them (the schema of SCHEMA_VERSION; the DDL above is what creates it).
_METADATA = MetaData()
ENTRIES = Table(
    ENTRIES_TABLE, _METADATA,
    Column("model", String(128), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("scheme", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("from_version", String(32)),
    Column("to_version", String(32), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("approver", String(256)),
    Column("reason", Text, nullable=False),
    Column("report_ref", String(2048)),
    Column("report_sha256", String(71)),
    Column("rationale_ref", String(2048)),
    Column("rationale_sha256", String(71)),
    Column("override", Boolean(create_constraint=False), nullable=False),
    Column("recorded_at", String(27), nullable=False),
    Column("prev_hash", String(71), nullable=False),
    Column("entry_hash", String(71), nullable=False),
)
HEADS = Table(
    HEADS_TABLE, _METADATA,
    Column("model", String(128), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("entry_hash", String(71), nullable=False),
)
SCHEMA = Table(
    SCHEMA_TABLE, _METADATA,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(256), nullable=False),
    Column("applied_at", String(27), nullable=False),
)

#: The PostgreSQL advisory lock taken while migrating (a fixed 31-bit key derived from the table name).
_ADVISORY_KEY = zlib.crc32(SCHEMA_TABLE.encode()) & 0x7FFFFFFF


def current_version(conn: Connection) -> int:
    """The schema version of the database behind ``conn``: 0 when the ledger was never created.

    Raises:
        LedgerSchemaError: ledger tables exist without a schema-version table, or it is empty.
    """
    inspector = inspect(conn)
    if not inspector.has_table(SCHEMA_TABLE):
        stray = [t for t in (ENTRIES_TABLE, HEADS_TABLE) if inspector.has_table(t)]
        if stray:
            raise LedgerSchemaError(
                f"the ledger tables {stray} exist but {SCHEMA_TABLE} does not, so their schema version is unknown; "
                "they were not created by ml_platform's migrations: restore the database from a backup"
            )
        return 0
    version = conn.execute(select(func.max(SCHEMA.c.version))).scalar()
    if version is None:
        raise LedgerSchemaError(f"{SCHEMA_TABLE} exists but is empty; restore the database from a backup")
    return int(version)


def _check_not_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise LedgerSchemaError(
            f"the ledger's tables are at schema version {version}, newer than the {SCHEMA_VERSION} this ml_platform "
            "knows: they were migrated by a newer ml_platform; upgrade ml_platform in this environment"
        )


def ensure_schema(read: Connection, write: Connection | None = None) -> int:
    """Create or migrate the ledger's tables; return the schema version (``SCHEMA_VERSION``).

    Args:
        read: An open connection used for the fast check (one ``SELECT`` once migrated).
        write: An open connection *not yet in a transaction*, on which migrations run in one write
            transaction (SQLite: the caller's engine begins it ``IMMEDIATE``); ``None`` = ``read``.

    Raises:
        LedgerSchemaError: the tables are newer than this code, or in an unknown state.
    """
    version = current_version(read)
    if read.in_transaction():
        read.rollback()
    _check_not_newer(version)
    if version == SCHEMA_VERSION:
        return version
    conn = write if write is not None else read
    with conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
        version = current_version(conn)  # another process may have migrated while we waited
        _check_not_newer(version)
        for migration in MIGRATIONS:
            if migration.version <= version:
                continue
            for statement in migration.statements:
                conn.exec_driver_sql(statement)
            conn.execute(SCHEMA.insert().values(
                version=migration.version, description=migration.description,
                applied_at=format_time(dt.datetime.now(dt.UTC))))
    return SCHEMA_VERSION
