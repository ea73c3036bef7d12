"""Launch a real Dagster asset backfill (and single runs) through a webserver's GraphQL, and wait.

The webserver is the reproduction's own isolated one, or production's with the old commit's location beside.

The backfill is launched with ``launchPartitionBackfill`` (per-asset partition ranges, tags, title): the
daemon executes it, honouring each asset's ``BackfillPolicy``, and it shows on the webserver's backfills
page. ``dagster job backfill`` is not used: it submits runs directly and skips both.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_platform.errors import ReproductionFailed
from ml_platform.reproduce.dagster_services import ReproductionDagster

__all__ = ["IN_PROCESS", "BackfillOutcome", "RunOutcome", "contiguous_ranges", "in_process_config",
           "launch_asset_backfill", "launch_asset_run", "launch_partition_runs", "wait_for_backfill", "wait_for_run"]

_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
_RUN_DONE = {"SUCCESS", "FAILURE", "CANCELED"}
ASSET_JOB = "__ASSET_JOB"
REPOSITORY = "__repository__"


@dataclass(frozen=True)
class BackfillOutcome:
    """How a backfill ended: its id, status, and its runs' ids and statuses."""

    backfill_id: str
    status: str
    runs: tuple[tuple[str, str], ...]
    seconds: float

    @property
    def succeeded(self) -> bool:
        return self.status in {"COMPLETED", "COMPLETED_SUCCESS"} and all(s == "SUCCESS" for _, s in self.runs)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    seconds: float


def contiguous_ranges(wanted: Sequence[str], order: Sequence[str]) -> list[tuple[str, str]]:
    """``wanted`` partition keys as ``(start, end)`` runs of consecutive keys of ``order`` (the asset's keys).

    Raises:
        ReproductionFailed: a wanted key is not a partition of the asset in the old code.
    """
    index = {key: i for i, key in enumerate(order)}
    unknown = [k for k in wanted if k not in index]
    if unknown:
        raise ReproductionFailed(f"partitions {unknown[:5]} are not partitions of the asset in the old code's "
                                 f"calendar ({len(unknown)} of {len(wanted)})")
    positions = sorted({index[k] for k in wanted})
    ranges: list[tuple[str, str]] = []
    start = prev = positions[0] if positions else None
    for pos in positions[1:]:
        if pos != prev + 1:  # type: ignore[operator]
            ranges.append((order[start], order[prev]))  # type: ignore[index]
            start = pos
        prev = pos
    if start is not None:
        ranges.append((order[start], order[prev]))  # type: ignore[index]
    return ranges


def _partition_keys(services: ReproductionDagster, paths: Sequence[Sequence[str]]) -> dict[tuple[str, ...], list[str]]:
    data = services.graphql("""
        query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path } partitionKeys } }""",
                            {"keys": [{"path": list(p)} for p in paths]}, timeout=120)
    return {tuple(n["assetKey"]["path"]): list(n["partitionKeys"] or []) for n in data["assetNodes"]}


IN_PROCESS: Mapping[str, Any] = {"execution": {"config": {"in_process": {}}}}


def in_process_config(services: ReproductionDagster, assets: Sequence[Sequence[str]]) -> Mapping[str, Any]:
    """``IN_PROCESS`` when the old code's asset job accepts it (Dagster's default executor does), else ``{}``.

    Each run of a reproduction then executes its steps in its run worker instead of starting a Python
    process per step; the steps, their code and their bytes are the same. A project whose own executor
    takes other config keeps it.
    """
    data = services.graphql("""
        query ($selector: PipelineSelector!, $config: RunConfigData) {
          isPipelineConfigValid(pipeline: $selector, mode: "default", runConfigData: $config) { __typename
            ... on RunConfigValidationInvalid { errors { __typename stack { entries {
              ... on EvaluationStackPathEntry { fieldName } } }
              ... on FieldNotDefinedConfigError { fieldName } ... on FieldsNotDefinedConfigError { fieldNames } } } } }""",
                            {"selector": {"repositoryLocationName": services.location_name,
                                          "repositoryName": REPOSITORY, "pipelineName": ASSET_JOB,
                                          "assetSelection": [{"path": list(p)} for p in assets]},
                             "config": dict(IN_PROCESS)})
    answer = data["isPipelineConfigValid"]
    if answer["__typename"] == "PipelineConfigValidationValid":
        return IN_PROCESS
    if answer["__typename"] != "RunConfigValidationInvalid":
        return {}
    # op config the selection requires (given per run) is missing here: only errors about `execution` count
    return {} if any(_about_execution(e) for e in answer["errors"]) else IN_PROCESS


def _about_execution(error: Mapping[str, Any]) -> bool:
    path = [entry.get("fieldName") for entry in error["stack"]["entries"]]
    named = [error.get("fieldName"), *(error.get("fieldNames") or [])]
    return (path[:1] == ["execution"]) or (not path and "execution" in named)


