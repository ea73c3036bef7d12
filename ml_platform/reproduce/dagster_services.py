"""An isolated Dagster deployment for one reproduction: its own instance, workspace, webserver and daemon.

How it works, and why: docs/architecture.md, "ml_platform/reproduce/dagster_services.py".
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from ml_platform.errors import ConfigurationError, ReproductionFailed
from ml_platform.reproduce.daemon import BACKFILL_TICK_SECONDS

__all__ = ["CodeLocation", "DagsterServices", "IsolatedDeployment", "ReproductionDagster", "create_instance_storage",
           "free_port", "graphql_request", "location_entry"]

_START_TIMEOUT = 180.0


def free_port() -> int:
    """A free TCP port on the loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class CodeLocation:
    """The old commit as a code location: ``module:attribute`` run by ``executable`` in ``working_directory``."""

    name: str
    module: str
    attribute: str
    working_directory: Path
    executable: Path

    def __post_init__(self) -> None:
        if not self.name.replace("_", "a").isalnum():
            raise ConfigurationError(f"code location name {self.name!r}: use letters, digits and _")
        if not self.module or not all(p.isidentifier() for p in self.module.split(".")):
            raise ConfigurationError(f"definitions module {self.module!r} is not a dotted Python module name")
        if not self.attribute.isidentifier():
            raise ConfigurationError(f"definitions attribute {self.attribute!r} is not a Python identifier")


@dataclass(frozen=True)
class IsolatedDeployment:
    """The files of one reproduction's Dagster deployment under ``root`` (the work directory).

    Attributes:
        root: the work directory.
        location: the old commit's code location.
        env: variables every Dagster process (webserver, daemon, code server, run workers) gets on top of
            this process's, e.g. ``ML_PLATFORM_HOME`` pointing into the work directory.
    """

    root: Path
    location: CodeLocation
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def workspace_file(self) -> Path:
        return self.root / "workspace.yaml"

    def write(self) -> None:
        """Write ``dagster/dagster.yaml`` and ``workspace.yaml`` (JSON is YAML: no YAML writer needed)."""
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        instance = {"telemetry": {"enabled": False},
                    "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}}
        (self.dagster_home / "dagster.yaml").write_text(json.dumps(instance, indent=2) + "\n")
        loc = self.location
        workspace = {"load_from": [{"python_module": {
            "module_name": loc.module, "attribute": loc.attribute, "location_name": loc.name,
            "working_directory": str(loc.working_directory), "executable_path": str(loc.executable)}}]}
        self.workspace_file.write_text(json.dumps(workspace, indent=2) + "\n")
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in
                          sorted({"DAGSTER_HOME": str(self.dagster_home), **self.env}.items()))
        script = self.root / "ui.sh"
        script.write_text("#!/usr/bin/env bash\n# The reproduction's Dagster UI again (its runs and backfill): "
                          "bash ui.sh [PORT]\n" + exports
                          + f"exec {shlex.quote(_dagster_bin('dagster-webserver'))} -w "
                          f"{shlex.quote(str(self.workspace_file))} -h 127.0.0.1 -p \"${{1:-3001}}\"\n")
        script.chmod(0o755)

    def process_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_PLATFORM_", "DAGSTER_"))}
        env.update({"DAGSTER_HOME": str(self.dagster_home), "PYTHONUNBUFFERED": "1"})
        env.update(self.env)
        return env


