"""Promotion through the gates with MLflow and the champion ledger on PostgreSQL, MLflow's production backend.

Each test gets a fresh database on the session's PostgreSQL server for MLflow's tables, with the
ledger's tables beside them (the ledger lives in the tracking store's database); the artefacts and the
pinned store stay in ``tmp_path``. The first promotion also runs on a Dagster instance stored in
PostgreSQL (``dagster_pg_instance``, a database of its own: Dagster and MLflow both have a ``runs``
table); the others run on the SQLite instance of the SQLite tests. Skipped without PostgreSQL, failed
under ``CI=true`` (see the root conftest).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from ml_platform.champions import LedgerEntry
from ml_platform.champions.catalog import champion_of_record
from ml_platform.champions.location import open_ledger
from ml_platform.champions.service import ChampionService
from ml_platform.champions.serving import load_champion
from ml_platform.cli import main
from ml_platform.errors import RollbackRefused
from ml_platform.registry import FeatureSchema, LiveFeatureStream
from ml_platform.testing.postgres import PostgresServer, unique_database_name
from ml_platform_tests.promotion.conftest import (
    FEATURES,
    KEYS,
    MODEL,
    RATIONALE,
    Project,
    failed_gate,
    make_project,
    ran,
    training_frame,
)

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

OTHER_GRAPH = "sha256:" + "ab" * 32


@pytest.fixture
def mlflow_url(postgres: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database for MLflow (and the ledger beside it); dropped after the test."""
    database = postgres.create_database(unique_database_name(f"promo_{request.node.name}"))
    try:
        yield database.sqlalchemy_url
    finally:
        postgres.drop_database(database.name)


def _on_postgres(project: Project, url: str) -> Project:
    assert project.registry.tracking_uri == url and open_ledger(project.registry).url == url
    return project


@pytest.fixture
def pg_project(tmp_path: Path, mlflow_url: str, dagster_instance: dg.DagsterInstance) -> Project:
    return _on_postgres(make_project(tmp_path, dagster_instance, tracking_uri=mlflow_url), mlflow_url)



def _sha256_of(project: Project, ref: str) -> tuple[Path, str]:
    run_id, _, path = ref.removeprefix("runs:/").partition("/")
    root = MlflowClient(tracking_uri=project.registry.tracking_uri).get_run(run_id).info.artifact_uri
    file = Path(root.removeprefix("file://")) / path
    return file, "sha256:" + hashlib.sha256(file.read_bytes()).hexdigest()


def _unchanged(project: Project, before: LedgerEntry | None, alias: str | None) -> None:
    """Nothing moved: the same ledger head (and chain), the same alias."""
    assert project.head() == before and project.alias() == alias
    if before is not None:
        ledger = open_ledger(project.registry)
        assert ledger.verify(MODEL).entries == before.seq == len(ledger.history(MODEL))


def _live(project: Project) -> LiveFeatureStream:
    schema = FeatureSchema.from_polars(training_frame().select(*KEYS.columns, *FEATURES))
    return LiveFeatureStream(project.graph["model_inputs"].graph_hash, schema)


def test_first_promotion_on_postgres_records_report_and_rationale_linked_from_the_ledger(
    tmp_path: Path, mlflow_url: str, dagster_pg_instance: dg.DagsterInstance
) -> None:
    project = _on_postgres(make_project(tmp_path, dagster_pg_instance, tracking_uri=mlflow_url), mlflow_url)
    v1 = project.register()
    result = project.run(v1)
    assert result.success, failed_gate(result)
    assert dagster_pg_instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
    head = project.head()
    assert (head.seq, head.kind, head.from_version, head.to_version, head.approver, head.override) == (
        1, "promotion", None, v1, "bob", False)
    assert project.alias() == v1 and champion_of_record(project.registry, MODEL) == v1
    assert open_ledger(project.registry).verify(MODEL).ok

    report, digest = _sha256_of(project, head.report_ref)
    assert digest == head.report_sha256
    data = json.loads(report.read_text())
    assert data["incumbent"] is None and data["challenger_version"] == v1
    assert report.with_name("report.png").read_bytes()[:4] == b"\x89PNG"
    rationale, digest = _sha256_of(project, head.rationale_ref)
    assert digest == head.rationale_sha256
    assert rationale.read_text().startswith(f"Version {v1} replaces the incumbent")
    meta = json.loads(rationale.with_name("rationale.json").read_text())
    assert meta["approver"] == "bob" and meta["version"] == v1 and meta["sha256"] == head.rationale_sha256
    assert load_champion(project.registry, MODEL, _live(project), policy="off").version == v1


