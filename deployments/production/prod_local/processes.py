"""Start a service as its own process group, tell whether it is still that process, stop it, probe ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from prod_local.errors import StackError

__all__ = ["HOST", "Service", "free_port", "group_members", "log_tail", "port_listening", "spawn", "stop_services", "wait_until"]

HOST = "127.0.0.1"
_TAIL_LINES = 30


@dataclass(frozen=True)
class Service:
    """One started process: its group (which holds its children: run workers, Celery's pool) and how to reach it.

    Attributes:
        name: the service's role (``mlflow``, ``webserver``, ``worker-1`` ...).
        pid: the leader's pid, which is also its process group (each service starts its own session).
        started: the leader's start time in clock ticks since boot (``/proc/PID/stat``): a pid reused by
            another process after this one ended does not match, so ``stop`` never signals a stranger.
        port: the TCP port it listens on (None: a Celery worker listens on none).
        log: its stdout and stderr.
        url: where a person or a client reaches it, if anywhere.
    """

    name: str
    pid: int
    started: int
    port: int | None
    log: str
    url: str | None = None

    def alive(self) -> bool:
        """Whether the leader still runs and is the process that was started (not a reused pid)."""
        return _start_ticks(self.pid) == self.started

    def group_alive(self) -> bool:
        """Whether any live process of the group is left (the leader may be gone while children linger).

        Zombies do not count: an ended process whose parent has not reaped it holds no port and no file.
        """
        return bool(group_members(self.pid))

    def signallable(self) -> bool:
        """Whether signalling the group reaches this service: its leader is still the recorded process, or the
        leader is gone but processes of its group remain (no new process can join a group whose leader is gone)."""
        return self.alive() or (_start_ticks(self.pid) is None and self.group_alive())


def stop_services(services: Sequence[Service], grace: float = 30.0) -> None:
    """SIGTERM every service's process group (in the order given), wait up to ``grace`` seconds for all of them
    together, then SIGKILL what is left of each group."""
    targets = [s for s in services if s.signallable()]
    for service in targets:
        _signal_group(service.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(s.group_alive() for s in targets) and time.monotonic() < deadline:
        time.sleep(0.2)
    for service in targets:
        if service.group_alive():
            _signal_group(service.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(s.group_alive() for s in targets) and time.monotonic() < deadline:
        time.sleep(0.1)


def spawn(name: str, command: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path,
          port: int | None = None, url: str | None = None) -> Service:
    """Start ``command`` in its own session (so its process group is its own), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        try:
            proc = subprocess.Popen(list(command), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=dict(env), cwd=str(cwd), start_new_session=True)
        except OSError as exc:
            raise StackError(f"{name}: could not run {command[0]}: {exc}; is it installed (make env)?") from exc
    started = _start_ticks(proc.pid)
    if started is None:
        raise StackError(f"{name} exited at once; its log:\n{log_tail(log)}")
    # The launcher exits while the service runs on: forget the child without reaping (init adopts it).
    proc.returncode = 0
    return Service(name=name, pid=proc.pid, started=started, port=port, log=str(log), url=url)


def wait_until(service: Service, ready: Callable[[], bool | str], *, timeout: float, what: str) -> None:
    """Poll ``ready`` until it returns True; a string it returns (or an exception it raises, but a StackError:
    a definite failure) is the latest reason it is not yet.

    Raises:
        StackError: the service exited, or ``timeout`` seconds passed; naming the service, what it waited for,
            the last reason and the tail of its log.
    """
    deadline = time.monotonic() + timeout
    reason = "no answer yet"
    while True:
        if not service.alive():
            raise StackError(f"{service.name} exited while starting ({what}); its log {service.log}:\n"
                             f"{log_tail(Path(service.log))}")
        try:
            answer = ready()
        except StackError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to answer means "not yet"
            answer = f"{type(exc).__name__}: {exc}"
        if answer is True:
            return
        reason = str(answer) if answer else reason
        if time.monotonic() > deadline:
            raise StackError(f"{service.name} did not become ready within {timeout:.0f} s ({what}; last: {reason}); "
                             f"its log {service.log}:\n{log_tail(Path(service.log))}")
        time.sleep(1.0)


def port_listening(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def log_tail(log: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log was written)"
    return "\n".join(text[-lines:]) or "(the log is empty)"


def group_members(pgid: int) -> list[int]:
    """The pids of the live (not zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _start_ticks(pid: int) -> int | None:
    """The process's start time (field 22 of ``/proc/PID/stat``); None when no such process runs (or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
