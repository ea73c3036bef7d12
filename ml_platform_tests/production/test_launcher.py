"""The launcher's own parts, without the stack: process groups, a reused pid, the state file, stop of nothing."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
from prod_local.processes import Service, group_members, spawn, stop_services, wait_until
from prod_local.stack import Layout, status, stop
from prod_local.state import StackState, load_state, save_state

from ml_platform.errors import MLPlatformError
from ml_platform.testing.postgres import DetachedPostgres

# a leader that starts a child in its own process group, then waits: as a code server starts run workers
_PARENT = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); " \
          "print('child started', flush=True); time.sleep(600)"


def _spawn(tmp_path: Path, name: str = "svc") -> Service:
    service = spawn(name, [sys.executable, "-c", _PARENT], env=dict(os.environ), cwd=tmp_path / name,
                    log=tmp_path / f"{name}.log")
    wait_until(service, lambda: "child started" in Path(service.log).read_text(), timeout=120, what="child")
    return service


def test_stopping_a_service_ends_its_whole_process_group(tmp_path: Path) -> None:
    service = _spawn(tmp_path)
    assert service.alive() and len(group_members(service.pid)) == 2
    stop_services([service], grace=30)
    assert not service.alive() and not service.group_alive()


def test_a_reused_pid_is_not_the_service_and_is_left_alone(tmp_path: Path) -> None:
    stranger = _spawn(tmp_path, "stranger")
    try:
        recorded = dataclasses.replace(stranger, started=stranger.started - 1)  # the pid, but another process
        assert not recorded.alive() and not recorded.signallable()
        stop_services([recorded], grace=1)
        assert stranger.alive() and len(group_members(stranger.pid)) == 2
    finally:
        stop_services([stranger], grace=30)


def test_a_service_that_exits_while_starting_is_named_with_its_log(tmp_path: Path) -> None:
    # on a loaded machine it may be gone before spawn reads its start time: the same error, from spawn
    with pytest.raises(MLPlatformError, match=r"(?s)broken exited while starting.*no config here"):
        service = spawn("broken", [sys.executable, "-c", "print('no config here'); raise SystemExit(3)"],
                        env=dict(os.environ), cwd=tmp_path / "broken", log=tmp_path / "broken.log")
        wait_until(service, lambda: False, timeout=120, what="never")


def test_the_state_file_round_trips_and_only_its_owner_reads_it(tmp_path: Path) -> None:
    pg = DetachedPostgres(bin_dir=Path("/usr/bin"), directory=tmp_path / "pg", port=5999, run_as="postgres")
    service = Service(name="mlflow", pid=1, started=2, port=6000, log=str(tmp_path / "mlflow.log"), url="http://x")
    state = StackState(root=str(tmp_path), postgres=pg, services=(service,), env={"DAGSTER_PG_PASSWORD": "s3cret"})
    save_state(state)
    assert (tmp_path / "state.json").stat().st_mode & 0o077 == 0
    assert load_state(tmp_path) == state
    assert state.ports == {"postgres": 5999, "mlflow": 6000}


def test_stop_and_status_of_nothing_say_so(tmp_path: Path) -> None:
    layout = Layout.default(tmp_path)
    said: list[str] = []
    stop(layout, said.append)
    assert said == [f"no stack recorded in {tmp_path}: nothing to stop"]
    assert status(layout) == f"no stack recorded in {tmp_path}"


def test_a_retired_group_is_recorded_and_ended_by_stop(tmp_path: Path) -> None:
    """What an old user-code server leaves after a restart (its run workers) is recorded apart and ended by stop."""
    leader = _spawn(tmp_path, "code-server")
    os.kill(leader.pid, 9)  # the restart stops the server alone: its child goes on in the group
    retired = dataclasses.replace(leader, name="code-server (run workers)")
    state = StackState(root=str(tmp_path), retired=(retired,))
    save_state(state)
    assert load_state(tmp_path) == state and state.live() == ["code-server (run workers)"]
    stop(Layout.default(tmp_path), lambda _: None)
    assert not retired.group_alive() and load_state(tmp_path) is None


def test_restart_refuses_what_it_cannot_restart_and_a_missing_stack(tmp_path: Path) -> None:
    from prod_local.restart import restart

    with pytest.raises(MLPlatformError, match="cannot restart 'redis': the restartable services are postgres, s3"):
        restart(Layout.default(tmp_path), "redis")
    with pytest.raises(MLPlatformError, match=f"no stack recorded in {tmp_path}"):
        restart(Layout.default(tmp_path), "mlflow")
