"""Fixtures of the champions tests: a ledger on SQLite and PostgreSQL, raw SQL, and the registry's fixtures.

Every ledger test runs on both backends through the parametrized ``ledger_url``; the PostgreSQL case
takes the harness's ``postgres_db`` (skipped without PostgreSQL, failed under ``CI=true``). The
service, serving and resource tests use the registry tests' MLflow registry fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from ml_platform.champions import ChampionLedger
from ml_platform_tests.registry.conftest import live, register, registry, registry_dir

__all__ = ["ledger", "ledger_url", "live", "raw_sql", "register", "registry", "registry_dir"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    return str(request.getfixturevalue("postgres_db").sqlalchemy_url)


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[ChampionLedger]:
    with ChampionLedger(ledger_url) as opened:
        yield opened


def raw_sql(url: str, statement: str, **params: Any) -> list[Any]:
    """Run one statement on its own connection, outside the ledger (a tamperer's view); return the rows."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return list(result) if result.returns_rows else []
    finally:
        engine.dispose()
