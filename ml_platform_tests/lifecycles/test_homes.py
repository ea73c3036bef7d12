"""copy_home: a copy of a home folder is self-contained and leaves the original as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ml_platform_tests.lifecycles.homes import copy_home


def _home(root: Path) -> Path:
    home = root / "home"
    (home / "mlflow" / "artifacts" / "1" / "run" / "artifacts").mkdir(parents=True)
    (home / "mlflow" / "artifacts" / "1" / "run" / "artifacts" / "contract.json").write_bytes(b'{"a": 1}')
    (home / "storage").mkdir()
    (home / "storage" / "object.parquet").write_bytes(f"bytes naming {home}".encode())
    with sqlite3.connect(home / "mlflow" / "mlflow.db") as conn:
        conn.execute("CREATE TABLE runs (run_uuid TEXT, artifact_uri TEXT, n INTEGER, blob BLOB)")
        conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?)",
                     ("r1", f"file://{home}/mlflow/artifacts/1/run/artifacts", 7, str(home).encode()))
        conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?)", ("r2", "s3://bucket/elsewhere", 8, None))
        conn.execute('CREATE TABLE "odd ""name""" ("the path" TEXT)')
        conn.execute('INSERT INTO "odd ""name""" VALUES (?)', (f"sqlite:///{home}/mlflow/mlflow.db",))
    return home


def _rows(db: Path, query: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


def test_the_copy_names_itself_and_the_original_is_untouched(tmp_path: Path) -> None:
    original = _home(tmp_path)
    before = {p.relative_to(original): p.read_bytes() for p in original.rglob("*") if p.is_file()}

    copy = copy_home(original, tmp_path / "copy")

    assert copy == (tmp_path / "copy").resolve()
    assert _rows(copy / "mlflow" / "mlflow.db", "SELECT run_uuid, artifact_uri, n FROM runs ORDER BY run_uuid") == [
        ("r1", f"file://{copy}/mlflow/artifacts/1/run/artifacts", 7), ("r2", "s3://bucket/elsewhere", 8)]
    assert _rows(copy / "mlflow" / "mlflow.db", 'SELECT "the path" FROM "odd ""name"""') == [
        (f"sqlite:///{copy}/mlflow/mlflow.db",)]
    # blobs and files that are not SQLite databases are copied byte for byte
    assert _rows(copy / "mlflow" / "mlflow.db", "SELECT blob FROM runs WHERE run_uuid = 'r1'") == [
        (str(original).encode(),)]
    assert (copy / "storage" / "object.parquet").read_bytes() == f"bytes naming {original}".encode()
    assert (copy / "mlflow" / "artifacts" / "1" / "run" / "artifacts" / "contract.json").read_bytes() == b'{"a": 1}'
    # the original: every byte as it was
    assert {p.relative_to(original): p.read_bytes() for p in original.rglob("*") if p.is_file()} == before


def test_a_copy_never_goes_over_an_existing_folder(tmp_path: Path) -> None:
    original = _home(tmp_path)
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="taken"):
        copy_home(original, tmp_path / "taken")
    assert list((tmp_path / "taken").iterdir()) == []
