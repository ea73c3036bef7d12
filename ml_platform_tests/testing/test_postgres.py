"""The PostgreSQL harness and the production-storage fixtures, against a real server.

Proves: the session server is PostgreSQL 15 on loopback; databases are isolated; bad names and duplicates
are refused; a partitioned Dagster asset graph runs on dagster-postgres storage and its materializations
are in Postgres tables; MLflow's tracking and registry stores migrate and work on Postgres; a stopped or
failed server leaves no directory behind; the skip/fail policy follows ``CI``.
"""

import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import mlflow
import psycopg
import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    DailyPartitionsDefinition,
    asset,
    materialize,
)
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from ml_platform.errors import ConfigurationError
from ml_platform.testing.postgres import (
    PostgresDatabase,
    PostgresHarnessError,
    PostgresServer,
    find_postgres_binaries,
    unique_database_name,
)
from ml_platform_tests.harness.postgres import require_postgres_or_skip

DAILY = DailyPartitionsDefinition(start_date="2024-01-01")
PARTITION = "2024-01-03"


@asset(partitions_def=DAILY)
def prices(context: AssetExecutionContext) -> list[float]:
    """Three deterministic prices for the partition's day."""
    day = int(context.partition_key[-2:])
    return [100.0 + day, 99.5 + day, 102.0 + day]


@asset(partitions_def=DAILY)
def returns(prices: list[float]) -> list[float]:
    """Simple returns between consecutive prices."""
    return [later / earlier - 1.0 for earlier, later in pairwise(prices)]


@asset(partitions_def=DAILY)
def signal(returns: list[float]) -> float:
    """Sign of the summed returns."""
    return 1.0 if sum(returns) > 0 else -1.0


@pytest.mark.postgres
def test_server_is_postgres_15_on_loopback(postgres: PostgresServer, postgres_db: PostgresDatabase) -> None:
    assert postgres_db.dsn == f"postgresql://postgres@127.0.0.1:{postgres.port}/{postgres_db.name}"
    assert (
        postgres_db.sqlalchemy_url
        == f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/{postgres_db.name}"
    )
    with psycopg.connect(postgres_db.dsn) as conn:
        version = conn.execute("SELECT version()").fetchone()
        listen = conn.execute("SHOW listen_addresses").fetchone()
        current = conn.execute("SELECT current_database()").fetchone()
    assert version is not None and version[0].startswith("PostgreSQL 15.")
    assert listen == ("127.0.0.1",)
    assert current == (postgres_db.name,)


@pytest.mark.postgres
def test_databases_are_isolated_and_dropped(postgres: PostgresServer) -> None:
    first = postgres.create_database(unique_database_name("iso_a"))
    second = postgres.create_database(unique_database_name("iso_b"))
    try:
        with psycopg.connect(first.dsn) as conn:
            conn.execute("CREATE TABLE quotes (price double precision)")
            conn.execute("INSERT INTO quotes VALUES (101.5)")
        with psycopg.connect(first.dsn) as conn:
            assert conn.execute("SELECT price FROM quotes").fetchall() == [(101.5,)]
        with psycopg.connect(second.dsn) as conn:
            assert conn.execute("SELECT to_regclass('public.quotes')").fetchone() == (None,)
    finally:
        postgres.drop_database(first.name)
        postgres.drop_database(second.name)
    maintenance = PostgresDatabase(name="postgres", host=postgres.host, port=postgres.port)
    with psycopg.connect(maintenance.dsn) as conn:
        names = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", [[first.name, second.name]]
        ).fetchall()
    assert names == []


@pytest.mark.postgres
def test_bad_and_duplicate_database_names_are_refused(
    postgres: PostgresServer, postgres_db: PostgresDatabase
) -> None:
    for bad in ("Upper", "1leading_digit", "semi;colon", "x" * 64, ""):
        with pytest.raises(ConfigurationError, match="plain lower-case identifier"):
            postgres.create_database(bad)
    with pytest.raises(PostgresHarnessError, match="already exists"):
        postgres.create_database(postgres_db.name)


