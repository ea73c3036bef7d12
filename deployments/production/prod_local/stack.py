"""Start, stop and describe the whole stack, recording every process in the state folder as it starts."""

from __future__ import annotations

import secrets
import shlex
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from prod_local import services as sv
from prod_local.environment import Ports, ProcessHome, process_env, production_env
from prod_local.errors import StackError
from prod_local.processes import Service, free_port, port_listening, stop_services
from prod_local.state import StackState, forget_state, load_state, save_state

__all__ = ["WORKERS", "Layout", "client_env", "start", "status", "stop"]

#: The Celery workers: two, each with its own working directory, home and temporary folder.
WORKERS = ("worker-1", "worker-2")


@dataclass(frozen=True)
class Layout:
    """Where the stack's files are: the project's production configuration and the state folder.

    Attributes:
        repo: the checkout (the launcher runs the project from it).
        state: the state folder: ``state.json``, ``logs/<service>.log``, ``homes/<service>/``.
    """

    repo: Path
    state: Path

    @property
    def production(self) -> Path:
        return self.repo / "deployments" / "production"

    @property
    def dagster_yaml(self) -> Path:
        return self.production / "dagster.yaml"

    @property
    def workspace(self) -> Path:
        return self.production / "workspace.yaml"

    @property
    def celery_yaml(self) -> Path:
        return self.production / "celery.yaml"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def s3_data(self) -> Path:
        """The S3 server's data folder: its recording of every change, replayed on a restart."""
        return self.state / "s3-data"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def home(self, name: str) -> ProcessHome:
        """The local disk of process ``name``: ``homes/<name>`` (created, with the production dagster.yaml)."""
        home = ProcessHome(self.state / "homes" / name)
        home.create(self.dagster_yaml)
        return home

    @classmethod
    def default(cls, state: Path | None = None) -> Layout:
        repo = Path(__file__).resolve().parents[3]
        return cls(repo=repo, state=(state or repo / ".ml_platform" / "prod-local").resolve())


def start(layout: Layout, say: Callable[[str], None] = print, code_file: Path | None = None,
          extra_env: Mapping[str, str] | None = None) -> StackState:
    """Start every service, each on a free loopback port, and wait until each answers; the recorded state.

    ``code_file``: a Python file whose ``defs`` the code server serves instead of the project's (benchmarks).
    ``extra_env`` is added to the production variables of every service and of the client environment (the
    alert routes' endpoints and secrets, say: ``ML_PLATFORM_PAGERDUTY_ROUTING_KEY``).

    Raises:
        StackError: a live stack is recorded in the state folder already, or a service did not start (the stack
            started so far is stopped again; the message names the service and quotes its log).
    """
    recorded = load_state(layout.state)
    if recorded is not None:
        live = recorded.live()
        if live:
            raise StackError(f"a stack is already running from {layout.state} ({', '.join(live)}); "
                             "stop it first (make prod-local-stop)")
        say(f"the stack recorded in {layout.state} is no longer running; starting afresh")
        forget_state(layout.state)
    for required in (layout.dagster_yaml, layout.workspace, layout.celery_yaml):
        if not required.is_file():
            raise StackError(f"{required} is missing: the stack runs from the project's production configuration")
    layout.logs.mkdir(parents=True, exist_ok=True)
    # each process's local disk is scratch: a new stack starts from empty ones (the logs are kept, appended to)
    shutil.rmtree(layout.state / "homes", ignore_errors=True)
    shutil.rmtree(layout.s3_data, ignore_errors=True)  # and an empty S3 server (prod_local.s3_server)
    password = secrets.token_urlsafe(24)
    state = StackState(root=str(layout.state))
    save_state(state)
    try:
        return _start(layout, state, password, say, code_file, dict(extra_env or {}))
    except BaseException:
        say("starting failed: stopping what was started")
        current = load_state(layout.state)
        if current is not None:
            _stop_services(current, say=lambda _: None)
        raise


