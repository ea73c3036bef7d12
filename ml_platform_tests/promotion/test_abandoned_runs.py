"""A SIGKILLed ``ml-platform promote`` leaves its run STARTED; the next ``promote`` marks it failed first.

Real processes: the command runs in a subprocess (``python -m ml_platform.cli``) on a Dagster instance in
``DAGSTER_HOME`` and is killed by the library's own crash point (``ML_PLATFORM_CRASH_POINT``); its
``--defs`` target is :func:`definitions`, which opens the test's project from ``ABANDONED_PROJECT_ROOT``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType

from ml_platform.crashpoints import CRASH_POINT_ENV, PROMOTION_POINTS
from ml_platform.promotion.abandoned import WORKER_HOST_TAG, WORKER_PID_TAG, fail_abandoned_runs
from ml_platform_tests.promotion.conftest import MODEL, RATIONALE, make_project

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT_ENV = "ABANDONED_PROJECT_ROOT"
TARGET = f"{__name__}:definitions"
REPO = Path(__file__).resolve().parents[2]


def definitions() -> dg.Definitions:
    """The ``--defs`` target of the subprocess: the project made by the test under ``$ABANDONED_PROJECT_ROOT``."""
    return make_project(Path(os.environ[ROOT_ENV]), None, existing=True).defs  # type: ignore[arg-type]


def _promote(tmp_path: Path, rationale: Path, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), ROOT_ENV: str(tmp_path),
           "PYTHONPATH": str(REPO)}
    env.pop(CRASH_POINT_ENV, None)
    if crash is not None:
        env[CRASH_POINT_ENV] = crash
    command = [sys.executable, "-m", "ml_platform.cli", "promote", MODEL, "1", "--rationale-file", str(rationale),
               "--approver", "bob", "--defs", TARGET]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def _unfinished(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(
        job_name="promote_model", statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING,
                                            dg.DagsterRunStatus.NOT_STARTED]))]


def test_a_killed_promote_leaves_no_run_started_once_promote_starts_again(tmp_path: Path,
                                                                          mlflow_template: Path) -> None:
    assert "promotion.rationale_logged" in PROMOTION_POINTS
    (tmp_path / "dagster").mkdir()
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        project = make_project(tmp_path, instance, mlflow_template=mlflow_template)
        assert project.register() == "1"
    rationale = tmp_path / "why.md"
    rationale.write_text(RATIONALE.format(v="1", extra=""), encoding="utf-8")

    killed = _promote(tmp_path, rationale, crash="promotion.rationale_logged")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        [left] = _unfinished(instance)  # what a kill leaves: the run STARTED, nobody to end it
        assert left.status == dg.DagsterRunStatus.STARTED
        assert left.tags[WORKER_HOST_TAG] == socket.gethostname() and left.tags[WORKER_PID_TAG].isdigit()

    again = _promote(tmp_path, rationale)

    assert again.returncode == 0, again.stderr[-2000:]
    assert f"marked run {left.run_id} failed: the ml-platform promote that ran it was killed" in again.stderr
    assert f"promoted {MODEL} version 1" in again.stdout
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster")) as instance:
        assert _unfinished(instance) == []
        ended = instance.get_run_by_id(left.run_id)
        assert ended is not None and ended.status == dg.DagsterRunStatus.FAILURE
        messages = [e.message for e in instance.all_logs(left.run_id)]
        pid = left.tags[WORKER_PID_TAG]
        assert any(f"(pid {pid} on {socket.gethostname()}) is gone" in m and "ml-platform audit verify" in m
                   for m in messages), messages
        assert fail_abandoned_runs(instance, "promote_model") == []  # nothing left; the successful run untouched


def test_only_a_run_whose_worker_on_this_host_is_gone_is_failed(dagster_instance: dg.DagsterInstance) -> None:
    @dg.op
    def noop() -> None:
        pass

    @dg.job(name="promote_model")
    def job() -> None:
        noop()

    def started(tags: dict[str, str]) -> str:
        run = dagster_instance.create_run_for_job(job, tags=tags)
        dagster_instance.report_dagster_event(
            DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name, message="started"), run.run_id)
        return run.run_id

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # exited and reaped: its pid names no process
    host = socket.gethostname()
    dead = started({WORKER_PID_TAG: gone, WORKER_HOST_TAG: host})
    live = started({WORKER_PID_TAG: str(os.getpid()), WORKER_HOST_TAG: host})
    elsewhere = started({WORKER_PID_TAG: gone, WORKER_HOST_TAG: host + "-other"})
    untagged = started({})

    assert fail_abandoned_runs(dagster_instance, "rollback_model") == []  # another job's runs are not looked at
    assert fail_abandoned_runs(dagster_instance, "promote_model") == [dead]
    assert {r.run_id for r in _unfinished(dagster_instance)} == {live, elsewhere, untagged}
