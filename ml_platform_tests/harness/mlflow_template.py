"""A migrated MLflow SQLite database, made once per test session and copied into each test that needs one.

The first MLflow client to open an empty SQLite file migrates it with MLflow's alembic scripts (some
fifty revisions): seconds on an idle machine, tens of seconds on a loaded 2-core one, for every test
that starts from a fresh store. A byte copy of a file migrated once in the session is the same fresh
store (MLflow's tables at its head revision, the ``Default`` experiment, no run, no model) and takes
milliseconds: MLflow opens it, sees its tables and head revision, and migrates nothing.

The template holds MLflow's migration only. The champion ledger's tables
(:mod:`ml_platform.champions.schema`) are created lazily in the same file by whatever opens the ledger
first; leaving them out keeps that first-use path (and every test of it) exactly as a fresh store runs
it, and costs little: they are three tables created in one transaction.

Tests that are about a missing or fresh database itself (MLflow's own migration, a registry pointed
at a folder with no database) keep creating theirs.

Example:
    >>> def test_something(mlflow_template, tmp_path):  # doctest: +SKIP
    ...     database = copy_mlflow_template(mlflow_template, tmp_path / "mlflow.db")
    ...     registry = ModelRegistry(f"sqlite:///{database}")  # already migrated
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

__all__ = ["MLFLOW_TEMPLATE_KEY", "build_mlflow_template", "copy_mlflow_template", "seed_tracking_uri"]

# Where the session's template lives once made: the ``mlflow_template`` fixture fills it on first use; a
# plugin that already holds a migrated file (``make mutants``'s, one per mutation run) fills it first.
MLFLOW_TEMPLATE_KEY = pytest.StashKey[Path]()


def build_mlflow_template(folder: Path) -> Path:
    """Migrate an empty ``folder / "mlflow.db"`` by a real registry call, check it, and return its path."""
    from ml_platform.registry.store import ModelRegistry  # imports MLflow: only when a template is made

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mlflow.db"
    if path.exists():
        raise FileExistsError(f"{path} exists: the template is made from an empty file only")
    ModelRegistry(f"sqlite:///{path}", artifact_location=str(folder / "artifacts")).list_models()
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith("mlflow.db-")]
    if leftovers:  # a journal or WAL beside it would make a byte copy an inconsistent database
        raise RuntimeError(f"the migrated template {path} has {leftovers} beside it: it cannot be byte-copied")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        experiments = [row[0] for row in connection.execute("SELECT name FROM experiments")]
        versions = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    if len(versions) != 1 or experiments != ["Default"] or any(t.startswith("ml_platform_") for t in tables):
        raise RuntimeError(f"the template {path} is not a fresh MLflow store: revision {versions}, "
                           f"experiments {experiments}, tables {sorted(tables)}")
    return path


def copy_mlflow_template(template: Path, database: Path) -> Path:
    """A copy of ``template`` at ``database`` (its folder made); an existing ``database`` is refused."""
    if database.exists():
        raise FileExistsError(f"{database} exists: a test's copy of the template never replaces a database")
    database.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, database)
    return database


def seed_tracking_uri(template: Path, tracking_uri: str) -> str:
    """Copy ``template`` to the file of a ``sqlite:///`` ``tracking_uri``; returns the URI (others: refused)."""
    from ml_platform.registry.boundary import sqlite_database_path

    database = sqlite_database_path(tracking_uri)
    if database is None:
        raise ValueError(f"only a sqlite:/// tracking URI can be seeded from the template, got {tracking_uri!r}")
    copy_mlflow_template(template, database)
    return tracking_uri
