"""Each reach of ml_platform.compat into Dagster's or MLflow's internals, pinned against the installed release.

When an upgrade changes what one of them relies on, its test here fails and names the assumption,
before the behaviour built on it silently changes (a wait no longer bounded, a deleted version read
as live, a reproduction's daemon back on a 30 s tick).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
from dagster_shared.serdes.errors import DeserializationError
from mlflow import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError

from ml_platform import compat
from ml_platform.errors import ConfigurationError
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.registry.conftest import CODE_SNAPSHOT, make_contract, make_model


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    folder = tmp_path_factory.mktemp("compat")
    return ModelRegistry(f"sqlite:///{folder / 'mlflow.db'}", artifact_location=str(folder / "artifacts"))


def _register(registry: ModelRegistry, name: str) -> str:
    model = make_model()
    return registry.register(model_name=name, model=model, contract=make_contract(name, model), params={},
                             metrics={"sharpe": 1.0}, code_snapshot=CODE_SNAPSHOT).version


def test_mlflow_sets_a_busy_timeout_per_session_which_the_bound_rewrites(registry: ModelRegistry) -> None:
    _register(registry, "compat_busy")  # the store exists and is migrated
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "busy_timeout" in statement.lower():
            seen.append(statement)

    compat.install_sqlite_wait_bounds()
    event.listen(Engine, "before_cursor_execute", record)
    try:
        client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.registry_uri)
        client.search_registered_models()
        assert any(compat._BUSY_PRAGMA.match(s) for s in seen), (
            "MLflow's SQL store no longer runs 'PRAGMA busy_timeout = N' at the start of its sessions "
            f"(statements seen: {seen}); ml_platform.compat.bounded_sqlite_waits relies on rewriting it")
        seen.clear()
        with compat.bounded_sqlite_waits(0.25):
            client.search_registered_models()
        assert seen and all(s == "PRAGMA busy_timeout = 250" for s in seen), seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def test_mlflow_logs_failed_sessions_to_the_muted_logger() -> None:
    import mlflow.store.db.utils as db_utils

    logger = getattr(db_utils, "_logger", None)
    assert isinstance(logger, logging.Logger) and logger.name == compat.MLFLOW_DB_LOGGER, (
        f"MLflow's SQL store no longer logs to {compat.MLFLOW_DB_LOGGER!r}; the registry's muting of the "
        "tracebacks it raises itself (ml_platform.compat) must follow it")


def test_mlflow_keeps_a_deleted_versions_row_with_the_deleted_stage(registry: ModelRegistry) -> None:
    kept, deleted = _register(registry, "compat_rows"), _register(registry, "compat_rows")
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.registry_uri)
    client.delete_model_version("compat_rows", deleted)
    engine = sqlalchemy.create_engine(registry.tracking_uri)
    try:
        with engine.connect() as conn:
            assert compat.holds_mlflow_versions(conn), f"MLflow's tables are no longer {compat.MLFLOW_VERSION_TABLES}"
            stage = conn.execute(sqlalchemy.text("SELECT current_stage FROM model_versions WHERE name = :n AND "
                                                 "version = :v"), {"n": "compat_rows", "v": int(deleted)}).scalar()
            assert stage in (None, compat.MLFLOW_DELETED_STAGE), (
                f"MLflow marks a deleted version's row with stage {stage!r}, not {compat.MLFLOW_DELETED_STAGE!r}: "
                "ml_platform.compat.mlflow_version_tags would read it as live")
            live = compat.mlflow_version_tags(conn, "compat_rows", kept, ("ml_platform.status", "nonexistent"))
            assert live == {"ml_platform.status": "ready"}
            assert compat.mlflow_version_tags(conn, "compat_rows", deleted, ("ml_platform.status",)) is None
            assert compat.mlflow_version_tags(conn, "compat_rows", 99, ("ml_platform.status",)) is None
    finally:
        engine.dispose()


def test_a_database_without_mlflow_tables_is_told_apart(tmp_path: Path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        with engine.connect() as conn:
            assert not compat.holds_mlflow_versions(conn)
    finally:
        engine.dispose()


def test_dagsters_daemon_reads_the_intervals_compat_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._daemon import cli, controller

    for name in ("DEFAULT_DAEMON_INTERVAL_SECONDS", "RELOAD_WORKSPACE_INTERVAL"):
        assert hasattr(controller, name), f"dagster._daemon.controller.{name} is gone; see ml_platform.compat"
        monkeypatch.setattr(controller, name, getattr(controller, name))
    assert controller.RELOAD_WORKSPACE_INTERVAL == compat.DAGSTER_WORKSPACE_REFRESH_SECONDS, (
        "Dagster's daemon no longer re-reads its workspace every "
        f"{compat.DAGSTER_WORKSPACE_REFRESH_SECONDS} s; update compat.DAGSTER_WORKSPACE_REFRESH_SECONDS")
    compat.set_backfill_tick(1.5)
    compat.set_workspace_refresh(4)
    assert (controller.DEFAULT_DAEMON_INTERVAL_SECONDS, controller.RELOAD_WORKSPACE_INTERVAL) == (1.5, 4.0)
    assert callable(getattr(cli, "cli", None)), "dagster._daemon.cli.cli is gone: compat.run_dagster_daemon"
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ConfigurationError, match="positive number of seconds"):
            compat.set_workspace_refresh(bad)


def test_the_errors_of_an_unreadable_dagster_record_are_told_apart() -> None:
    dagster_record_unreadable = compat.dagster_record_unreadable
    with pytest.raises(json.JSONDecodeError) as cut:
        dg.deserialize_value('{"__class__": "EventLogRecord", "event_log_entry": {"__cl')
    assert dagster_record_unreadable(cut.value)
    assert dagster_record_unreadable(DeserializationError("unknown class"))
    assert dagster_record_unreadable(DatabaseError("SELECT", {}, Exception("file is not a database")))
    assert not dagster_record_unreadable(KeyError("asset")) and not dagster_record_unreadable(OSError(5, "EIO"))


def test_a_run_is_failed_from_outside_its_process_with_an_engine_event(tmp_path: Path) -> None:
    @dg.op
    def noop() -> None:
        pass

    @dg.job
    def killed_job() -> None:
        noop()

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        run = instance.create_run_for_job(killed_job)
        compat.fail_abandoned_run(instance, run, "its process is gone")
        ended = instance.get_run_by_id(run.run_id)
        assert ended is not None and ended.status == dg.DagsterRunStatus.FAILURE
        events = [(e.dagster_event.event_type_value, e.message) for e in instance.all_logs(run.run_id)
                  if e.dagster_event is not None]
        assert ("ENGINE_EVENT", "its process is gone") in events and ("PIPELINE_FAILURE", "its process is gone") in events
