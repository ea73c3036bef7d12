"""Each service of the stack: how it is started (from the machine's binaries and the project's files) and how
its readiness is judged. Every function returns once its service answers, or raises naming it with its log."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import psycopg
from psycopg import sql

from ml_platform.reproduce.dagster_services import graphql_request, load_error, location_entry
from ml_platform.testing.postgres import DetachedPostgres, PostgresDatabase, PostgresServer
from prod_local.environment import (
    BUCKET,
    DAGSTER_DB,
    MLFLOW_ARTIFACTS_DESTINATION,
    MLFLOW_DB,
    PG_USER,
    REGION,
)
from prod_local.errors import StackError
from prod_local.processes import HOST, Service, log_tail, spawn, wait_until

__all__ = ["CODE_LOCATION", "create_instance_storage", "start_code_server", "start_daemon",
           "start_mlflow", "start_postgres", "start_redis", "start_s3", "start_webserver", "start_worker",
           "wait_code_server", "wait_daemon", "wait_mlflow", "wait_redis", "wait_s3", "wait_webserver",
           "wait_worker"]

CODE_LOCATION = "quant_alpha"
#: Bounded waits, generous: the machine may be a busy 2-core one, and MLflow migrates its schema on first start.
SERVER_TIMEOUT = 300.0
DAGSTER_TIMEOUT = 600.0


def _bin(name: str) -> str:
    sibling = Path(sys.executable).with_name(name)
    if sibling.exists():
        return str(sibling)
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} is installed neither next to {sys.executable} nor on PATH; run make env")
    return found


# -- PostgreSQL ------------------------------------------------------------------------------------------------
def start_postgres(password: str) -> DetachedPostgres:
    """A PostgreSQL server from the machine's binaries (the test harness's), left running: the role ``ml_platform``
    with ``password``, which the server demands over TCP (scram-sha-256), owning databases ``dagster`` and
    ``mlflow`` (MLflow's stores, the champion ledger and the alert outboxes)."""
    server = PostgresServer()
    server.start()
    try:
        admin = PostgresDatabase(name="postgres", host=server.host, port=server.port)
        with psycopg.connect(admin.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(PG_USER),
                                                                             sql.Literal(password)))
            for name in (DAGSTER_DB, MLFLOW_DB):
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name),
                                                                           sql.Identifier(PG_USER)))
            hba = Path(conn.execute("SHOW hba_file").fetchone()[0])  # type: ignore[index]
            # first match wins: the stack's role must give its password; the harness's superuser stays trusted
            hba.write_text(f"host all {PG_USER} {HOST}/32 scram-sha-256\n" + hba.read_text())
            conn.execute("SELECT pg_reload_conf()")
        return server.detach()
    except BaseException:
        server.stop()
        raise


# -- S3 --------------------------------------------------------------------------------------------------------
def start_s3(port: int, env: Mapping[str, str], cwd: Path, log: Path) -> Service:
    """moto's S3 server (a real S3 HTTP API) on the loopback; its objects live in its memory."""
    return spawn("s3", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)], env=env, cwd=cwd,
                 log=log, port=port, url=f"http://{HOST}:{port}")


def wait_s3(service: Service, env: Mapping[str, str]) -> None:
    """Wait for the S3 server and create the stack's bucket."""
    import boto3

    def bucket() -> bool:
        client = boto3.client("s3", endpoint_url=service.url, region_name=REGION,
                              aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket=BUCKET)
        return True

    wait_until(service, bucket, timeout=SERVER_TIMEOUT, what=f"creating bucket {BUCKET}")


# -- Redis -----------------------------------------------------------------------------------------------------
def start_redis(port: int, env: Mapping[str, str], cwd: Path, log: Path) -> Service:
    """redis-server as the Celery broker and result backend: no persistence (queued steps are the runs' state in
    PostgreSQL; a lost queue fails the runs, which run monitoring and retries handle)."""
    return spawn("redis", [_bin("redis-server"), "--bind", HOST, "--port", str(port), "--save", "",
                           "--appendonly", "no", "--dir", str(cwd)],
                 env=env, cwd=cwd, log=log, port=port, url=f"redis://{HOST}:{port}")