def test_unique_database_name_is_valid_and_fresh() -> None:
    names = {unique_database_name("test_thing[2024-01-03-param]") for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert name.startswith("test_thing_2024_01_03_param_")
        assert len(name) <= 63
    assert unique_database_name("9lives").startswith("db_9lives_")


@pytest.mark.postgres
def test_partitioned_assets_materialize_into_postgres(
    dagster_pg_instance: DagsterInstance, postgres_db: PostgresDatabase
) -> None:
    assert isinstance(dagster_pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(dagster_pg_instance.run_storage, PostgresRunStorage)

    result = materialize([prices, returns, signal], instance=dagster_pg_instance, partition_key=PARTITION)

    assert result.success
    assert result.output_for_node("signal") == 1.0
    with psycopg.connect(postgres_db.dsn) as conn:
        rows = conn.execute(
            "SELECT asset_key, partition, run_id FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY asset_key"
        ).fetchall()
        run_status = conn.execute("SELECT status FROM runs WHERE run_id = %s", [result.run_id]).fetchone()
    expected_keys = sorted(AssetKey(name).to_string() for name in ("prices", "returns", "signal"))
    assert [row[0] for row in rows] == expected_keys
    assert {(row[1], row[2]) for row in rows} == {(PARTITION, result.run_id)}
    assert run_status == (DagsterRunStatus.SUCCESS.value,)

    latest = dagster_pg_instance.get_latest_materialization_event(AssetKey("signal"))
    assert latest is not None
    assert latest.run_id == result.run_id
    assert latest.asset_materialization is not None
    assert latest.asset_materialization.partition == PARTITION


def test_sqlite_dagster_instance_is_real_and_ephemeral(dagster_instance: DagsterInstance) -> None:
    assert not isinstance(dagster_instance.event_log_storage, PostgresEventLogStorage)
    result = materialize([prices], instance=dagster_instance, partition_key=PARTITION)
    assert result.success
    latest = dagster_instance.get_latest_materialization_event(AssetKey("prices"))
    assert latest is not None and latest.run_id == result.run_id


@pytest.mark.postgres
def test_mlflow_tracking_and_registry_on_postgres(postgres_db: PostgresDatabase, tmp_path: Path) -> None:
    client = mlflow.MlflowClient(
        tracking_uri=postgres_db.sqlalchemy_url, registry_uri=postgres_db.sqlalchemy_url
    )
    experiment_id = client.create_experiment("harness", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(experiment_id)
    client.log_metric(run.info.run_id, "sharpe", 1.25, step=0)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("harness_model", description="registered by the harness test")

    assert client.get_experiment_by_name("harness").experiment_id == experiment_id
    history = client.get_metric_history(run.info.run_id, "sharpe")
    assert [(m.value, m.step) for m in history] == [(1.25, 0)]
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert client.get_registered_model("harness_model").description == "registered by the harness test"
    with psycopg.connect(postgres_db.dsn) as conn:
        stored = conn.execute("SELECT name FROM registered_models").fetchall()
        migrated = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert stored == [("harness_model",)]
    assert migrated is not None and migrated[0]


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres")  # skips (or fails under CI) exactly when the session server cannot start
def test_stop_removes_directory_and_server() -> None:
    server = PostgresServer()
    with server:
        directory = server.directory
        assert directory is not None and (directory / "data" / "postmaster.pid").exists()
        database = server.create_database("short_lived")
        with psycopg.connect(database.dsn) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not directory.exists()
    assert not server.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(database.dsn, connect_timeout=5)
    with pytest.raises(PostgresHarnessError, match="not running"):
        _ = server.port
    server.stop()  # idempotent


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres")
def test_interpreter_exit_removes_an_unstopped_server() -> None:
    script = (
        "import builtins\n"
        "from ml_platform.testing.postgres import PostgresServer\n"
        "server = PostgresServer()\n"
        "server.start()\n"
        "builtins.leaked_server = server  # never stopped, still referenced at exit\n"
        "print(server.directory)\n"
    )
    repo_root = Path(__file__).resolve().parents[2]
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=repo_root, capture_output=True, text=True, timeout=120, check=True
    )
    directory = Path(completed.stdout.strip())
    assert directory.name.startswith("mlp_pg_")
    assert not directory.exists()


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres")
def test_failed_start_quotes_log_and_cleans_up() -> None:
    server = PostgresServer(settings={"shared_buffers": "'not_a_size'"})
    with pytest.raises(PostgresHarnessError, match="shared_buffers") as raised:
        server.start()
    assert "server log tail" in str(raised.value)
    assert str(raised.value).count("POSTGRES_HARNESS_ERROR") == 1
    assert server.directory is not None and not server.directory.exists()
    assert not server.running


def test_missing_binaries_give_a_reason(tmp_path: Path) -> None:
    bin_dir, reason = find_postgres_binaries([tmp_path])
    assert bin_dir is None
    assert str(tmp_path) in reason and "initdb" in reason


def test_require_postgres_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(
        pytest.fail.Exception, match="PostgreSQL could not be started under CI=true: no initdb"
    ):
        require_postgres_or_skip("no initdb")


@pytest.mark.parametrize("ci_value", [None, "false", ""])
def test_require_postgres_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, ci_value: str | None) -> None:
    if ci_value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci_value)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL unavailable.*no initdb"):
        require_postgres_or_skip("no initdb")


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres")  # skips (or fails under CI) exactly when the session server cannot start
def test_restart_keeps_port_and_data_ends_sessions_and_the_ledger_reconnects() -> None:
    from ml_platform.champions.ledger import ChampionLedger
    from ml_platform.database import database_cause

    # its own server: restarting the session's would cut other tests' sessions; synchronous commits, since the
    # harness's default (off, for speed) lets an immediate shutdown lose the last commits, as a crash would
    with PostgresServer(settings={"synchronous_commit": "on"}) as server:
        database = server.create_database("restarted")
        port = server.port
        ledger = ChampionLedger(database.sqlalchemy_url)
        first = ledger.move("alpha", kind="promotion", to_version=1, actor="alice", approver="bob",
                            reason="before the restart")
        held = psycopg.connect(database.dsn, autocommit=True)
        try:
            server.restart()
            assert server.port == port
            with pytest.raises(psycopg.OperationalError) as ended:  # the session did not survive the restart
                held.execute("SELECT 1")
        finally:
            held.close()
        cause = database_cause(ended.value)
        assert cause is not None and cause.unreachable, cause
        assert ledger.head("alpha") == first  # its pool's dead connections are replaced, the entry is there
        ledger.move("alpha", kind="promotion", to_version=2, actor="alice", approver="bob", reason="after the restart")
        assert ledger.verify("alpha").ok
        ledger.close()
        server.restart("immediate")  # a crash: recovered from the write-ahead log
        with ChampionLedger(database.sqlalchemy_url, read_only=True) as reader:
            assert [e.to_version for e in reader.history("alpha")] == ["1", "2"]
        with pytest.raises(ConfigurationError, match="restart mode 'slow'"):
            server.restart("slow")