def test_rationale_four_eyes_and_contract_gates_refuse_on_postgres_and_nothing_moves(pg_project: Project) -> None:
    project = pg_project
    v1, v2 = project.register(), project.register((0.011, -0.004))
    assert project.run(v1).success
    before = project.head()

    for rationale, needle in (("TODO", "placeholder"), ("", "empty"), (RATIONALE.format(v=v1, extra=""), "copy")):
        result = project.run(v2, rationale=rationale)
        gate, message = failed_gate(result)
        assert gate == "rationale" and needle in message, message
        assert "record_promotion" not in ran(result)
        _unchanged(project, before, v1)

    gate, message = failed_gate(project.run(v2, approver=" Alice "))  # alice trained it
    assert gate == "four_eyes" and "trained this version" in message, message
    _unchanged(project, before, v1)

    other = project.register(graph_hash=OTHER_GRAPH)
    gate, message = failed_gate(project.run(other, tail="Built on the next feature graph."))
    assert gate == "contract" and "feature_graph_hash" in message, message
    _unchanged(project, before, v1)


def test_thresholds_refuse_a_worse_challenger_on_postgres_unless_overridden(pg_project: Project) -> None:
    project = pg_project
    v1, bad = project.register(), project.register((-0.01, 0.004))  # the sign flipped: much worse
    assert project.run(v1).success
    before = project.head()
    result = project.run(bad, tail="Challenger for regime B.")
    gate, message = failed_gate(result)
    assert gate == "thresholds" and "sharpe" in message, message
    assert "record_promotion" not in ran(result)
    _unchanged(project, before, v1)

    result = project.run(bad, tail="\nOVERRIDE: regime change expected, the desk accepts the lower Sharpe.")
    assert result.success, failed_gate(result)
    head = project.head()
    assert (head.seq, head.from_version, head.to_version, head.override) == (2, v1, bad, True)
    assert project.alias() == bad and open_ledger(project.registry).verify(MODEL).entries == 2


def _two_champions(project: Project) -> tuple[str, str]:
    v1, v2 = project.register((0.01, 0.0)), project.register()
    assert project.run(v1).success
    result = project.run(v2, tail="Second promotion of the tuned coefficients.")
    assert result.success, failed_gate(result)
    return v1, v2


def test_rollback_to_the_previous_and_to_a_named_champion_on_postgres(pg_project: Project) -> None:
    project = pg_project
    registry = project.registry
    v1, v2 = _two_champions(project)
    service = ChampionService.open(registry)
    try:
        back = service.rollback(MODEL, reason="v2 misbehaves in the open", actor="carol")
        assert (back.seq, back.kind, back.from_version, back.to_version) == (3, "rollback", v2, v1)
        assert champion_of_record(registry, MODEL) == project.alias() == v1
    finally:
        service.close()

    cli = CliRunner().invoke(main, ["rollback", MODEL, "--to", v2, "--reason", "v2 was fine after all",
                                    "--actor", "dave", "--tracking-uri", registry.tracking_uri])
    assert cli.exit_code == 0 and f"champion {v1} -> {v2}" in cli.output, cli.output
    head = project.head()
    assert (head.seq, head.kind, head.from_version, head.to_version, head.actor) == (4, "rollback", v1, v2, "dave")
    assert project.alias() == v2
    assert load_champion(registry, MODEL, _live(project), policy="off").version == v2
    ledger = open_ledger(registry)
    assert ledger.verify(MODEL).entries == 4
    assert [(e.kind, e.to_version) for e in ledger.history(MODEL)] == [
        ("promotion", v1), ("promotion", v2), ("rollback", v1), ("rollback", v2)]


def test_rollback_refuses_a_never_champion_and_a_deleted_target_on_postgres(pg_project: Project) -> None:
    project = pg_project
    registry = project.registry
    v1, v2 = _two_champions(project)
    never = project.register((0.009, -0.001))
    before = project.head()
    service = ChampionService.open(registry)
    try:
        with pytest.raises(RollbackRefused, match=f"version {never} .* was never its champion"):
            service.rollback(MODEL, to=never, reason="r", actor="carol")
        _unchanged(project, before, v2)
        MlflowClient(tracking_uri=registry.tracking_uri).delete_model_version(MODEL, v1)
        with pytest.raises(RollbackRefused, match=f"version {v1} .* was deleted"):
            service.rollback(MODEL, reason="r", actor="carol")
        with pytest.raises(RollbackRefused, match=f"version {v1} .* was deleted"):
            service.rollback(MODEL, to=v1, reason="r", actor="carol")
        _unchanged(project, before, v2)
        assert service.reconcile(MODEL, check_only=True).findings == ()
    finally:
        service.close()
