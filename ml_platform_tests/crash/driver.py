"""The crash matrices' one driver: an interpreter that imported once forks a child per trial, to be killed.

The tests start it with :class:`CrashDriver`, which runs
``python -m ml_platform_tests.crash.driver [--log FILE] [--hang-seconds S] WORKLOAD [ARG...]``. The driver
imports the workload module ``WORKLOAD`` (and through it the library and its dependencies) once, calls its
``prepare(args)`` if it has one (more imports: never a polars operation, a thread or a database connection,
which a forked child could not use), then reads one trial a line on stdin (JSON) and, for each, forks a
child and answers one JSON line (an :class:`Outcome`) once the child is gone. Forking after the imports
makes a trial cost its workload instead of a Python start (seconds of imports).

A trial holds the workload's own keys and:

``point``
    ``"name"`` or ``"name#n"``: the child dies with ``SIGKILL`` at the n-th pass of that point after it armed
    it. The workload's ``hook(args, name, n)`` arms a point it hooks into code the tests do not own and returns
    True; any other point must be one of :mod:`ml_platform.crashpoints`' catalogues and is armed with
    :func:`~ml_platform.crashpoints.arm`.
``delay``
    seconds after the fork at which the driver kills the child itself (a kill at a random time);
``tmpdir``
    the child's ``TMPDIR``, so that a killed writer's staging files stay beside its trial.

The child runs the workload's ``run(args, trial, arm)``, which calls ``arm()`` where the crash window opens
(what comes before runs unarmed) and returns what it did (JSON), reported as ``run``. A child that raises, or
returns without having armed its point, exits 3 or 4 with the reason in the log. A child that is neither
done nor due to be killed ``--hang-seconds`` after its fork is killed and reported ``hung``. The children's
stdout and stderr (a Dagster run's console log, a traceback) go to the log file (``--log``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Self

from ml_platform import crashpoints

ROOT = Path(__file__).resolve().parents[2]
#: A child still running this long after its fork (and not due to be killed) is killed and reported hung.
HANG_SECONDS = 120.0
CATALOGUED = frozenset((*crashpoints.WRITE_POINTS, *crashpoints.GC_POINTS, *crashpoints.REGISTRATION_POINTS,
                        *crashpoints.PROMOTION_POINTS))
FAILED, NEVER_ARMED = 3, 4
#: Seeds the random trials of ``make stress`` (each matrix prints the one it used).
SEED_ENV = "ML_PLATFORM_CRASH_SEED"


def die() -> None:
    """``SIGKILL`` this process: what a hook calls at its point."""
    os.kill(os.getpid(), signal.SIGKILL)


def parse_point(point: str) -> tuple[str, int]:
    """``"name#n"`` as ``(name, n)``; ``"name"`` is its first pass."""
    name, _, nth = point.partition("#")
    return name, int(nth or 1)


def crash_seed(default: int) -> int:
    """The seed of a matrix's random trials: ``ML_PLATFORM_CRASH_SEED`` if set, else the matrix's own."""
    return int(os.environ.get(SEED_ENV, default))


@dataclass(frozen=True)
class Outcome:
    """What became of one trial's child."""

    killed: bool  # ended by SIGKILL: at its point, or by the driver at ``delay``
    exit: int  # its exit status, or minus the signal that ended it
    seconds: float  # from the fork to the reaping
    run: Any  # what the workload returned (None when it did not return)
    hung: bool  # killed by the driver after ``--hang-seconds``


# -- the parent's side: the tests ------------------------------------------------------------------------


