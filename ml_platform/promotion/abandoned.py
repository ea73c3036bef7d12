"""Runs a killed ``ml-platform promote`` left STARTED: tagged with their process, failed on the next start.

How it works, and why: docs/architecture.md, "ml_platform/promotion/abandoned.py".
"""

from __future__ import annotations

import os
import socket

import dagster as dg

from ml_platform.compat import fail_abandoned_run

__all__ = ["WORKER_HOST_TAG", "WORKER_PID_TAG", "fail_abandoned_runs", "worker_tags"]

WORKER_PID_TAG = "ml_platform/worker_pid"
WORKER_HOST_TAG = "ml_platform/worker_host"
_UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def worker_tags() -> dict[str, str]:
    """The tags naming this process as the run's worker: give them to ``execute_in_process``."""
    return {WORKER_PID_TAG: str(os.getpid()), WORKER_HOST_TAG: socket.gethostname()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process holds the pid: alive
        return True
    return True


def fail_abandoned_runs(instance: dg.DagsterInstance, job_name: str) -> list[str]:
    """Mark failed every unfinished run of ``job_name`` whose in-process worker on this host is gone.

    Only runs tagged by :func:`worker_tags` on this host count; a live pid (even a reused one) or a run
    of another host is left alone (Dagster's run monitoring covers runs a launcher started). Returns the
    ids of the runs marked failed, each with an engine event saying why.
    """
    host = socket.gethostname()
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=_UNFINISHED)):
        run = record.dagster_run
        pid = run.tags.get(WORKER_PID_TAG, "")
        if run.tags.get(WORKER_HOST_TAG) != host or not pid.isdigit() or _alive(int(pid)):
            continue
        fail_abandoned_run(instance, run, (
            f"ml_platform: the process that ran this {job_name} run in process (pid {pid} on {host}) is gone "
            f"(killed) while the run was {run.status.value}; marked failed by the next start of the job. "
            "Check the champion with `ml-platform audit verify` and `ml-platform registry reconcile --check`"))
        failed.append(run.run_id)
    return failed
