"""A ledger opened only to read: never creates a file, a folder or a table, never migrates, refuses writes.

Issue 26, finding 3: `history` and `audit verify` created or migrated the ledger's tables (and failed
doing so on a read-only or locked database); `rollback --ledger-url` with a new path created a database.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ml_platform.champions.ledger import ChampionLedger
from ml_platform.champions.schema import SCHEMA_TABLE, SCHEMA_VERSION
from ml_platform.errors import LedgerError, LedgerSchemaError


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _move(ledger: ChampionLedger, version: str) -> None:
    ledger.move("alpha", kind="promotion", to_version=version, actor="alice", reason=f"promote {version}")


@pytest.mark.parametrize("options", [{"read_only": True}, {"create": False}])
def test_a_missing_sqlite_file_is_refused_and_nothing_is_created(tmp_path: Path, options: dict[str, bool]) -> None:
    database = tmp_path / "typo" / "ledger.db"
    with ChampionLedger(f"sqlite:///{database}", **options) as ledger, \
            pytest.raises(LedgerError, match=f"no ledger database at {database}: nothing was created"):
        ledger.history("alpha")
    assert not database.parent.exists()


def test_a_database_without_ledger_tables_reads_as_empty_and_stays_as_it_was(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    with sqlite3.connect(database) as conn:  # a registry's database that never had a promotion
        conn.execute("CREATE TABLE registered_models (name TEXT)")
    before = _digest(database)
    with ChampionLedger(f"sqlite:///{database}", read_only=True) as ledger:
        assert ledger.history("alpha") == () and ledger.models() == () and ledger.head("alpha") is None
        assert ledger.verify("alpha").entries == 0
        with pytest.raises(LedgerError, match="opened read-only; nothing was written"):
            _move(ledger, "1")
    assert _digest(database) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlflow.db"]


def test_a_ledger_read_read_only_gives_what_was_written_and_refuses_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with ChampionLedger(url) as writer:
        _move(writer, "1")
        _move(writer, "2")
        written = writer.history("alpha")
    before = _digest(tmp_path / "mlflow.db")
    with ChampionLedger(url, read_only=True) as reader:
        assert reader.history("alpha") == written and reader.head("alpha") == written[-1]
        assert reader.verify("alpha").ok and reader.models() == ("alpha",)
        with pytest.raises(LedgerError, match="opened read-only"):
            _move(reader, "3")
    assert _digest(tmp_path / "mlflow.db") == before


def test_a_read_only_ledger_reads_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    sqlite3.connect(database).close()
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with ChampionLedger(f"sqlite:///{database}", read_only=True, busy_timeout_seconds=0.2) as ledger:
            assert ledger.history("alpha") == ()
        with ChampionLedger(f"sqlite:///{database}", busy_timeout_seconds=0.2) as writer, \
                pytest.raises(LedgerError, match="locked"):  # what the reading commands did before
            writer.history("alpha")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_tables_of_another_schema_version_are_refused_not_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with ChampionLedger(url) as writer:
        _move(writer, "1")
    with sqlite3.connect(tmp_path / "mlflow.db") as conn:
        conn.execute(f"INSERT INTO {SCHEMA_TABLE} (version, description, applied_at) VALUES (?, 'later', 'x')",
                     (SCHEMA_VERSION + 1,))
    before = _digest(tmp_path / "mlflow.db")
    with ChampionLedger(url, read_only=True) as reader, \
            pytest.raises(LedgerSchemaError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        reader.history("alpha")
    assert _digest(tmp_path / "mlflow.db") == before


def test_on_either_backend_a_read_only_ledger_reads_and_its_connections_cannot_write(ledger_url: str) -> None:
    with ChampionLedger(ledger_url) as writer:
        _move(writer, "1")
        written = writer.history("alpha")
    with ChampionLedger(ledger_url, read_only=True) as reader:
        assert reader.history("alpha") == written
        with pytest.raises(SQLAlchemyError, match="read-?only"), reader.engine.connect() as conn:
            conn.execute(text("DELETE FROM ml_platform_ledger_entries"))  # SQLite mode=ro; PostgreSQL read-only
            conn.commit()
    with ChampionLedger(ledger_url) as writer:
        assert writer.history("alpha") == written