def create_instance_storage(home: Path) -> None:
    """Create the instance's SQLite databases (runs, event index, schedules) here, before the webserver and
    the daemon start: each would otherwise create them on first use, at the same moment, and Dagster's
    first-creation of ``runs.db`` is not safe under concurrency (both stamp the alembic head, and every later
    open fails with "Version table 'alembic_version' has more than one head")."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.from_config(str(home)):
        pass


def _dagster_bin(name: str) -> str:
    sibling = Path(sys.executable).with_name(name)
    if sibling.exists():
        return str(sibling)
    found = shutil.which(name)
    if found is None:
        raise ReproductionFailed(f"{name} is not installed next to {sys.executable} nor on PATH; install "
                                 "dagster-webserver (it brings both)")
    return found


class DagsterServices:
    """The webserver and daemon of an :class:`IsolatedDeployment`, started on entry and stopped on exit.

    ``graphql`` posts to the webserver's ``/graphql``; the daemon executes the backfills it launches,
    evaluating them every ``backfill_tick`` seconds (Dagster's own daemon ticks every 30 s). ``also_load``:
    further workspace files both load (``-w``); ``workspace_refresh``: seconds between the daemon's re-reads
    of them (Dagster: 60).
    """

    def __init__(self, deployment: IsolatedDeployment, *, port: int | None = None,
                 start_timeout: float = _START_TIMEOUT, backfill_tick: float = BACKFILL_TICK_SECONDS,
                 also_load: tuple[Path, ...] = (), workspace_refresh: float | None = None) -> None:
        if not backfill_tick > 0:
            raise ConfigurationError(f"backfill tick {backfill_tick!r} s: give a positive number of seconds")
        self.deployment = deployment
        self.also_load = also_load
        self.workspace_refresh = workspace_refresh
        self.backfill_tick = backfill_tick
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self._procs: list[subprocess.Popen[bytes]] = []
        self.url = f"http://127.0.0.1:{self.port}"

    # -- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        d = self.deployment
        d.write()
        create_instance_storage(d.dagster_home)
        logs = d.root / "logs"
        logs.mkdir(exist_ok=True)
        env = d.process_env()
        workspaces = [arg for path in (d.workspace_file, *self.also_load) for arg in ("-w", str(path))]
        refresh = ["--workspace-refresh", str(self.workspace_refresh)] if self.workspace_refresh else []
        try:
            self._start([_dagster_bin("dagster-webserver"), *workspaces, "-h", "127.0.0.1", "-p", str(self.port)],
                        logs / "webserver.log", env)
            # this process's Dagster daemon, with the backfill tick shortened (see ml_platform.reproduce.daemon)
            self._start([sys.executable, "-m", "ml_platform.reproduce.daemon", str(self.backfill_tick), *refresh,
                         "run", *workspaces], logs / "daemon.log", env)
            self._wait_loaded()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, cmd: list[str], log: Path, env: dict[str, str]) -> None:
        handle = log.open("ab")
        self._procs.append(subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                            cwd=str(self.deployment.root), start_new_session=True))
        handle.close()

    def stop(self) -> None:
        """Stop the daemon and the webserver (their process groups: code servers and run workers too)."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + 20
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        self._procs.clear()

    def _log_tail(self, name: str, lines: int = 25) -> str:
        path = self.deployment.root / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _wait_loaded(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = "the webserver did not answer"
        while time.monotonic() < deadline:
            for proc, name in zip(self._procs, ("webserver", "daemon"), strict=False):
                if proc.poll() is not None:
                    raise ReproductionFailed(f"dagster {name} exited with {proc.returncode} while starting:\n"
                                             f"{self._log_tail(name)}")
            try:
                status = self.location_status()
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                last = f"the webserver did not answer: {exc}"
                time.sleep(0.5)
                continue
            if status["loadStatus"] == "LOADED":
                error = load_error(status)
                if error:
                    raise ReproductionFailed(f"the old commit's code location {self.deployment.location.name} does "
                                             f"not load: {error}")
                return
            last = f"code location {status['loadStatus']}"
            time.sleep(0.5)
        raise ReproductionFailed(f"the reproduction's Dagster did not start within {self.start_timeout:.0f} s "
                                 f"({last}); see {self.deployment.root / 'logs'}")

    # -- GraphQL ------------------------------------------------------------------------------------
    @property
    def location_name(self) -> str:
        return self.deployment.location.name

    @property
    def logs(self) -> Path:
        """The webserver's and the daemon's logs."""
        return self.deployment.root / "logs"

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        return graphql_request(self.url, query, variables, timeout=timeout, whose="the reproduction's Dagster")

    def location_status(self) -> dict[str, Any]:
        return location_entry(self.graphql, self.location_name)


class ReproductionDagster(Protocol):
    """What a reproduction launches and polls through: its own isolated :class:`DagsterServices`, or
    production's Dagster with the old commit's location beside (:class:`~ml_platform.reproduce.beside.ProductionDagster`)."""

    url: str

    @property
    def location_name(self) -> str: ...

    @property
    def logs(self) -> Path: ...

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None,
                timeout: float = 60.0) -> dict[str, Any]: ...


def graphql_request(url: str, query: str, variables: Mapping[str, Any] | None = None, *, timeout: float = 60.0,
                    whose: str = "Dagster") -> dict[str, Any]:
    """POST ``query`` to ``url``/graphql; its ``data``.

    Raises:
        ReproductionFailed: the answer holds errors (the first one's message).
    """
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(f"{url}/graphql", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        data = json.loads(answer.read())
    if data.get("errors"):
        raise ReproductionFailed(f"{whose} refused a request: {data['errors'][0].get('message')}")
    return data["data"]


def load_error(entry: Mapping[str, Any]) -> str:
    """The Python error (with its causes) of a loaded workspace entry; empty when it loaded cleanly."""
    problem = entry.get("locationOrLoadError") or {}
    return " <- ".join(m.strip() for m in [problem.get("message") or ""]
                       + [c["message"] for c in problem.get("causes") or []] if m.strip())


def location_entry(graphql: Callable[..., dict[str, Any]], name: str) -> dict[str, Any]:
    """The workspace entry of code location ``name`` (``loadStatus`` ``MISSING`` when there is none)."""
    data = graphql("""
        query { workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
          locationOrLoadError { __typename ... on PythonError { message causes { message } } } } } } }""",
                   timeout=10)
    for entry in data["workspaceOrError"].get("locationEntries") or []:
        if entry["name"] == name:
            return entry
    return {"loadStatus": "MISSING"}