def _start(layout: Layout, state: StackState, password: str, say: Callable[[str], None],
           code_file: Path | None = None, extra_env: dict[str, str] | None = None) -> StackState:
    def record(service: Service) -> Service:
        nonlocal state
        state = state.with_service(service)
        save_state(state)
        return service

    say("starting PostgreSQL")
    postgres = sv.start_postgres(password)
    state = replace(state, postgres=postgres)
    save_state(state)
    ports = Ports(postgres=postgres.port, s3=free_port(), redis=free_port(), mlflow=free_port(),
                  code_server=free_port(), webserver=free_port())
    stack = production_env(ports, pg_password=password, s3_key=f"prod-local-{secrets.token_hex(4)}",
                           s3_secret=secrets.token_urlsafe(24), repo=layout.repo) | (extra_env or {})
    client = layout.home("client")
    state = replace(state, env={**stack, "DAGSTER_HOME": str(client.dagster_home)})
    save_state(state)

    def env(name: str) -> tuple[dict[str, str], Path, Path]:
        home = layout.home(name)
        return process_env(stack, home), home.cwd, layout.log(name)

    say("starting the S3 server, Redis, MLflow and the user-code server")
    s3 = record(sv.start_s3(ports.s3, *env("s3"), layout.s3_data))
    redis = record(sv.start_redis(ports.redis, *env("redis")))
    mlflow = record(sv.start_mlflow(ports.mlflow, postgres, *env("mlflow")))
    sv.create_instance_storage(*env("setup"))
    code = record(sv.start_code_server(ports.code_server, *env("code-server"), code_file=code_file))
    sv.wait_s3(s3, stack)
    sv.wait_redis(redis)
    workers = [record(sv.start_worker(name, layout.celery_yaml, *env(name))) for name in WORKERS]
    sv.wait_code_server(code)
    say("starting dagster-webserver and dagster-daemon")
    webserver = record(sv.start_webserver(ports.webserver, layout.workspace, *env("webserver")))
    daemon = record(sv.start_daemon(layout.workspace, *env("daemon")))
    sv.wait_mlflow(mlflow)
    sv.wait_webserver(webserver)
    for worker in workers:
        sv.wait_worker(worker)
    sv.wait_daemon(daemon, webserver)
    return state


def stop(layout: Layout, say: Callable[[str], None] = print) -> None:
    """End exactly the recorded processes (their process groups), stop PostgreSQL, and check no recorded port
    still listens; a no-op, with a message, when nothing is recorded.

    Raises:
        StackError: a recorded process or port outlived the stop (naming them); the state file is kept.
    """
    state = load_state(layout.state)
    if state is None:
        say(f"no stack recorded in {layout.state}: nothing to stop")
        return
    _stop_services(state, say)
    left = state.live()
    listening = {name: port for name, port in state.ports.items() if port_listening(port)}
    if left or listening:
        raise StackError(f"after stopping, still running: {', '.join(left) or 'nothing'}; still listening: "
                         f"{', '.join(f'{n} on {p}' for n, p in listening.items()) or 'nothing'}; "
                         f"see {layout.state / 'state.json'} for their pids")
    forget_state(layout.state)
    say(f"stopped; no recorded process left and no port listening ({', '.join(map(str, state.ports.values()))})")


def _stop_services(state: StackState, say: Callable[[str], None]) -> None:
    say("stopping " + ", ".join(f"{s.name} (process group {s.pid})" for s in reversed(state.services)))
    stop_services([*reversed(state.services), *state.retired])
    if state.postgres is not None:
        say("stopping PostgreSQL")
        state.postgres.stop()


def status(layout: Layout) -> str:
    """One line per recorded service: running or not, pid, port, URL."""
    state = load_state(layout.state)
    if state is None:
        return f"no stack recorded in {layout.state}"
    lines = []
    if state.postgres is not None:
        pg = state.postgres
        lines.append(f"postgres     {'running' if pg.running else 'stopped'}  port {pg.port}  data {pg.directory}")
    for s in state.services:
        running = "running" if s.alive() else "stopped"
        lines.append(f"{s.name:<12} {running}  pid {s.pid}" + (f"  port {s.port}" if s.port else "")
                     + (f"  {s.url}" if s.url else "") + f"  log {s.log}")
    return "\n".join(lines)


def urls(state: StackState) -> str:
    """What a person opens: the Dagster UI, MLflow, the S3 endpoint, the broker, PostgreSQL (no password)."""
    pg = state.postgres
    lines = [f"{s.name:<12} {s.url}" for s in state.services if s.url]
    if pg is not None:
        lines.append(f"{'postgres':<12} postgresql://{state.env.get('DAGSTER_PG_USERNAME')}@{pg.host}:{pg.port}"
                     " (databases dagster, mlflow; password: python -m prod_local env)")
    return "\n".join(lines)


def client_env(layout: Layout) -> str:
    """``export`` lines of the production environment pointing at the running stack (secrets included), for
    ``eval "$(python -m prod_local env)"`` before ``ml-platform`` commands or tests.

    Raises:
        StackError: no stack is recorded.
    """
    state = load_state(layout.state)
    if state is None:
        raise StackError(f"no stack recorded in {layout.state}; start one with make prod-local")
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(state.env.items()))
