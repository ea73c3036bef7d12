"""The old commit as a second code location of production's own Dagster, beside the current one.

How it works, and why: docs/architecture.md, "ml_platform/reproduce/beside.py".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import subprocess
import tempfile
import time
import urllib.error
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import yaml

from ml_platform.compat import DAGSTER_WORKSPACE_REFRESH_SECONDS
from ml_platform.errors import ConfigurationError, ReproductionFailed
from ml_platform.reproduce.dagster_services import CodeLocation, graphql_request, load_error, location_entry

__all__ = ["BesideProduction", "ProductionDagster", "ReproductionWorkspace", "definition_keys", "interpreter_script"]



@dataclass(frozen=True)
class BesideProduction:
    """Where production's Dagster is, for a reproduction run beside its code location.

    Attributes:
        url: production's webserver (``http://host:3000``); its GraphQL launches the backfill and runs.
        workspace_file: the workspace file ml_platform manages, which production's webserver and daemon
            load besides their own (``-w workspace.yaml -w reproductions.yaml``); created if missing.
        daemon_refresh_seconds: how often production's daemon re-reads its workspace (Dagster: 60 s).
        keep_location: leave the old commit's location loaded after the reproduction (to browse its assets).
    """

    url: str
    workspace_file: Path
    daemon_refresh_seconds: float = DAGSTER_WORKSPACE_REFRESH_SECONDS
    keep_location: bool = False

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError(f"production's Dagster URL {self.url!r}: give the webserver's http(s) address, "
                                     "e.g. http://127.0.0.1:3000")
        if not self.daemon_refresh_seconds >= 0:
            raise ConfigurationError(f"daemon refresh {self.daemon_refresh_seconds!r} s: give a number of seconds >= 0")
        if self.workspace_file.suffix not in (".yaml", ".yml"):
            raise ConfigurationError(f"reproductions workspace {self.workspace_file}: give a .yaml file that "
                                     "production's webserver and daemon load (-w)")


def interpreter_script(path: Path, python: Path, env: Mapping[str, str]) -> Path:
    """Write the location's interpreter: drops every ``ML_PLATFORM_*`` variable it inherits, sets ``env``,
    and runs ``python`` (code server, run workers and step processes all start through it or from it).
    Each code server it starts is noted in :func:`server_starts_log` (the parent's process id)."""
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    starts = shlex.quote(str(server_starts_log(path)))
    path.write_text("#!/bin/sh\n# A reproduction's interpreter: the work directory's store and MLflow, never "
                    "production's.\nfor name in $(env | sed -n 's/^\\(ML_PLATFORM_[A-Za-z0-9_]*\\)=.*/\\1/p'); do "
                    "unset \"$name\"; done\n" + exports
                    + f'case " $* " in *" api grpc "*) echo "$PPID" >> {starts};; esac\n'
                    + f"exec {shlex.quote(str(python))} \"$@\"\n")
    path.chmod(0o755)
    return path


def server_starts_log(script: Path) -> Path:
    """Where the interpreter ``script`` notes the parent process of each code server it starts."""
    return script.with_name(script.name + ".servers")


def refreshed_by(starts_log: Path) -> str | None:
    """A process that started two code servers for the location (so finished a refresh that loaded it), or None."""
    if not starts_log.exists():
        return None
    seen: set[str] = set()
    for parent in starts_log.read_text().split():
        if parent in seen:
            return parent
        seen.add(parent)
    return None


_LIST_KEYS = """
import importlib, json, sys
defs = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
graph = defs.resolve_asset_graph() if hasattr(defs, "resolve_asset_graph") else defs.get_asset_graph()
print("ML_PLATFORM_KEYS " + json.dumps(sorted(k.path for k in graph.get_all_asset_keys())))
"""


def definition_keys(location: CodeLocation, timeout: float = 300.0) -> list[tuple[str, ...]]:
    """The asset keys of the old commit's Definitions, loaded once by the location's own interpreter.

    Raises:
        ReproductionFailed: the definitions do not load (the error's last lines are given).
    """
    try:
        done = subprocess.run([str(location.executable), "-c", _LIST_KEYS, location.module, location.attribute],
                              cwd=str(location.working_directory), capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ReproductionFailed(f"the old commit's definitions {location.module}:{location.attribute} did not "
                                 f"load within {timeout:.0f} s") from None
    line = next((l for l in done.stdout.splitlines() if l.startswith("ML_PLATFORM_KEYS ")), None)
    if done.returncode != 0 or line is None:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise ReproductionFailed(f"the old commit's definitions {location.module}:{location.attribute} do not load "
                                 f"in its environment:\n{tail}")
    return [tuple(path) for path in json.loads(line.split(" ", 1)[1])]


def check_namespaced(keys: Sequence[tuple[str, ...]], namespace: Sequence[str]) -> None:
    """Refuse a location with a key outside ``namespace``: beside production it could shadow production's.

    Raises:
        ReproductionFailed: naming the first keys outside, and what to do.
    """
    n = tuple(namespace)
    outside = ["/".join(k) for k in keys if tuple(k[: len(n)]) != n]
    if outside or not keys:
        raise ReproductionFailed(
            f"the old commit's assets are not all under {'/'.join(n)} (e.g. {outside[:3]}): its ml_platform predates "
            "key namespaces, or its Definitions are not built with build_definitions. Loaded beside production's "
            "code location they would collide with production's keys; reproduce it in its own Dagster instance "
            "instead (without --dagster-url)")


class ReproductionWorkspace:
    """The workspace file of reproductions' code locations; every change under a lock and written whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[dict[str, Any]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self.entries()
            yield entries
            text = ("# Code locations of running reproductions, managed by `ml-platform reproduce`: production's "
                    "webserver and daemon load this file with -w besides their own workspace.\n"
                    + yaml.safe_dump({"load_from": entries}, sort_keys=False))
            handle, temporary = tempfile.mkstemp(prefix=".ws-", dir=str(self.path.parent))
            with os.fdopen(handle, "w") as out:
                out.write(text)
            os.replace(temporary, self.path)

    def entries(self) -> list[dict[str, Any]]:
        """The locations in the file (none when it does not exist yet)."""
        if not self.path.exists():
            return []
        data = yaml.safe_load(self.path.read_text()) or {}
        entries = data.get("load_from") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigurationError(f"{self.path} is not a workspace file (no load_from list); give the file "
                                     "that holds reproductions' locations only")
        return entries

    def names(self) -> list[str]:
        return [next(iter(e.values())).get("location_name", "") for e in self.entries() if isinstance(e, dict)]

    def add(self, location: CodeLocation) -> None:
        """Add ``location`` (a ``python_module`` entry with its interpreter and working directory).

        Raises:
            ReproductionFailed: a location of that name is there already (another reproduction of the commit).
        """
        with self._locked() as entries:
            if location.name in [next(iter(e.values())).get("location_name") for e in entries]:
                raise ReproductionFailed(f"code location {location.name} is already in {self.path}: another "
                                         "reproduction of this commit is running; wait for it, or remove its entry "
                                         "if it was interrupted")
            entries.append({"python_module": {
                "module_name": location.module, "attribute": location.attribute, "location_name": location.name,
                "working_directory": str(location.working_directory), "executable_path": str(location.executable)}})

    def remove(self, name: str) -> None:
        with self._locked() as entries:
            entries[:] = [e for e in entries if next(iter(e.values())).get("location_name") != name]


class ProductionDagster:
    """The old commit's location added to production's Dagster on entry and taken out on exit.

    The same interface as :class:`~ml_platform.reproduce.dagster_services.DagsterServices`: ``graphql``, ``url``,
    ``location_name`` and ``logs``.
    """

    def __init__(self, target: BesideProduction, location: CodeLocation, *, logs: Path,
                 start_timeout: float = 300.0) -> None:
        self.target = target
        self.location = location
        self.location_name = location.name
        self.url = target.url.rstrip("/")
        self.logs = logs
        self.start_timeout = start_timeout
        self.workspace = ReproductionWorkspace(target.workspace_file)
        self._added = False

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        return graphql_request(self.url, query, variables, timeout=timeout, whose="production's Dagster")

    @staticmethod
    def ping(url: str) -> None:
        """Raises:
            ReproductionFailed: nothing answers Dagster's GraphQL at ``url``."""
        try:
            graphql_request(url.rstrip("/"), "query { version }", timeout=10, whose="production's Dagster")
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            raise ReproductionFailed(f"production's Dagster webserver does not answer at {url}: {exc}") from None

    def __enter__(self) -> Self:
        self.ping(self.url)
        self.workspace.add(self.location)
        self._added = True
        try:
            self._reload_and_wait()
            if self.target.daemon_refresh_seconds:
                self._wait_for_daemon()
        except BaseException:
            self._take_out()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.target.keep_location:
            self._take_out()

    def _take_out(self) -> None:
        if not self._added:
            return
        self.workspace.remove(self.location_name)
        self._added = False
        with contextlib.suppress(ReproductionFailed, urllib.error.URLError, ConnectionError, OSError):
            self.graphql("mutation { reloadWorkspace { __typename } }", timeout=120)

    def _wait_for_daemon(self) -> None:
        """Until the daemon (which executes backfills from its own copy of the workspace) has loaded the location."""
        log = server_starts_log(self.location.executable)
        limit = 3 * self.target.daemon_refresh_seconds + self.start_timeout
        deadline = time.monotonic() + limit
        while refreshed_by(log) is None:
            if time.monotonic() > deadline:
                raise ReproductionFailed(
                    f"production's daemon did not load code location {self.location_name} within "
                    f"{limit:.0f} s: is it running, with -w {self.target.workspace_file}, "
                    f"and does it re-read its workspace every {self.target.daemon_refresh_seconds:.0f} s?")
            time.sleep(1.0)

    def _reload_and_wait(self) -> None:
        answer = self.graphql("mutation { reloadWorkspace { __typename ... on PythonError { message } } }",
                              timeout=300)["reloadWorkspace"]
        if answer["__typename"] != "Workspace":
            raise ReproductionFailed(f"production's Dagster did not reload its workspace: {answer.get('message', answer)}")
        deadline = time.monotonic() + self.start_timeout
        while True:
            entry = location_entry(self.graphql, self.location_name)
            if entry["loadStatus"] == "MISSING":
                raise ReproductionFailed(
                    f"production's Dagster at {self.url} does not load {self.target.workspace_file}: start its "
                    f"webserver and daemon with -w {self.target.workspace_file} besides their own workspace "
                    "(dagster dev fixes its code locations when it starts: run dagster-webserver and dagster-daemon, "
                    "or reproduce without --dagster-url in an instance of its own)")
            if entry["loadStatus"] == "LOADED":
                error = load_error(entry)
                if error:
                    raise ReproductionFailed(f"the old commit's code location {self.location_name} does not load in "
                                             f"production's Dagster: {error}")
                return
            if time.monotonic() > deadline:
                raise ReproductionFailed(f"code location {self.location_name} did not load within "
                                         f"{self.start_timeout:.0f} s in production's Dagster")
            time.sleep(0.5)
