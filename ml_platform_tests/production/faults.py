"""What the fault tests do around a restart: a small backfill or one promotion through the stack's GraphQL, the
moment one of its steps has started, the outcome (waited for through a webserver that may itself be restarting),
the text of a failure, and the checks that nothing stored was lost or half-written."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import urllib.error
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result
from prod_local.environment import BUCKET, FEATURES

from ml_platform.cli import main
from ml_platform.errors import ReproductionFailed
from ml_platform.io.atomic import is_temporary
from ml_platform.reproduce.backfill import REPOSITORY, launch_asset_backfill
from ml_platform_tests.production.stack import ProductionStack

__all__ = ["BOUND", "Outcome", "busy_worker", "check_nothing_half_written", "days", "failure_text", "launch_backfill",
           "launch_promotion", "ml_platform", "wait_backfill", "wait_run", "wait_step_started"]

#: Bounded waits: a run on the Celery workers beside every other test of a 2-core machine, plus a restart.
BOUND = 900.0
T = TypeVar("T")
_RUN_DONE = {"SUCCESS", "FAILURE", "CANCELED"}
_BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def patiently(call: Callable[[], T], *, until: float, what: str) -> T:
    """``call()``, again while the webserver (or the storage behind it) is away for a restart, until ``until``."""
    while True:
        try:
            return call()
        except (urllib.error.URLError, ConnectionError, TimeoutError, ReproductionFailed) as exc:
            if time.monotonic() > until:
                raise AssertionError(f"{what}: the stack's webserver did not answer in time ({exc})") from exc
            time.sleep(1.0)


def days(first: str, count: int) -> list[str]:
    """``count`` consecutive calendar days (partition keys) from ``first``."""
    start = dt.date.fromisoformat(first)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(count)]


def launch_backfill(stack: ProductionStack, partitions: Sequence[str], label: str) -> str:
    """A backfill of the market bars over ``partitions`` (one step writing each day to S3, then its checks)."""
    return launch_asset_backfill(stack, {("market_bars",): list(partitions)}, tags={"ml_platform/test": label},
                                 title=f"fault test: {label}")


def launch_promotion(stack: ProductionStack, config: Mapping[str, Any], label: str) -> str:
    """One run of ``promote_model`` with ``config`` (the promotion_report op's); its run id."""
    data = stack.graphql("""
        mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
          ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
          ... on RunConfigValidationInvalid { errors { message } } } }""",
                         {"params": {"selector": {"repositoryLocationName": stack.location_name,
                                                  "repositoryName": REPOSITORY, "jobName": "promote_model"},
                                     "runConfigData": {"ops": {"promotion_report": {"config": dict(config)}}},
                                     "executionMetadata": {"tags": [{"key": "ml_platform/test", "value": label}]}}})
    answer = data["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return str(answer["run"]["runId"])


def backfill_runs(stack: ProductionStack, backfill_id: str) -> tuple[str, list[tuple[str, str]]]:
    data = stack.graphql("""
        query ($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
          ... on PartitionBackfill { status runs(limit: 100) { runId status } } ... on PythonError { message } } }""",
                         {"id": backfill_id})
    answer = data["partitionBackfillOrError"]
    if answer["__typename"] != "PartitionBackfill":
        raise ReproductionFailed(f"backfill {backfill_id}: {answer}")
    return answer["status"], [(r["runId"], r["status"]) for r in answer["runs"]]


def events(stack: ProductionStack, run_id: str) -> list[dict[str, Any]]:
    """Every event of the run: type, step, message and, for failures, the error with its causes."""
    data = stack.graphql("""
        query ($id: ID!) { logsForRun(runId: $id, limit: 5000) { __typename ... on EventConnection { events {
          __typename ... on MessageEvent { message stepKey }
          ... on ExecutionStepFailureEvent { error { message causes { message } } }
          ... on RunFailureEvent { error { message causes { message } } }
          ... on EngineEvent { error { message causes { message } } } } } } }""", {"id": run_id})
    return list(data["logsForRun"].get("events") or [])


def wait_step_started(stack: ProductionStack, *, step: str, backfill_id: str | None = None,
                      run_id: str | None = None) -> str:
    """The run (of the backfill, or ``run_id``) once its step ``step`` has started: the moment to restart."""
    until = time.monotonic() + BOUND
    while True:
        runs = [run_id] if run_id else [r for r, _ in patiently(lambda: backfill_runs(stack, backfill_id or ""),
                                                                until=until, what="the backfill's runs")[1]]
        for run in runs:
            for event in patiently(lambda run=run: events(stack, run), until=until, what=f"run {run}'s events"):
                if event["__typename"] == "ExecutionStepStartEvent" and event.get("stepKey") == step:
                    return run
        if time.monotonic() > until:
            raise AssertionError(f"step {step} did not start within {BOUND:.0f} s (runs {runs})")
        time.sleep(0.5)


def busy_worker(stack: ProductionStack, run_id: str, step: str) -> str:
    """The Celery worker (``worker-1`` ...) whose pool process runs ``step`` of the run: the pid its events record
    capturing the step's logs, found in a worker's process group."""
    from prod_local.processes import group_members

    pids = [int(m.group(1)) for e in events(stack, run_id) if e["__typename"] == "LogsCapturedEvent"
            for m in [re.search(r"\(pid: (\d+)\)", e.get("message") or "")] if m]
    workers = [s for s in stack.state.services if s.name.startswith("worker-")]
    for service in workers:
        if set(pids) & set(group_members(service.pid)):
            return service.name
    raise AssertionError(f"no worker's process group holds the pids {pids} that ran {step} in run {run_id}")


@dataclass(frozen=True)
class Outcome:
    """How the work ended after the restart: its runs (newest first: a run Dagster retried comes before the
    retry) and the text of every failure they recorded."""

    runs: tuple[tuple[str, str], ...]
    text: str

    @property
    def failed(self) -> list[str]:
        return [run for run, status in self.runs if status != "SUCCESS"]

    @property
    def all_succeeded(self) -> bool:
        return bool(self.runs) and not self.failed

    @property
    def resumed(self) -> bool:
        """The newest run (the work's last attempt, a retry where Dagster retried) succeeded."""
        return bool(self.runs) and self.runs[0][1] == "SUCCESS"


def failure_text(stack: ProductionStack, run_ids: Sequence[str]) -> str:
    """Every failure message (with its causes) of the runs' events, one per line, after ``[step]`` if a step's."""
    lines = []
    for run in run_ids:
        for event in events(stack, run):
            error = event.get("error")
            step = f"[{event.get('stepKey')}] " if event.get("stepKey") else ""
            if event["__typename"] in ("ExecutionStepFailureEvent", "RunFailureEvent", "EngineEvent") and error:
                lines.append(step + " <- ".join([error["message"], *(c["message"] for c in error.get("causes") or [])]))
            elif event["__typename"] in ("RunFailureEvent", "ExecutionStepFailureEvent"):
                lines.append(step + (event.get("message") or ""))
    return "\n".join(lines)


def _outcome(stack: ProductionStack, runs: Sequence[tuple[str, str]], until: float) -> Outcome:
    failed = [run for run, status in runs if status != "SUCCESS"]
    text = patiently(lambda: failure_text(stack, failed), until=until, what="the failures") if failed else ""
    return Outcome(tuple(runs), text)


def wait_backfill(stack: ProductionStack, backfill_id: str) -> Outcome:
    until = time.monotonic() + BOUND
    while True:
        status, runs = patiently(lambda: backfill_runs(stack, backfill_id), until=until, what="the backfill")
        if status in _BACKFILL_DONE and runs and all(s in _RUN_DONE for _, s in runs):
            return _outcome(stack, runs, until)
        if time.monotonic() > until:
            raise AssertionError(f"backfill {backfill_id} did not finish within {BOUND:.0f} s ({status}: {runs})")
        time.sleep(1.0)


def wait_run(stack: ProductionStack, run_id: str) -> Outcome:
    """The run's outcome; a retry Dagster launched for it (tag ``dagster/parent_run_id``) is waited for too."""
    until = time.monotonic() + BOUND
    query = """query ($id: String!) { runsOrError(filter: {tags: [{key: "dagster/root_run_id", value: $id}]}) {
      ... on Runs { results { runId status } } } }"""
    while True:
        own = patiently(lambda: stack.graphql("query ($id: ID!) { runOrError(runId: $id) { __typename "
                                              "... on Run { status } } }", {"id": run_id}),
                        until=until, what=f"run {run_id}")["runOrError"].get("status")
        retries = patiently(lambda: stack.graphql(query, {"id": run_id}), until=until, what="the run's retries")
        runs = [(r["runId"], r["status"]) for r in retries["runsOrError"].get("results") or []] + [(run_id, own)]
        if all(status in _RUN_DONE for _, status in runs):
            return _outcome(stack, runs, until)
        if time.monotonic() > until:
            raise AssertionError(f"run {run_id} did not finish within {BOUND:.0f} s ({runs})")
        time.sleep(1.0)


def ml_platform(stack: ProductionStack, monkeypatch: pytest.MonkeyPatch, *args: str) -> Result:
    """``ml-platform ARGS`` as a desk runs it against the stack: its client environment (set on this process
    for the call: a fresh interpreter per call would cost more than the check), one line and an exit code."""
    with monkeypatch.context() as env:
        for name in [k for k in os.environ if k.startswith(("ML_PLATFORM_", "DAGSTER_", "AWS_", "PG", "MLFLOW_"))]:
            env.delenv(name)
        for name, value in stack.env.items():
            env.setenv(name, value)
        return CliRunner().invoke(main, list(args))


def check_nothing_half_written(stack: ProductionStack) -> None:
    """No temporary object under the store's prefix, and no manifest whose object is missing (a head or history
    entry naming an object the store does not hold); ``ml-platform verify`` checks the rest."""
    prefix = FEATURES.removeprefix(f"s3://{BUCKET}/") + "/"
    keys = set(stack.s3_keys(prefix))
    temporary = sorted(k for k in keys if is_temporary(k.rpartition("/")[2]))
    assert not temporary, f"temporary objects left in the store: {temporary[:10]}"
    objects = {k.rpartition("/")[2].removesuffix(".parquet") for k in keys if "/objects/" in k}
    orphans = [k for k in keys if "/history/" in k and k.rpartition("/")[2].split("-", 1)[1].removesuffix(".json")
               not in objects]
    assert not orphans, f"history entries whose object is missing: {orphans[:10]}"
