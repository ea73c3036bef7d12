"""The registry on MLflow's production backend: PostgreSQL, a full register -> champion round trip, repair."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ml_platform.champions.catalog import champion_of_record
from ml_platform.champions.serving import load_champion
from ml_platform.errors import ContractViolation
from ml_platform.registry import LiveFeatureStream
from ml_platform.registry.repair import repair_registry
from ml_platform.registry.store import ModelRegistry
from ml_platform.testing import champion_shortcut
from ml_platform.testing.postgres import PostgresDatabase
from ml_platform_tests.registry.conftest import (
    CODE_SNAPSHOT,
    GRAPH_HASH,
    OTHER_GRAPH_HASH,
    feature_frame,
    feature_schema,
    make_contract,
    make_model,
)
from ml_platform_tests.registry.test_repair import legacy_registration


@pytest.mark.postgres
def test_register_promote_and_load_champion_on_postgres(postgres_db: PostgresDatabase, tmp_path: Path) -> None:
    registry = ModelRegistry(postgres_db.sqlalchemy_url, artifact_location=str(tmp_path / "artifacts"))
    model = make_model(0.2)
    registered = registry.register(
        model_name="pg_alpha", model=model, contract=make_contract("pg_alpha", model),
        params={"alpha": 1.0}, metrics={"sharpe": 0.9}, code_snapshot=CODE_SNAPSHOT,
    )
    assert registered.version == "1"
    champion_shortcut(registry, "pg_alpha", registered.version)
    assert champion_of_record(registry, "pg_alpha") == "1"

    champion = load_champion(registry, "pg_alpha", LiveFeatureStream(GRAPH_HASH, feature_schema()), policy="strict")
    assert champion.contract == registered.contract
    assert champion.model == model
    assert champion.model.predict(feature_frame()).equals(model.predict(feature_frame()))
    assert [(s.name, s.versions, s.champion) for s in registry.list_models()] == [("pg_alpha", ("1",), "1")]
    with pytest.raises(ContractViolation, match="feature_graph_hash"):
        load_champion(registry, "pg_alpha", LiveFeatureStream(OTHER_GRAPH_HASH, feature_schema()), policy="strict")


@pytest.mark.postgres
def test_repair_finishes_a_legacy_half_registration_on_postgres(postgres_db: PostgresDatabase, tmp_path: Path) -> None:
    registry = ModelRegistry(postgres_db.sqlalchemy_url, artifact_location=str(tmp_path / "artifacts"))
    _, version, contract = legacy_registration(registry, "pg_legacy")
    legacy_registration(registry, "pg_legacy", contract_uploaded=False, shift=0.4)
    assert not repair_registry(registry, check_only=True, stale_after=dt.timedelta(0)).consistent
    report = repair_registry(registry, stale_after=dt.timedelta(0))
    assert [f.action.split(":")[0] for f in report.findings] == ["finish", "end FINISHED", "remove", "end KILLED"]
    assert registry.load_contract("pg_legacy", version) == contract.with_version(version)
    assert [s.versions for s in registry.list_models()] == [(version,)]
    assert repair_registry(registry, check_only=True).consistent
