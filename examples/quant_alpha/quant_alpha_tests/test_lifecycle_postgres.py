"""The lifecycle on the production backends: Dagster's storage and MLflow's registry on PostgreSQL.

Dagster and MLflow each get their own database on the session's throwaway server: both keep a
``runs`` and an ``alembic_version`` table, so they cannot share one schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from quant_alpha.features import MODEL_INPUT_NODE

from ml_platform import RidgeTrainer
from ml_platform.champions.serving import load_champion
from ml_platform.registry import LiveFeatureStream
from ml_platform.registry.schema import FeatureSchema
from ml_platform.settings import Settings
from ml_platform.testing import champion_shortcut
from ml_platform.testing.postgres import PostgresDatabase, PostgresServer, unique_database_name
from ml_platform.window import DataWindow
from quant_alpha_tests.lifecycle_fixtures import Deployment, read_window

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FEATURES = DataWindow.parse("2011-10-03..2011-10-14")     # two weeks, 10 trading days
LIVE = DataWindow.parse("2011-10-13..2011-10-14")
MODEL = "alpha_ridge"
# 10 dates: the latest 2 validate, 2 are embargoed, 6 train
TRAIN_CONFIG = {"validation_fraction": 0.25, "embargo_days": 2, "trained_by": "pg-e2e"}
TRAINER = RidgeTrainer(alpha=10.0, min_days=5)


@pytest.fixture
def mlflow_db(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[PostgresDatabase]:
    """A second fresh database on the session server, for MLflow's tracking and registry store."""
    database = postgres.create_database(unique_database_name(f"mlflow_{request.node.name}"))
    try:
        yield database
    finally:
        postgres.drop_database(database.name)


def _rows(database: PostgresDatabase, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def test_features_train_register_and_serve_on_postgres(
    dagster_pg_instance: dg.DagsterInstance, postgres_db: PostgresDatabase, mlflow_db: PostgresDatabase,
    tmp_path: Path,
) -> None:
    settings = Settings.local(tmp_path / ".ml_platform", tracking_uri=mlflow_db.sqlalchemy_url)
    dep = Deployment.create(settings, dagster_pg_instance, trainer=TRAINER)
    instance = dagster_pg_instance
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.run_storage, PostgresRunStorage)

    # the feature graph over two weeks, its events stored in PostgreSQL
    dep.life.features(FEATURES)
    days = {day.isoformat() for day in FEATURES}
    key = dg.AssetKey(MODEL_INPUT_NODE)
    query = "SELECT partition FROM event_logs WHERE asset_key = %s AND dagster_event_type = %s"
    stored = _rows(postgres_db, query, key.to_string(), dg.DagsterEventType.ASSET_MATERIALIZATION.value)
    assert sorted(p for (p,) in stored) == sorted(days)
    assert instance.get_materialized_partitions(key) == days
    latest = instance.get_latest_materialization_event(key)
    assert latest is not None and latest.asset_materialization is not None
    assert latest.asset_materialization.partition in days
    assert latest.asset_materialization.tags["dagster/code_version"] == dep.graph[MODEL_INPUT_NODE].graph_hash

    # train and register in an MLflow registry on PostgreSQL, promote, load through the contract
    dep.life.training_set(FEATURES)
    trained = dep.train(**TRAIN_CONFIG)
    assert (trained.model_name, trained.version) == (MODEL, "1")
    assert _rows(mlflow_db, "SELECT name, version FROM model_versions") == [(MODEL, 1)]
    champion_shortcut(dep.registry, MODEL, trained.version)
    features = read_window(dep.store, MODEL_INPUT_NODE, FEATURES)
    live = LiveFeatureStream(dep.graph[MODEL_INPUT_NODE].graph_hash, FeatureSchema.from_polars(features))
    champion = load_champion(dep.registry, MODEL, live, policy=settings.environment_policy)
    assert champion.version == "1"
    assert champion.contract == dep.registry.load_contract(MODEL, "1")
    assert champion.contract.training_set_data_hash == dep.store.manifest("training_set", None).data_hash
    assert champion.model.sha256 == champion.contract.model_sha256 == trained.model_sha256

    # and the live step, both stores on PostgreSQL
    result = dep.life.live(LIVE)
    signals = read_window(dep.store, "live_signals", LIVE)
    assert set(signals["model_version"]) == {"1"} and signals.height > 0
    written = _rows(postgres_db, "SELECT partition FROM event_logs WHERE run_id = %s AND asset_key = %s",
                    result.run_id, dg.AssetKey("live_signals").to_string())
    assert {p for (p,) in written} == {day.isoformat() for day in LIVE}
