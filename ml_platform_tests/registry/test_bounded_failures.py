"""Registry failures are bounded and clear: a locked, read-only or unreachable store is one RegistryError.

The database's own message comes first, after the store it concerns; a busy SQLite database is
waited on for ``busy_timeout_seconds`` (MLflow alone waits 20 s); the CLI prints one line and exits 2,
never a traceback, and MLflow's HTTP retries are lowered only while a command runs.

A bound is checked where the driver applies it, never by timing it (a loaded machine stretches any
wait): the ``PRAGMA busy_timeout`` of the very sqlite3 connection a statement failed on, and the
``connect_timeout`` handed to psycopg (:mod:`ml_platform_tests.harness.driver_probe`). A wait's lower
bound is still timed where it shows SQLite did wait: load only lengthens a wait.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy
from click.testing import CliRunner
from mlflow.exceptions import MlflowException

from ml_platform import compat
from ml_platform.cli import main
from ml_platform.cli.models import CLI_HTTP_LIMITS, cli_http_limits
from ml_platform.errors import ConfigurationError, RegistryError, RegistryUnavailable
from ml_platform.registry import entities
from ml_platform.registry.boundary import mlflow_errors, store_label
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.harness.driver_probe import (
    SITECUSTOMIZE,
    FailedStatement,
    connect_attempts,
    read_recorded_failures,
    sqlite_failures,
)
from ml_platform_tests.harness.mlflow_template import copy_mlflow_template
from ml_platform_tests.harness.secrets import chain_text
from ml_platform_tests.registry.conftest import CODE_SNAPSHOT, make_contract, make_model, mlflow_client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> ModelRegistry:
    folder = tmp_path_factory.mktemp("bounded")
    database = copy_mlflow_template(mlflow_template, folder / "mlflow.db")
    registry = ModelRegistry(f"sqlite:///{database}", artifact_location=str(folder / "artifacts"))
    model = make_model()
    registry.register(model_name="bounded", model=model, contract=make_contract("bounded", model), params={},
                      metrics={}, code_snapshot=CODE_SNAPSHOT)
    return registry


@contextmanager
def locked(registry: ModelRegistry) -> Iterator[None]:
    """Another connection holds an exclusive lock on the registry's SQLite database."""
    assert registry.sqlite_file is not None
    connection = sqlite3.connect(registry.sqlite_file, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` cannot be written by this process: mode 0444, or for root (who ignores modes) the immutable flag."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], check=False, capture_output=True).returncode != 0:
        pytest.skip("running as root without a usable chattr: a file cannot be made read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def _cli(*args: str) -> tuple[int, str, float]:
    """Exit code, output, and seconds taken (only ever compared as a lower bound)."""
    started = time.perf_counter()
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output, time.perf_counter() - started


def assert_locked_under(failures: list[FailedStatement], busy_timeout_ms: int) -> None:
    """Each statement failed on the lock, on a connection whose busy timeout was the registry's bound."""
    assert failures, "no statement failed on a sqlite3 connection"
    assert [(f.error, f.busy_timeout_ms) for f in failures] == [("database is locked", busy_timeout_ms)] * len(
        failures), failures


# -- a locked database -----------------------------------------------------------------------------


def test_a_locked_database_fails_a_connected_registry_after_the_bounded_wait(store: ModelRegistry) -> None:
    registry = ModelRegistry(store.tracking_uri, busy_timeout_seconds=0.5)
    registry.list_models()  # connected before the lock is taken
    with locked(store), sqlite_failures() as failures:
        started = time.perf_counter()
        with pytest.raises(RegistryUnavailable) as caught:
            registry.list_models()
        elapsed = time.perf_counter() - started
    assert_locked_under(failures, 500)  # the registry's 0.5 s reached SQLite, not MLflow's 20 s
    assert elapsed >= 0.4, elapsed  # and SQLite did wait before giving up
    assert str(caught.value).startswith(
        f"[REGISTRY_UNAVAILABLE] MLflow store {store.tracking_uri}: database is locked (sqlite3.OperationalError): "
        "still locked by another connection after waiting 0.5 s, while trying to list registered models")
    assert registry.list_models()  # and works again once the lock is gone


@pytest.mark.parametrize("command", [["models", "list"], ["models", "show", "bounded"], ["registry", "repair"],
                                     ["registry", "repair", "--check"]])
def test_a_locked_database_is_one_line_and_exit_2_from_the_cli_within_the_bound(
    store: ModelRegistry, command: list[str]
) -> None:
    with locked(store), sqlite_failures() as failures:
        code, output, elapsed = _cli(*command, "--tracking-uri", store.tracking_uri, "--busy-timeout", "1")
    assert code == 2, output
    assert output.count("\n") == 1 and "Traceback" not in output, output
    assert output.startswith(f"error: [REGISTRY_UNAVAILABLE] MLflow store {store.tracking_uri}: database is locked "
                             "(sqlite3.OperationalError): still locked by another connection after waiting 1 s"), output
    assert_locked_under(failures, 1000)  # --busy-timeout 1 reached SQLite
    assert elapsed >= 0.9, elapsed  # and SQLite did wait before giving up


def test_the_real_cli_prints_one_line_and_no_traceback_on_a_locked_database(store: ModelRegistry,
                                                                            tmp_path: Path) -> None:
    # The child records each statement that fails on SQLite, with that connection's busy timeout
    # (a sitecustomize of the harness's; the command line stays `python -m ml_platform.cli`).
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(SITECUSTOMIZE)
    recorded = tmp_path / "failures.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(probe), str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "ML_PLATFORM_TEST_SQLITE_FAILURES": str(recorded)}
    with locked(store):
        result = subprocess.run([sys.executable, "-m", "ml_platform.cli", "models", "list", "--tracking-uri",
                                 store.tracking_uri, "--busy-timeout", "1"], check=False, capture_output=True,
                                text=True, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: [REGISTRY_UNAVAILABLE] MLflow store sqlite:///"), \
        result.stderr
    assert_locked_under(read_recorded_failures(recorded), 1000)  # the real process waited 1 s, not 20


# -- a read-only database --------------------------------------------------------------------------


def test_a_read_only_database_reports_the_real_cause_first(store: ModelRegistry, tmp_path: Path) -> None:
    assert store.sqlite_file is not None
    # A run a killed registration left, for repair to end; the copy is opened only once it is read-only.
    client = mlflow_client(store)
    run_id = client.create_run(store.experiment_id("ml_platform"), tags={entities.MODEL_NAME_TAG: "bounded"}).info.run_id
    copy = tmp_path / "mlflow.db"
    shutil.copy(store.sqlite_file, copy)
    client.set_terminated(run_id, "FINISHED")
    registry = ModelRegistry(f"sqlite:///{copy}", artifact_location=str(tmp_path / "artifacts"))
    head = f"MLflow store sqlite:///{copy}: attempt to write a readonly database (sqlite3.OperationalError), "
    with read_only(copy):
        model = make_model(0.5)
        with pytest.raises(RegistryError) as caught:
            registry.register(model_name="bounded", model=model, contract=make_contract("bounded", model),
                              params={}, metrics={}, code_snapshot=CODE_SNAPSHOT)
        assert str(caught.value).startswith(f"[REGISTRY_ERROR] {head}while trying to start a training run"), \
            str(caught.value)
        assert "autoflush" not in str(caught.value) and "[SQL:" not in str(caught.value)
        code, output, _ = _cli("registry", "repair", "--stale-after", "0", "--tracking-uri", registry.tracking_uri)
    assert code == 2 and output.count("\n") == 1, output
    assert output.startswith(f"error: [REGISTRY_ERROR] {head}while trying to end run {run_id}"), output
    assert output.rstrip().endswith("make the database file and its folder writable for this user")
    assert "autoflush" not in output


# -- an unreachable server -------------------------------------------------------------------------


def test_an_unreachable_postgresql_store_fails_fast_naming_it_without_its_password() -> None:
    registry = ModelRegistry("postgresql+psycopg://alice:s3cret@127.0.0.1:1/mlflow", busy_timeout_seconds=2)
    with connect_attempts() as attempts, pytest.raises(RegistryUnavailable) as caught:
        registry.list_models()
    # one connection attempt, bounded by the registry's 2 s: MLflow alone retries the engine ten times (~100 s)
    assert [attempt.get("connect_timeout") for attempt in attempts] == [2], attempts
    message = str(caught.value)
    assert message.startswith("[REGISTRY_UNAVAILABLE] MLflow store postgresql+psycopg://alice:***@127.0.0.1:1/mlflow: ")
    assert "(psycopg.OperationalError)" in message and "s3cret" not in message
    assert "s3cret" not in repr(registry)


def test_an_unreachable_mlflow_server_is_named_by_its_address_and_what_to_do(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a real port nobody listens on: bound, never listened, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    registry = ModelRegistry(f"http://user:s3cret@127.0.0.1:{port}/")
    with pytest.raises(RegistryUnavailable) as caught:
        registry.list_models()
    message = str(caught.value)
    assert message.startswith(f"[REGISTRY_UNAVAILABLE] MLflow server at http://127.0.0.1:{port} unreachable "
                              "(Connection refused) while trying to list registered models; check that the MLflow "
                              "tracking server is up"), message
    assert "s3cret" not in message and "HTTPConnectionPool" not in message


def test_an_mlflow_server_that_answers_with_an_error_is_not_called_unreachable() -> None:
    with pytest.raises(RegistryError) as caught, mlflow_errors("act", store="http://127.0.0.1:5000"):
        raise MlflowException("API request to http://127.0.0.1:5000/x failed with exception too many 500 error "
                              "responses", error_code="INTERNAL_ERROR")
    assert type(caught.value) is RegistryError and "unreachable" not in str(caught.value)


# -- the mapping itself ----------------------------------------------------------------------------


def _sqlalchemy_error(message: str) -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("INSERT INTO runs VALUES (?)", (1,), sqlite3.OperationalError(message))


@pytest.mark.parametrize(
    ("raised", "expected_type", "expected"),
    [
        (_sqlalchemy_error("disk I/O error"), RegistryError,
         "[REGISTRY_ERROR] MLflow store S: disk I/O error (sqlite3.OperationalError), while trying to act"),
        (sqlite3.DatabaseError("file is not a database"), RegistryError,
         "[REGISTRY_ERROR] MLflow store S: file is not a database (sqlite3.DatabaseError), while trying to act"),
        (sqlalchemy.exc.ArgumentError("Could not parse SQLAlchemy URL"), RegistryError,
         ("[REGISTRY_ERROR] MLflow store S: Could not parse SQLAlchemy URL (sqlalchemy.exc.ArgumentError), while "
          "trying to act")),
        (ValueError("odd"), RegistryError, "[REGISTRY_ERROR] MLflow store S: failed to act: ValueError: odd"),
        (MlflowException("nope", error_code="RESOURCE_DOES_NOT_EXIST"), RegistryError,
         "[REGISTRY_ERROR] MLflow store S: failed to act: nope"),
    ],
)
def test_every_driver_and_sqlalchemy_error_becomes_a_registry_error_cause_first(
    raised: Exception, expected_type: type[Exception], expected: str
) -> None:
    with pytest.raises(expected_type) as caught, mlflow_errors("act", store="S"):
        raise raised
    assert str(caught.value) == expected
    assert caught.value.__cause__ is raised


def test_an_mlflow_exception_wrapping_a_database_error_is_reported_by_the_database_error() -> None:
    expected = (r"^\[REGISTRY_ERROR\] MLflow store S: attempt to write a readonly database "
                r"\(sqlite3.OperationalError\), while trying to act; make")
    with pytest.raises(RegistryError, match=expected), mlflow_errors("act", store="S"):
        try:
            raise _sqlalchemy_error("attempt to write a readonly database")
        except sqlalchemy.exc.OperationalError as exc:  # what MLflow's session wrapper does
            raise MlflowException(message=str(exc), error_code="TEMPORARILY_UNAVAILABLE") from exc


def test_the_busy_timeout_is_rewritten_only_inside_registry_calls() -> None:
    compat.install_sqlite_wait_bounds()
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as connection:
        def current() -> int:
            connection.exec_driver_sql("PRAGMA busy_timeout = 20000;")  # what MLflow runs in every session
            return int(connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one())

        assert current() == 20000
        with compat.bounded_sqlite_waits(0.25):
            assert current() == 250
        assert current() == 20000


def test_store_labels_hide_passwords_only() -> None:
    assert store_label("postgresql+psycopg://u:p%40ss@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert store_label("postgresql://u@h/db") == "postgresql://u@h/db"
    assert store_label("sqlite:////tmp/a:b/mlflow.db") == "sqlite:////tmp/a:b/mlflow.db"
    assert store_label("https://user:token@mlflow.example.com") == "https://user:***@mlflow.example.com"


@pytest.mark.parametrize("raised", [
    MlflowException("API request to https://ml:hunter2@mlflow.example.com/api/2.0/x failed", error_code="INTERNAL"),
    sqlalchemy.exc.ArgumentError("Could not parse postgresql://ml:hunter2@db:5432/mlflow"),
    OSError("cannot reach s3://bucket/x?X-Amz-Signature=hunter2"),
])
def test_a_failure_quoting_a_credential_is_reported_without_it_even_in_its_chain(raised: Exception) -> None:
    with pytest.raises(RegistryError) as caught, mlflow_errors("act", store="postgresql://ml:hunter2@db/mlflow"):
        raise raised
    assert "hunter2" not in chain_text(caught.value) and "***" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("value", [-1, 3601, "5", True, float("nan")])
def test_a_bad_busy_timeout_is_refused(value: object) -> None:
    with pytest.raises(ConfigurationError, match="busy_timeout_seconds must be a number of seconds"):
        ModelRegistry("sqlite:///x.db", busy_timeout_seconds=value)  # type: ignore[arg-type]


# -- MLflow's HTTP retries on CLI paths ------------------------------------------------------------


def test_cli_paths_lower_mlflows_http_retries_only_while_a_command_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLI_HTTP_LIMITS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # a choice of the environment is kept
    with cli_http_limits():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"


def test_importing_the_cli_sets_no_mlflow_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    code = ("import os, ml_platform.cli, ml_platform.cli.models, ml_platform.registry.store\n"
            "print(sorted(k for k in os.environ if k.startswith('MLFLOW_')))")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
