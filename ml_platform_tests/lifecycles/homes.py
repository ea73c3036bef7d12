"""Copies of a finished home folder: the store, the Dagster instance files, MLflow's SQLite database and artefacts.

A lifecycle built once per session lives in one folder (its *home*). Tests that only read it share that
folder; a test that changes state works on a copy made by :func:`copy_home`, which takes well under a second.

MLflow and Dagster record absolute paths in their SQLite databases (a run's artefact URI, a model version's
source, the tracking URI in a tag, event metadata): a plain copy would still read and write the original's
artefacts. :func:`copy_home` rewrites every occurrence of the original folder's path in every text value of
every SQLite database it copied, so the copy is self-contained. Files other than SQLite databases (Parquet
objects, manifests, artefacts) are copied byte for byte: their hashes are what the tests check.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from ml_platform.settings import Settings

__all__ = ["CopiedHome", "copy_home", "rewrite_sqlite_paths"]


class CopiedHome:
    """What a module's copy of a home folder offers besides its ``home`` (a field of the dataclass using it):
    the settings of its embedded deployment and its Dagster instance's folder."""

    home: Path

    @property
    def settings(self) -> Settings:
        return Settings.local(self.home / ".ml_platform")

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

_SQLITE_MAGIC = b"SQLite format 3\x00"


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rewrite_sqlite_paths(database: Path, old: str, new: str) -> int:
    """Replace ``old`` by ``new`` in every text value of every table of ``database``; the number of values changed."""
    changed = 0
    with sqlite3.connect(database) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        for table in tables:
            columns = [row[1] for row in conn.execute(f"PRAGMA table_info({_quoted(table)})")]
            for column in columns:
                col = _quoted(column)
                cursor = conn.execute(
                    f"UPDATE {_quoted(table)} SET {col} = replace({col}, ?, ?) "
                    f"WHERE typeof({col}) = 'text' AND instr({col}, ?) > 0", (old, new, old))
                changed += cursor.rowcount
    return changed


def copy_home(source: Path, target: Path) -> Path:
    """Copy the home folder ``source`` to ``target`` (which must not exist) and make the copy self-contained.

    Every SQLite database under the copy has ``source``'s absolute path replaced by ``target``'s, so MLflow
    finds the copy's artefacts and Dagster the copy's files; nothing under ``source`` is written.
    """
    source, target = Path(source).resolve(), Path(target).absolute()
    if target.exists():
        raise FileExistsError(f"{target} exists: a home copy is made into a new folder")
    shutil.copytree(source, target, symlinks=True)
    target = target.resolve()
    for folder, _, files in os.walk(target):
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink() and _is_sqlite(path):
                rewrite_sqlite_paths(path, str(source), str(target))
    return target
