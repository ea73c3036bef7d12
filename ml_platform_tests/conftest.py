"""Root fixtures: real Dagster instances (SQLite and PostgreSQL), a throwaway PostgreSQL server, a migrated
MLflow SQLite template that tests copy instead of migrating a fresh database each, and the lifecycles built
once per session and shared by several modules (``ml_platform_tests.lifecycles``).

Tests that need PostgreSQL mark themselves ``@pytest.mark.postgres`` and take ``postgres``,
``postgres_db`` or ``dagster_pg_instance``. Without PostgreSQL those tests skip, except under
``CI=true``, where they fail (see :func:`~ml_platform_tests.harness.postgres.require_postgres_or_skip`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, instance_for_test

from ml_platform.testing.postgres import (
    PostgresDatabase,
    PostgresHarnessError,
    PostgresServer,
    find_postgres_binaries,
    unique_database_name,
)
from ml_platform_tests.harness.mlflow_template import MLFLOW_TEMPLATE_KEY, build_mlflow_template, copy_mlflow_template
from ml_platform_tests.harness.postgres import require_postgres_or_skip
from ml_platform_tests.lifecycles.scaffolded import scaffolded_project, scaffolded_project_locked
from ml_platform_tests.lifecycles.team_b import team_b_features

__all__ = ["dagster_instance", "dagster_pg_instance", "mlflow_template", "postgres", "postgres_db",
           "scaffolded_project", "scaffolded_project_locked", "team_b_features"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL 15 server for the whole session, on 127.0.0.1 and a free port; stopped at the end."""
    bin_dir, reason = find_postgres_binaries()
    if bin_dir is None:
        require_postgres_or_skip(reason)
    try:
        server = PostgresServer(bin_dir)
        server.start()
    except PostgresHarnessError as exc:
        require_postgres_or_skip(f"starting the server failed: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_db(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[PostgresDatabase]:
    """A fresh, uniquely named, empty database on the session server; dropped after the test."""
    database = postgres.create_database(unique_database_name(request.node.name))
    try:
        yield database
    finally:
        postgres.drop_database(database.name)


@pytest.fixture
def dagster_pg_instance(postgres_db: PostgresDatabase) -> Iterator[DagsterInstance]:
    """A real DagsterInstance whose run, event log and schedule storage are dagster-postgres on a fresh database."""
    with instance_for_test(overrides=postgres_db.dagster_storage_config()) as instance:
        yield instance


@pytest.fixture
def dagster_instance() -> Iterator[DagsterInstance]:
    """A real DagsterInstance on SQLite storage in a temporary DAGSTER_HOME, removed after the test."""
    with instance_for_test() as instance:
        yield instance


@pytest.fixture(scope="session")
def mlflow_template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow SQLite database, migrated once per session by a real registry call; copy it, never open it.

    See :mod:`ml_platform_tests.harness.mlflow_template`: MLflow's tables only, no ledger tables. Kept in the
    session's stash, so the example's conftest, which imports this fixture (a second definition to pytest),
    gets the same file instead of migrating another.
    """
    stash = request.config.stash
    if MLFLOW_TEMPLATE_KEY not in stash:
        stash[MLFLOW_TEMPLATE_KEY] = build_mlflow_template(tmp_path_factory.mktemp("mlflow_template"))
    return stash[MLFLOW_TEMPLATE_KEY]


@pytest.fixture
def migrated_mlflow(mlflow_template: Path, tmp_path: Path) -> Callable[..., Path]:
    """Put a copy of the migrated template where a test's registry will open it: ``migrated_mlflow()`` makes
    ``tmp_path / "mlflow.db"``, ``migrated_mlflow(path)`` that file (refused if it exists); returns the path."""

    def copy(database: Path | None = None) -> Path:
        return copy_mlflow_template(mlflow_template, database if database is not None else tmp_path / "mlflow.db")

    return copy


@pytest.fixture(autouse=True)
def _no_dead_defs_state_storage():
    """Dagster keeps the current defs-state storage in a ContextVar that a closed module-scoped instance can
    leave set (bound to its dead instance); every later Definitions load then fails with "Attempted to
    resolve undefined DagsterInstance weakref". Clear such a leftover before each test (test isolation
    only; no library code touches it)."""
    from dagster._core.storage.defs_state.base import DefsStateStorage, _current_storage

    storage = DefsStateStorage.get()
    if storage is not None:
        ref = getattr(storage, "_instance_weakref", None)
        if ref is None or ref() is None:
            _current_storage.set(None)
    yield
