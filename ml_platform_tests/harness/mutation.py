"""A pytest plugin for ``make mutants`` only: each mutant's tests start from one MLflow database migrated once.

mutmut runs every mutant's tests in a fresh pytest session, so the session's ``mlflow_template`` fixture
would create and migrate an MLflow SQLite database (MLflow's schema migrations: seconds) once per mutant,
for hundreds of mutants. This plugin makes that template once per mutation run, with the same
:func:`~ml_platform_tests.harness.mlflow_template.build_mlflow_template` the fixture uses, and puts it in
the session's stash before any test runs; the fixture finds it there. Every test then copies a real, fully
migrated MLflow file exactly as without the plugin; only the migrations are not re-run.

It also imports, when loaded, what MLflow imports lazily on first use (its SQL stores and their mappers):
mutmut forks each mutant's process from a server that loaded the plugins, so that import is paid once.

``make mutants`` loads it with ``PYTEST_PLUGINS=ml_platform_tests.harness.mutation``; no other run does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import mlflow.store.model_registry.sqlalchemy_store  # imported once, before the fork
import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
import pytest
from sqlalchemy.orm import configure_mappers

from ml_platform_tests.harness.mlflow_template import MLFLOW_TEMPLATE_KEY, build_mlflow_template

configure_mappers()

_TEMPLATE_ENV = "ML_PLATFORM_MUTANTS_MLFLOW_TEMPLATE"


def _template() -> Path:
    """The migrated MLflow database of this mutation run, made on first use (atomically: processes race)."""
    template = Path(os.environ.get(_TEMPLATE_ENV) or Path.cwd() / ".mlflow_template" / "mlflow.db")
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=template.parent))
    try:
        os.replace(build_mlflow_template(scratch / "template"), template)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return template


def pytest_configure(config: pytest.Config) -> None:
    config.stash[MLFLOW_TEMPLATE_KEY] = _template()