class CrashDriver:
    """A driver process for ``workload`` (a module name) with ``args``; :meth:`trial` runs one trial in it.

    ``tmpdir`` is the driver's (and so its children's) ``TMPDIR``; the children's output goes to ``log``.
    """

    def __init__(self, workload: str, *args: str, tmpdir: Path, log: Path, env: Mapping[str, str] | None = None,
                 hang_seconds: float = HANG_SECONDS) -> None:
        self.log = log
        tmpdir.mkdir(parents=True, exist_ok=True)
        environ = {**os.environ, **(env or {}), "TMPDIR": str(tmpdir),
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        command = [sys.executable, "-m", "ml_platform_tests.crash.driver", "--log", str(log),
                   "--hang-seconds", str(hang_seconds), workload, *args]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=environ, cwd=ROOT)

    def trial(self, point: str | None = None, *, delay: float | None = None, tmpdir: Path | None = None,
              **keys: Any) -> Outcome:
        """Run one trial; fails when the driver died, or the child hung or failed (neither finished nor killed)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        trial = {**keys, "point": point, "delay": delay, "tmpdir": None if tmpdir is None else str(tmpdir)}
        self.process.stdin.write(json.dumps(trial) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the crash driver died (exit {self.process.poll()}): {trial}\n{self.log_tail()}"
        outcome = Outcome(**json.loads(line))
        assert not outcome.hung, f"the child hung: {trial} -> {outcome}\n{self.log_tail()}"
        assert outcome.exit in (0, -signal.SIGKILL), f"the child failed: {trial} -> {outcome}\n{self.log_tail()}"
        return outcome

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines()[-lines:] if self.log.is_file() else ["(no log)"]
        return "--- the children's log (tail) ---\n" + "\n".join(text)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the driver process ------------------------------------------------------------------------------------


def _arming(workload: ModuleType, args: list[str], point: str | None) -> tuple[Callable[[], None], Callable[[], bool]]:
    """``arm()`` for the workload to call, and whether it was called."""
    called = False

    def arm() -> None:
        nonlocal called
        called = True
        if point is None:
            return
        name, nth = parse_point(point)
        hook = getattr(workload, "hook", None)
        if hook is not None and hook(args, name, nth):
            return
        if name not in CATALOGUED:
            raise ValueError(f"{name!r} is neither a catalogued crash point nor one {workload.__name__} hooks")
        crashpoints.arm(name, nth)

    return arm, lambda: called


def _child(workload: ModuleType, args: list[str], trial: dict[str, Any], log: int, out: int) -> None:
    """The child of one trial: never returns into the driver's loop, never flushes the driver's buffers."""
    os.dup2(log, 1)
    os.dup2(log, 2)
    code = 0
    try:
        if trial.get("tmpdir"):
            os.environ["TMPDIR"] = trial["tmpdir"]
            tempfile.tempdir = None
        arm, armed = _arming(workload, args, trial.get("point"))
        result = workload.run(args, trial, arm)
        if not armed():
            os.write(2, f"crash driver child: {workload.__name__}.run never armed {trial}\n".encode())
            code = NEVER_ARMED
        else:
            os.write(out, json.dumps(result).encode())
    except BaseException:  # noqa: BLE001 - reported to the test as an exit code and in the log
        os.write(2, f"crash driver child failed: {trial}\n{traceback.format_exc()}".encode())
        code = FAILED
    os._exit(code)


def _reap(pid: int, delay: float | None, hang_seconds: float, read: int) -> tuple[int, bool, bytes]:
    """The child's wait status, whether it hung, and what it wrote (read as it comes: a full pipe blocks)."""
    deadline = time.monotonic() + (hang_seconds if delay is None else delay)
    tick = 0.01 if delay is None else 0.002  # a kill at a random time lands within 2 ms of it
    written = b""
    while True:
        written += _drain(read)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False, written + _drain(read)
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1], delay is None, written + _drain(read)
        time.sleep(tick)


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m ml_platform_tests.crash.driver")
    parser.add_argument("--log", required=True)
    parser.add_argument("--hang-seconds", type=float, default=HANG_SECONDS)
    parser.add_argument("workload")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    workload = importlib.import_module(options.workload)
    prepare = getattr(workload, "prepare", None)
    if prepare is not None:
        prepare(options.args)
    log = os.open(options.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for line in sys.stdin:
        trial = json.loads(line)
        read, write = os.pipe()
        os.set_blocking(read, False)
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _child(workload, options.args, trial, log, write)
        os.close(write)
        status, hung, written = _reap(pid, trial.get("delay"), options.hang_seconds, read)
        os.close(read)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        run = json.loads(written) if written and exit_code == 0 else None
        outcome = Outcome(killed=killed, exit=exit_code, seconds=round(time.monotonic() - started, 3), run=run,
                          hung=hung)
        sys.stdout.write(json.dumps(outcome.__dict__) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
