"""The state file of a running stack: every process started, the PostgreSQL server, ports, URLs, the client
environment. Written after each service starts, so ``stop`` ends whatever a failed ``start`` left running."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ml_platform.testing.postgres import DetachedPostgres
from prod_local.errors import StackError
from prod_local.processes import Service

__all__ = ["StackState", "forget_state", "load_state", "save_state"]

STATE_FILE = "state.json"


@dataclass(frozen=True)
class StackState:
    """What ``start`` started, in order.

    Attributes:
        root: the state folder (logs, each process's home, this file).
        postgres: the detached PostgreSQL server, once started.
        services: every other process, in the order started (``stop`` ends them in reverse).
        env: the client environment (``python -m prod_local env``): the production variables, secrets included;
            the file is readable by its owner only.
    """

    root: str
    postgres: DetachedPostgres | None = None
    services: tuple[Service, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def with_service(self, service: Service) -> StackState:
        return replace(self, services=(*self.services, service))

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise StackError(f"the stack at {self.root} has no service {name!r} (it has "
                         f"{', '.join(s.name for s in self.services) or 'none'})")

    @property
    def ports(self) -> dict[str, int]:
        """Every recorded listening port by service name (PostgreSQL's as ``postgres``)."""
        ports = {s.name: s.port for s in self.services if s.port is not None}
        if self.postgres is not None:
            ports = {"postgres": self.postgres.port, **ports}
        return ports

    def live(self) -> list[str]:
        """The names of the recorded services still running (PostgreSQL's by its pid file)."""
        names = ["postgres"] if self.postgres is not None and self.postgres.running else []
        return names + [s.name for s in self.services if s.alive() or s.group_alive()]


def save_state(state: StackState) -> None:
    """Write the state file atomically, readable by its owner only (it holds the stack's secrets)."""
    path = Path(state.root) / STATE_FILE
    data: dict[str, Any] = {"root": state.root, "services": [asdict(s) for s in state.services],
                            "env": dict(state.env), "postgres": None}
    if state.postgres is not None:
        pg = state.postgres
        data["postgres"] = {"bin_dir": str(pg.bin_dir), "directory": str(pg.directory), "port": pg.port,
                            "run_as": pg.run_as}
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def load_state(root: Path) -> StackState | None:
    """The recorded stack under ``root``; None when there is none.

    Raises:
        StackError: the file is there but unreadable (naming it, and what to do).
    """
    path = root / STATE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pg = data.get("postgres")
        postgres = None if pg is None else DetachedPostgres(
            bin_dir=Path(pg["bin_dir"]), directory=Path(pg["directory"]), port=int(pg["port"]), run_as=pg["run_as"])
        services = tuple(Service(**s) for s in data["services"])
        return StackState(root=data["root"], postgres=postgres, services=services, env=dict(data["env"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StackError(f"the stack's state file {path} is unreadable ({exc}); end its processes by hand "
                         f"(their pids are in the file) and remove it") from exc


def forget_state(root: Path) -> None:
    (root / STATE_FILE).unlink(missing_ok=True)
