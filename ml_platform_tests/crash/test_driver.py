"""The crash driver: a child per trial, killed at its armed point or at its delay, its outcome reported."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_platform_tests.crash.driver import CrashDriver, Outcome

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash driver forks")

PROBE = "ml_platform_tests.crash.probe_workload"


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CrashDriver]:
    work = tmp_path_factory.mktemp("probe_driver")
    with CrashDriver(PROBE, tmpdir=work / "tmp", log=work / "children.log") as opened:
        yield opened


def _survived(driver: CrashDriver, tmp_path: Path, point: str | None, **trial: object) -> tuple[Outcome, int]:
    progress = tmp_path / f"progress-{len(list(tmp_path.iterdir()))}"
    outcome = driver.trial(point, progress=str(progress), **trial)
    return outcome, len(progress.read_bytes()) if progress.exists() else 0


def test_a_child_dies_at_the_nth_pass_of_its_point_after_it_armed_it(driver: CrashDriver, tmp_path: Path) -> None:
    calls = ["gc:start", "gc:listed", "gc:start", "gc:done"]
    outcome, survived = _survived(driver, tmp_path, "gc:start#2", calls=calls)
    assert (outcome.killed, outcome.exit, outcome.run, survived) == (True, -signal.SIGKILL, None, 2)
    outcome, survived = _survived(driver, tmp_path, "gc:start", before=["gc:start"], calls=calls)  # unarmed before
    assert (outcome.killed, survived) == (True, 0)
    outcome, survived = _survived(driver, tmp_path, "gc:start#3", calls=calls)  # never its third pass
    assert (outcome.killed, outcome.exit, survived) == (False, 0, 4)


def test_a_child_without_a_point_runs_to_the_end_and_reports_what_it_did(driver: CrashDriver, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    outcome, survived = _survived(driver, tmp_path, None, calls=["gc:start", "gc:done"], tmpdir=scratch)
    assert (outcome.killed, outcome.exit, outcome.hung, survived) == (False, 0, False, 2)
    assert outcome.run == str(scratch)  # the trial's TMPDIR
    big = driver.trial(size=300_000)  # more than a pipe holds: read while the child writes
    assert len(big.run) == 300_000 and not big.killed


def test_the_workload_hooks_its_own_points(driver: CrashDriver, tmp_path: Path) -> None:
    calls = ["probe.hooked", "gc:start", "probe.hooked"]
    outcome, survived = _survived(driver, tmp_path, "probe.hooked#2", calls=calls)
    assert (outcome.killed, survived) == (True, 2)


def test_a_point_neither_catalogued_nor_hooked_fails_the_child(driver: CrashDriver, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="the child failed.*exit=3"):
        driver.trial("gc:nowhere", progress=str(tmp_path / "p"))
    assert "neither a catalogued crash point nor one" in driver.log_tail()


def test_a_child_that_never_arms_its_point_fails(driver: CrashDriver, tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="exit=4"):
        driver.trial("gc:start", arm=False, calls=["gc:start"], progress=str(tmp_path / "p"))
    assert "never armed" in driver.log_tail()


def test_a_failing_workload_fails_the_child_with_its_traceback(driver: CrashDriver) -> None:
    with pytest.raises(AssertionError, match="exit=3"):
        driver.trial(fail=True)
    assert "RuntimeError: the probe failed as asked" in driver.log_tail()


def test_the_driver_kills_a_child_at_its_delay(driver: CrashDriver) -> None:
    outcome = driver.trial(delay=0.2, sleep=600)
    assert (outcome.killed, outcome.exit, outcome.hung, outcome.run) == (True, -signal.SIGKILL, False, None)
    finished = driver.trial(delay=600)  # done long before its delay: not killed
    assert not finished.killed and finished.exit == 0


def test_a_child_that_hangs_is_killed_and_fails_the_trial(tmp_path: Path) -> None:
    with CrashDriver(PROBE, tmpdir=tmp_path / "tmp", log=tmp_path / "children.log", hang_seconds=2) as driver:
        with pytest.raises(AssertionError, match="the child hung"):
            driver.trial(sleep=600)
        assert driver.trial().exit == 0  # the driver goes on with the next trial
