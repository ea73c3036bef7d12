"""The one crash-test seam: an armed point kills its process with SIGKILL at the armed pass, nowhere else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from ml_platform import crashpoints

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a child to be killed")


def _passes_survived(point: str | None, nth: int, calls: list[str]) -> tuple[int, int]:
    """Fork a child that arms ``point`` and passes ``calls``; returns (signal that ended it or 0, calls survived)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report every pass it survives, then exit normally
        os.close(read)
        crashpoints.arm(point, nth)
        for name in calls:
            crashpoints.crash_point(name)
            os.write(write, b".")
        os._exit(0)
    os.close(write)
    survived = b""
    while chunk := os.read(read, 64):
        survived += chunk
    os.close(read)
    _, status = os.waitpid(pid, 0)
    return (os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0), len(survived)


def test_an_armed_point_kills_at_its_nth_pass_and_not_before() -> None:
    calls = ["a", "b", "a", "b", "a"]
    assert _passes_survived("a", 1, calls) == (signal.SIGKILL, 0)
    assert _passes_survived("a", 2, calls) == (signal.SIGKILL, 2)
    assert _passes_survived("b", 2, calls) == (signal.SIGKILL, 3)
    assert _passes_survived("a", 4, calls) == (0, 5)  # never reached its fourth pass


def test_a_disarmed_or_other_point_does_nothing() -> None:
    assert _passes_survived(None, 1, ["a", "b"]) == (0, 2)
    assert _passes_survived("c", 1, ["a", "b"]) == (0, 2)


def test_the_environment_arms_a_point_at_import() -> None:
    code = "from ml_platform.crashpoints import crash_point\ncrash_point('x')\nprint('one', flush=True)\ncrash_point('x')\n"
    env = {**os.environ, crashpoints.CRASH_POINT_ENV: "x#2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == "one\n"


def test_arm_refuses_a_pass_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        crashpoints.arm("a", 0)


def test_every_catalogued_point_is_named_once() -> None:
    points = [*crashpoints.WRITE_POINTS, *crashpoints.GC_POINTS, *crashpoints.REGISTRATION_POINTS,
              *crashpoints.PROMOTION_POINTS]
    assert len(points) == len(set(points))
