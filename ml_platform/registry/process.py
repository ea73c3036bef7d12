"""Who registers: the process identity a registration run records, and whether that process still runs.

``registry repair`` leaves a RUNNING registration alone while its process lives; a reused pid (another
start time) or another boot counts as gone.
"""

from __future__ import annotations

import json
import os
import socket

__all__ = ["process_alive", "process_identity"]


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, start time in clock ticks)`` of a Linux process, or ``None`` if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
        fields = text[text.rindex(")") + 2:].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def process_identity() -> str:
    """This process as a registration run records it: host, pid, and (Linux) boot id and start time."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return json.dumps({"host": socket.gethostname(), "pid": pid, "boot": _boot_id(),
                       "start": None if stat is None else stat[1]}, sort_keys=True, separators=(",", ":"))


def process_alive(identity: str | None) -> bool | None:
    """Whether the process :func:`process_identity` recorded still runs; ``None`` if it cannot be told here.

    ``None`` for another host, or a missing or malformed record. A reused pid (another start time) or
    a zombie counts as gone.
    """
    try:
        info = json.loads(identity) if identity else None
    except ValueError:
        return None
    if not isinstance(info, dict) or info.get("host") != socket.gethostname():
        return None
    pid = info.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    boot = _boot_id()
    if info.get("boot") and boot and info["boot"] != boot:
        return False
    if isinstance(info.get("start"), int) and os.path.isdir("/proc"):
        stat = _proc_stat(pid)
        return stat is not None and stat[1] == info["start"] and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


# -- the report ------------------------------------------------------------------------------------
