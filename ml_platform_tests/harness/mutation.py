"""A pytest plugin for ``make mutants`` only: each mutant's tests start from one MLflow database migrated once.

mutmut runs every mutant's tests in a fresh pytest session, so the registry tests' session-scoped MLflow
SQLite registry would be created, and MLflow's schema migrations run, once per mutant: seconds each, for
hundreds of mutants. This plugin lets MLflow create and migrate one database per mutation run (through
:class:`~ml_platform.registry.store.ModelRegistry`, as the fixture does) and copies that file into the
``registry_dir`` fixture's folder before the registry opens it. From there every test uses real MLflow on
a real, fully migrated SQLite file exactly as without the plugin; only the migrations are not re-run.

It also imports, when loaded, what MLflow imports lazily on first use (its SQL stores and their mappers):
mutmut forks each mutant's process from a server that loaded the plugins, so that import is paid once.

``make mutants`` loads it with ``PYTEST_PLUGINS=ml_platform_tests.harness.mutation``; no other run does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import mlflow.store.model_registry.sqlalchemy_store  # imported once, before the fork
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
import pytest
from sqlalchemy.orm import configure_mappers

configure_mappers()

_TEMPLATE_ENV = "ML_PLATFORM_MUTANTS_MLFLOW_TEMPLATE"


def _template() -> Path:
    """The migrated MLflow database of this mutation run, made on first use (atomically: processes race)."""
    template = Path(os.environ.get(_TEMPLATE_ENV) or Path.cwd() / ".mlflow_template" / "mlflow.db")
    if template.exists():
        return template
    from ml_platform.registry.store import ModelRegistry

    template.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=template.parent))
    registry = ModelRegistry(f"sqlite:///{scratch / 'mlflow.db'}", artifact_location=str(scratch / "artifacts"))
    registry.models_with_champion_alias()  # creates and migrates MLflow's tables
    os.replace(scratch / "mlflow.db", template)
    shutil.rmtree(scratch, ignore_errors=True)
    return template


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Generator[None, Any, Any]:
    folder = yield
    if fixturedef.argname == "registry_dir":
        target = Path(folder) / "mlflow.db"
        if not target.exists():
            shutil.copyfile(_template(), target)
    return folder