def launch_asset_backfill(services: ReproductionDagster, partitions: Mapping[tuple[str, ...], Sequence[str]], *,
                          tags: Mapping[str, str], title: str, description: str = "",
                          run_config: Mapping[str, Any] | None = None) -> str:
    """Launch one asset backfill of ``partitions`` (asset key path -> partition keys); its id.

    ``run_config`` is given to every run of the backfill (e.g. :func:`in_process_config`).

    Raises:
        ReproductionFailed: an asset is not in the old code, a partition not in its calendar, or Dagster
            refused the backfill (its message).
    """
    known = _partition_keys(services, list(partitions))
    missing = [ "/".join(p) for p in partitions if p not in known]
    if missing:
        raise ReproductionFailed(f"the old code defines no asset {missing}: the recorded nodes are not in its "
                                 "definitions (another key prefix, or another definitions module?)")
    selectors = [{"assetKey": {"path": list(path)},
                  "partitions": {"ranges": [{"start": a, "end": b} for a, b in contiguous_ranges(keys, known[path])]}}
                 for path, keys in partitions.items()]
    data = services.graphql("""
        mutation ($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
          __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
          ... on InvalidStepError { invalidStepKey } ... on InvalidOutputError { invalidOutputName }
          ... on PartitionSetNotFoundError { message } ... on UnauthorizedError { message } } }""",
                            {"params": {"partitionsByAssets": selectors, "title": title, "description": description,
                                        "tags": [{"key": k, "value": v} for k, v in tags.items()],
                                        **({"runConfigData": dict(run_config)} if run_config else {})}})
    answer = data["launchPartitionBackfill"]
    if answer["__typename"] != "LaunchBackfillSuccess":
        raise ReproductionFailed(f"the backfill was refused ({answer['__typename']}): {answer.get('message', answer)}")
    return str(answer["backfillId"])


def wait_for_backfill(services: ReproductionDagster, backfill_id: str, *, timeout: float) -> BackfillOutcome:
    """Poll the backfill until it ends (its runs too) or ``timeout`` seconds pass."""
    started = time.monotonic()
    while True:
        data = services.graphql("""
            query ($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
              ... on PartitionBackfill { status runs(limit: 10000) { runId status } }
              ... on PythonError { message } ... on BackfillNotFoundError { message } } }""", {"id": backfill_id})
        answer = data["partitionBackfillOrError"]
        if answer["__typename"] != "PartitionBackfill":
            raise ReproductionFailed(f"backfill {backfill_id}: {answer.get('message', answer['__typename'])}")
        runs = tuple((r["runId"], r["status"]) for r in answer["runs"])
        elapsed = time.monotonic() - started
        if answer["status"] in _DONE and all(s in _RUN_DONE for _, s in runs):
            return BackfillOutcome(backfill_id, answer["status"], runs, elapsed)
        if elapsed > timeout:
            raise ReproductionFailed(f"backfill {backfill_id} did not finish within {timeout:.0f} s (status "
                                     f"{answer['status']}, {len(runs)} runs); it goes on in the reproduction's "
                                     "Dagster")
        time.sleep(1.0)


def launch_asset_run(services: ReproductionDagster, assets: Sequence[Sequence[str]], *, run_config: Mapping[str, Any],
                     tags: Mapping[str, str]) -> str:
    """Launch one run materializing ``assets`` (unpartitioned, e.g. the training set and the model); its id."""
    data = services.graphql("""
        mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
          ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
          ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }""",
                            {"params": {"selector": {"repositoryLocationName": services.location_name,
                                                     "repositoryName": REPOSITORY, "jobName": ASSET_JOB,
                                                     "assetSelection": [{"path": list(p)} for p in assets]},
                                        "runConfigData": dict(run_config),
                                        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]}}})
    answer = data["launchRun"]
    if answer["__typename"] != "LaunchRunSuccess":
        detail = answer.get("message") or "; ".join(e["message"] for e in answer.get("errors", [])) or answer
        raise ReproductionFailed(f"the run of {['/'.join(p) for p in assets]} was refused "
                                 f"({answer['__typename']}): {detail}")
    return str(answer["run"]["runId"])


def launch_partition_runs(services: ReproductionDagster, path: Sequence[str], partitions: Sequence[str], *,
                          run_config: Mapping[str, Any], tags: Mapping[str, str]) -> list[str]:
    """One run of a partitioned asset per contiguous range of ``partitions`` (range tags, as a single-run
    backfill would); their ids.

    Raises:
        ReproductionFailed: the asset is not in the old code, a partition not in its calendar, or a run refused.
    """
    known = _partition_keys(services, [path])
    if tuple(path) not in known:
        raise ReproductionFailed(f"the old code defines no asset {'/'.join(path)}")
    return [launch_asset_run(services, [path], run_config=run_config,
                             tags={**tags, "dagster/asset_partition_range_start": start,
                                   "dagster/asset_partition_range_end": end})
            for start, end in contiguous_ranges(partitions, known[tuple(path)])]


def wait_for_run(services: ReproductionDagster, run_id: str, *, timeout: float) -> RunOutcome:
    started = time.monotonic()
    while True:
        data = services.graphql("""
            query ($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } ... on PythonError { message } } }""",
                                {"id": run_id})
        answer = data["runOrError"]
        elapsed = time.monotonic() - started
        if answer["__typename"] == "Run" and answer["status"] in _RUN_DONE:
            return RunOutcome(run_id, answer["status"], elapsed)
        if elapsed > timeout:
            raise ReproductionFailed(f"run {run_id} did not finish within {timeout:.0f} s")
        time.sleep(0.5)
