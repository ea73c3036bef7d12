"""A workload that only passes crash points: what the tests of :mod:`ml_platform_tests.crash.driver` drive.

A trial ``{"before", "calls", "progress", "sleep", "arm", "fail", "size"}`` passes the points ``before``
unarmed, arms its point (unless ``arm`` is false), passes ``calls``, appending a byte to the file
``progress`` after each pass it survives, sleeps ``sleep`` seconds, raises if ``fail``, and returns
``TMPDIR`` as the child sees it, padded to ``size`` characters.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

from ml_platform.crashpoints import crash_point
from ml_platform_tests.crash.driver import die

HOOKED = "probe.hooked"
_hooked: list[int] = []


def hook(args: list[str], point: str, nth: int) -> bool:
    """Arms ``probe.hooked#n``: the child dies at the n-th call of that name."""
    if point != HOOKED:
        return False
    _hooked.append(nth)
    return True


def _pass(name: str) -> None:
    if name == HOOKED and _hooked:
        _hooked[0] -= 1
        if _hooked[0] == 0:
            die()
    elif name != HOOKED:
        crash_point(name)


def run(args: list[str], trial: dict[str, Any], arm: Callable[[], None]) -> str:
    for name in trial.get("before", []):
        _pass(name)
    if trial.get("arm", True):
        arm()
    for name in trial.get("calls", []):
        _pass(name)
        with open(trial["progress"], "ab") as progress:
            progress.write(b".")
    time.sleep(trial.get("sleep", 0))
    if trial.get("fail"):
        raise RuntimeError("the probe failed as asked")
    return tempfile.gettempdir().ljust(trial.get("size", 0), ".")