def wait_redis(service: Service) -> None:
    def pong() -> bool | str:
        with socket.create_connection((HOST, service.port or 0), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
        return answer.startswith(b"+PONG") or f"answered {answer!r}"

    wait_until(service, pong, timeout=SERVER_TIMEOUT, what="PING")


# -- MLflow ----------------------------------------------------------------------------------------------------
def start_mlflow(port: int, postgres: DetachedPostgres, env: Mapping[str, str], cwd: Path, log: Path) -> Service:
    """The MLflow tracking server: tracking store and registry on PostgreSQL (password from ``PGPASSWORD``), the
    artefacts proxied (``--serve-artifacts``) to the S3 bucket, so clients need no S3 credentials."""
    backend = f"postgresql+psycopg://{PG_USER}@{HOST}:{postgres.port}/{MLFLOW_DB}"
    # MLflow's server-side job runner (GenAI evaluation jobs; seven huey consumers) serves nothing here
    env = {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return spawn("mlflow", [_bin("mlflow"), "server", "--backend-store-uri", backend, "--serve-artifacts",
                            "--artifacts-destination", MLFLOW_ARTIFACTS_DESTINATION, "--host", HOST,
                            "--port", str(port), "--workers", "1"],
                 env=env, cwd=cwd, log=log, port=port, url=f"http://{HOST}:{port}")


def wait_mlflow(service: Service) -> None:
    def health() -> bool | str:
        with urllib.request.urlopen(f"{service.url}/health", timeout=5) as answer:
            return answer.status == 200 or f"HTTP {answer.status}"

    wait_until(service, health, timeout=SERVER_TIMEOUT, what="GET /health")


# -- Dagster ---------------------------------------------------------------------------------------------------
def create_instance_storage(env: Mapping[str, str], cwd: Path, log: Path) -> None:
    """Create Dagster's tables in PostgreSQL once, before the webserver, the daemon and the workers each try at
    the same moment (the first creation stamps the schema version and is not safe under concurrency)."""
    command = [sys.executable, "-c", "import dagster; dagster.DagsterInstance.get().dispose()"]
    with log.open("ab") as handle:
        done = subprocess.run(command, env=dict(env), cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
                              timeout=SERVER_TIMEOUT, check=False)
    if done.returncode != 0:
        raise StackError(f"creating Dagster's storage in PostgreSQL failed ({done.returncode}); {log}:\n"
                         f"{log_tail(log)}")


def start_code_server(port: int, env: Mapping[str, str], cwd: Path, log: Path) -> Service:
    """The project's user-code gRPC server: the webserver and the daemon load the Definitions from it, and it
    starts each run's worker process (Dagster's default run launcher)."""
    return spawn("code-server", [_bin("dagster"), "api", "grpc", "-m", "quant_alpha.definitions", "-a", "defs",
                                 "-h", HOST, "-p", str(port), "--location-name", CODE_LOCATION],
                 env=env, cwd=cwd, log=log, port=port, url=f"grpc://{HOST}:{port}")


def wait_code_server(service: Service) -> None:
    from dagster._grpc.client import DagsterGrpcClient

    def ping() -> bool:
        DagsterGrpcClient(port=service.port, host=HOST).ping("prod-local")
        return True

    wait_until(service, ping, timeout=DAGSTER_TIMEOUT, what="gRPC ping")


def start_webserver(port: int, workspace: Path, env: Mapping[str, str], cwd: Path, log: Path) -> Service:
    return spawn("webserver", [_bin("dagster-webserver"), "-w", str(workspace), "-h", HOST, "-p", str(port)],
                 env=env, cwd=cwd, log=log, port=port, url=f"http://{HOST}:{port}")


def wait_webserver(service: Service) -> None:
    def loaded() -> bool | str:
        entry = location_entry(lambda q, v=None, timeout=10: graphql_request(service.url or "", q, v,
                                                                                timeout=timeout), CODE_LOCATION)
        if entry["loadStatus"] != "LOADED":
            return f"code location {CODE_LOCATION} {entry['loadStatus']}"
        error = load_error(entry)
        if error:
            raise StackError(f"the code location {CODE_LOCATION} does not load: {error}")
        return True

    wait_until(service, loaded, timeout=DAGSTER_TIMEOUT, what=f"code location {CODE_LOCATION} loaded")


def start_daemon(workspace: Path, env: Mapping[str, str], cwd: Path, log: Path) -> Service:
    return spawn("daemon", [_bin("dagster-daemon"), "run", "-w", str(workspace)], env=env, cwd=cwd, log=log)


def wait_daemon(service: Service, webserver: Service) -> None:
    """Wait until every daemon the instance requires (run queue, backfills, sensors, schedules, monitoring ...)
    reports healthy, as the webserver sees them."""
    query = "query { instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"

    def healthy() -> bool | str:
        data = graphql_request(webserver.url or "", query, timeout=10)
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        waiting = [s["daemonType"] for s in statuses if s["required"] and not s["healthy"]]
        return not waiting or f"not yet healthy: {', '.join(waiting)}"

    wait_until(service, healthy, timeout=DAGSTER_TIMEOUT, what="every required daemon healthy")


def start_worker(name: str, celery_yaml: Path, env: Mapping[str, str], cwd: Path, log: Path) -> Service:
    """A Celery worker taking step tasks from the broker (``dagster-celery worker start``), one step at a time."""
    return spawn(name, [_bin("dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(celery_yaml),
                        "-n", name, "-q", "dagster", "--", "--concurrency=1"],
                 env=env, cwd=cwd, log=log)


def wait_worker(service: Service) -> None:
    def ready() -> bool | str:
        text = Path(service.log).read_text(encoding="utf-8", errors="replace")
        return (f"{service.name}@" in text and " ready." in text) or "no 'ready.' line in its log yet"

    wait_until(service, ready, timeout=DAGSTER_TIMEOUT, what="connected to the broker")
