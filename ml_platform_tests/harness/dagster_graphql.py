"""Drive a running Dagster webserver through its GraphQL API, as a desk's tooling or the UI would.

:class:`DagsterGraphQL` names a webserver and the code location to drive; it has the shape of
:class:`~ml_platform.reproduce.dagster_services.ReproductionDagster`, so the library's own GraphQL helpers
(:func:`~ml_platform.reproduce.backfill.launch_asset_backfill`, ``wait_for_backfill``, ``wait_for_run``,
``in_process_config``) take it as they are. What only tests need is here: launch a job by name with its run
config, read a run's steps, events and output metadata, a materialization's metadata, asset check executions
and staleness. Every wait is bounded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_platform.features.calendar import Calendar
from ml_platform.features.graph import FeatureGraph
from ml_platform.lifecycle import plan_ranges
from ml_platform.reproduce import backfill
from ml_platform.reproduce.dagster_services import graphql_request, load_error, location_entry
from ml_platform.window import DataWindow

__all__ = ["DagsterGraphQL", "JobRun", "feature_backfill_partitions", "metadata_values"]

REPOSITORY = backfill.REPOSITORY

#: One metadata entry's value, whatever its type (the first of these fields the entry has).
_METADATA = """
    fragment Meta on MetadataEntry { label __typename
      ... on TextMetadataEntry { text } ... on IntMetadataEntry { intRepr } ... on FloatMetadataEntry { floatValue }
      ... on BoolMetadataEntry { boolValue } ... on MarkdownMetadataEntry { mdStr } ... on PathMetadataEntry { path }
      ... on JsonMetadataEntry { jsonString } ... on UrlMetadataEntry { url }
      ... on PipelineRunMetadataEntry { runId } }"""
_VALUE_FIELDS = ("text", "intRepr", "floatValue", "boolValue", "mdStr", "path", "jsonString", "url", "runId")


def metadata_values(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """GraphQL metadata entries as ``label -> value`` (ints as their decimal text, JSON as its text)."""
    values: dict[str, Any] = {}
    for entry in entries:
        values[entry["label"]] = next((entry[f] for f in _VALUE_FIELDS if f in entry), None)
    return values


@dataclass(frozen=True)
class JobRun:
    """A finished run as the webserver shows it: status, each step's status, failures, output metadata."""

    run_id: str
    job: str
    status: str
    steps: dict[str, str]
    failures: tuple[str, ...]
    outputs: dict[str, dict[str, Any]]
    tags: dict[str, str] = field(default_factory=dict)
    #: asset key ``a/b`` -> the metadata of each materialization the run recorded of it, in order
    materializations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: asset check evaluations: (``asset/key``, check name, success)
    checks: tuple[tuple[str, str, bool], ...] = ()
    #: the captured-log file keys of the run's steps (what the compute log manager stored)
    log_keys: tuple[str, ...] = ()

    def explain(self) -> str:
        """The run in one paragraph, for an assertion message."""
        return (f"run {self.run_id} of {self.job} ended {self.status}; steps {self.steps}; "
                f"failures: {' | '.join(self.failures)[:3000]}")


@dataclass(frozen=True)
class DagsterGraphQL:
    """A Dagster webserver at ``url`` and the code location ``location_name`` its jobs are launched in.

    ``logs`` is where the webserver's and daemon's logs are (named in failures).
    """

    url: str
    location_name: str
    logs: Path

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        return graphql_request(self.url, query, variables, timeout=timeout, whose=f"the Dagster webserver {self.url}")

    # -- the workspace ------------------------------------------------------------------------------
    def wait_loaded(self, timeout: float = 240.0) -> None:
        """Wait until the code location is loaded; fail naming its load error or its last state."""
        deadline = time.monotonic() + timeout
        state = "not asked yet"
        while time.monotonic() < deadline:
            try:
                entry = location_entry(self.graphql, self.location_name)
            except OSError as exc:
                state = f"the webserver did not answer: {exc}"
            else:
                if entry["loadStatus"] == "LOADED":
                    error = load_error(entry)
                    if error:
                        raise AssertionError(f"code location {self.location_name} does not load: {error}")
                    return
                state = f"load status {entry['loadStatus']}"
            time.sleep(1.0)
        raise AssertionError(f"code location {self.location_name} not loaded within {timeout:.0f} s ({state}); "
                             f"see {self.logs}")

    # -- runs -----------------------------------------------------------------------------------------
    def launch_job(self, job: str, run_config: Mapping[str, Any], *, tags: Mapping[str, str] | None = None) -> str:
        """Launch ``job`` of the location with ``run_config``; the run's id (a refusal raises, with its errors)."""
        data = self.graphql("""
            mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
              ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
              ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message }
              ... on PipelineNotFoundError { message } ... on UnauthorizedError { message } } }""",
                            {"params": {"selector": {"repositoryLocationName": self.location_name,
                                                     "repositoryName": REPOSITORY, "jobName": job},
                                        "runConfigData": dict(run_config),
                                        "executionMetadata": {"tags": [{"key": k, "value": v}
                                                                       for k, v in (tags or {}).items()]}}})
        answer = data["launchRun"]
        if answer["__typename"] != "LaunchRunSuccess":
            detail = answer.get("message") or "; ".join(e["message"] for e in answer.get("errors", [])) or answer
            raise AssertionError(f"launching {job} was refused ({answer['__typename']}): {detail}")
        return str(answer["run"]["runId"])

    def wait_run(self, run_id: str, *, timeout: float) -> JobRun:
        """Wait (at most ``timeout`` s) for the run to end; what it did."""
        backfill.wait_for_run(self, run_id, timeout=timeout)
        return self.run(run_id)

    def run_job(self, job: str, run_config: Mapping[str, Any], *, timeout: float,
                tags: Mapping[str, str] | None = None) -> JobRun:
        """Launch ``job`` and wait for it to end."""
        return self.wait_run(self.launch_job(job, run_config, tags=tags), timeout=timeout)

    def run(self, run_id: str) -> JobRun:
        """A run's status, its steps' statuses, its failure messages and every step output's metadata."""
        data = self.graphql("""
            query ($id: ID!) { runOrError(runId: $id) { __typename
              ... on Run { jobName status tags { key value } stepStats { stepKey status } }
              ... on PythonError { message } ... on RunNotFoundError { message } } }""", {"id": run_id})
        run = data["runOrError"]
        if run["__typename"] != "Run":
            raise AssertionError(f"run {run_id}: {run.get('message', run['__typename'])}")
        failures: list[str] = []
        outputs: dict[str, dict[str, Any]] = {}
        materializations: dict[str, list[dict[str, Any]]] = {}
        checks: list[tuple[str, str, bool]] = []
        log_keys: list[str] = []
        for event in self.events(run_id):
            kind = event["__typename"]
            if kind in ("ExecutionStepFailureEvent", "RunFailureEvent"):
                error = (event.get("error") or {}).get("message") or ""
                failures.append(f"{event.get('stepKey') or 'run'}: {event['message']} {error}".strip())
            elif kind == "ExecutionStepOutputEvent":
                outputs[event["stepKey"]] = metadata_values(event["metadataEntries"])
            elif kind == "MaterializationEvent":
                materializations.setdefault("/".join(event["assetKey"]["path"]), []).append(
                    {"partition": event["partition"], **metadata_values(event["metadataEntries"])})
            elif kind == "AssetCheckEvaluationEvent":
                evaluation = event["evaluation"]
                checks.append(("/".join(evaluation["assetKey"]["path"]), evaluation["checkName"],
                               bool(evaluation["success"])))
            elif kind == "LogsCapturedEvent":
                log_keys.append(event["fileKey"])
        return JobRun(run_id, run["jobName"], run["status"], {s["stepKey"]: s["status"] for s in run["stepStats"]},
                      tuple(failures), outputs, {t["key"]: t["value"] for t in run["tags"]}, materializations,
                      tuple(checks), tuple(log_keys))

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of a run, in order (paged through ``logsForRun``)."""
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            data = self.graphql("""
                query ($id: ID!, $cursor: String) { logsForRun(runId: $id, afterCursor: $cursor, limit: 1000) {
                  __typename ... on EventConnection { cursor hasMore events { __typename
                    ... on MessageEvent { message level }
                    ... on StepEvent { stepKey }
                    ... on ExecutionStepFailureEvent { error { message } }
                    ... on RunFailureEvent { error { message } }
                    ... on ExecutionStepOutputEvent { outputName metadataEntries { ...Meta } }
                    ... on MaterializationEvent { assetKey { path } partition metadataEntries { ...Meta } }
                    ... on AssetCheckEvaluationEvent { evaluation { checkName success assetKey { path } } }
                    ... on LogsCapturedEvent { fileKey stepKeys } } }
                  ... on PythonError { message } ... on RunNotFoundError { message } } }""" + _METADATA,
                                {"id": run_id, "cursor": cursor})
            answer = data["logsForRun"]
            if answer["__typename"] != "EventConnection":
                raise AssertionError(f"events of run {run_id}: {answer.get('message', answer['__typename'])}")
            events.extend(answer["events"])
            if not answer["hasMore"] or not answer["events"]:
                return events
            cursor = answer["cursor"]

    def captured_logs(self, run_id: str, file_key: str) -> dict[str, Any]:
        """A step's captured stdout and stderr as the webserver reads them back from the compute log manager, and
        where the manager says they are stored (``stdoutLocation``, e.g. an ``s3://`` URI)."""
        data = self.graphql("""
            query ($id: ID!, $key: String!, $logKey: [String!]!) {
              runOrError(runId: $id) { __typename ... on Run { capturedLogs(fileKey: $key) { logKey stdout stderr } } }
              capturedLogsMetadata(logKey: $logKey) { stdoutLocation stderrLocation } }""",
                            {"id": run_id, "key": file_key, "logKey": [run_id, "compute_logs", file_key]})
        run = data["runOrError"]
        if run["__typename"] != "Run":
            raise AssertionError(f"run {run_id}: {run['__typename']}")
        return {**run["capturedLogs"], **data["capturedLogsMetadata"]}

    # -- assets ---------------------------------------------------------------------------------------
    def asset_nodes(self, paths: Sequence[Sequence[str]] | None = None) -> dict[str, dict[str, Any]]:
        """``a/b`` -> the asset node's key facts (code version, partitioning, group, check presence)."""
        data = self.graphql("""
            query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path } opVersion groupName
              isPartitioned hasAssetChecks jobNames } }""",
                            {"keys": None if paths is None else [{"path": list(p)} for p in paths]}, timeout=120)
        return {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}

    def materialization(self, path: Sequence[str], partition: str | None = None) -> dict[str, Any]:
        """The latest materialization of an asset (of one partition): its run, partition and metadata values."""
        data = self.graphql("""
            query ($keys: [AssetKeyInput!], $partitions: [String!]) { assetNodes(assetKeys: $keys) {
              assetMaterializations(partitions: $partitions, limit: 1) { runId partition
                metadataEntries { ...Meta } } } }""" + _METADATA,
                            {"keys": [{"path": list(path)}], "partitions": None if partition is None else [partition]})
        nodes = data["assetNodes"]
        if not nodes:
            raise AssertionError(f"the webserver knows no asset {'/'.join(path)}")
        events = nodes[0]["assetMaterializations"]
        if not events:
            raise AssertionError(f"{'/'.join(path)} has no materialization" + (f" of {partition}" if partition else ""))
        event = events[0]
        return {"run_id": event["runId"], "partition": event["partition"],
                "metadata": metadata_values(event["metadataEntries"])}

    def staleness(self, path: Sequence[str], partition: str | None = None) -> tuple[str, list[dict[str, Any]]]:
        """Dagster's stale status of an asset (partition) and its causes (category, reason, dependency)."""
        data = self.graphql("""
            query ($keys: [AssetKeyInput!], $partition: String) { assetNodes(assetKeys: $keys) {
              staleStatus(partition: $partition)
              staleCauses(partition: $partition) { key { path } category reason dependency { path } } } }""",
                            {"keys": [{"path": list(path)}], "partition": partition})
        [node] = data["assetNodes"]
        return node["staleStatus"], node["staleCauses"]

    def check_executions(self, path: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each asset check of an asset -> its latest execution (status, run, evaluation's success and metadata);
        a check never run maps to an empty dict."""
        data = self.graphql("""
            query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetChecksOrError { __typename
              ... on AssetChecks { checks { name executionForLatestMaterialization { status runId
                evaluation { success description metadataEntries { ...Meta } } } } } } } }""" + _METADATA,
                            {"keys": [{"path": list(path)}]})
        [node] = data["assetNodes"]
        answer = node["assetChecksOrError"]
        if answer["__typename"] != "AssetChecks":
            raise AssertionError(f"asset checks of {'/'.join(path)}: {answer['__typename']}")
        result: dict[str, dict[str, Any]] = {}
        for check in answer["checks"]:
            execution = check["executionForLatestMaterialization"] or {}
            evaluation = execution.get("evaluation") or {}
            result[check["name"]] = {} if not execution else {
                "status": execution["status"], "run_id": execution["runId"], "success": evaluation.get("success"),
                "description": evaluation.get("description"),
                "metadata": metadata_values(evaluation.get("metadataEntries") or [])}
        return result

    def backfill_features(self, graph: FeatureGraph, calendar: Calendar, window: DataWindow, *,
                          prefix: Sequence[str] = (), targets: Sequence[str] | None = None, title: str,
                          timeout: float, run_config: Mapping[str, Any] | None = None) -> backfill.BackfillOutcome:
        """One asset backfill (the daemon runs it) of every feature ``window`` needs, history included, as
        :meth:`~ml_platform.Lifecycle.features` would materialize it; waits for it to end."""
        partitions = feature_backfill_partitions(graph, calendar, window, prefix=prefix, targets=targets)
        backfill_id = backfill.launch_asset_backfill(self, partitions, tags={"ml_platform/test": "e2e"}, title=title,
                                                     run_config=run_config)
        return backfill.wait_for_backfill(self, backfill_id, timeout=timeout)

    def backfill_page(self, backfill_id: str) -> dict[str, Any]:
        """What the backfills page shows of one backfill: status, title, its assets, its runs."""
        data = self.graphql("""
            query ($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
              ... on PartitionBackfill { id status title numPartitions assetSelection { path }
                runs(limit: 1000) { runId status } } ... on PythonError { message } } }""", {"id": backfill_id})
        answer = data["partitionBackfillOrError"]
        if answer["__typename"] != "PartitionBackfill":
            raise AssertionError(f"backfill {backfill_id}: {answer.get('message', answer['__typename'])}")
        return answer


def feature_backfill_partitions(graph: FeatureGraph, calendar: Calendar, window: DataWindow, *,
                                prefix: Sequence[str] = (),
                                targets: Sequence[str] | None = None) -> dict[tuple[str, ...], list[str]]:
    """Asset key path -> partition keys: each feature over the span :func:`~ml_platform.lifecycle.plan_ranges`
    gives it (lookback history and label lookahead included)."""
    partitions: dict[tuple[str, ...], list[str]] = {}
    for span, keys in plan_ranges(graph, calendar, window, targets):
        for key in keys:
            partitions[(*prefix, *key.split("/"))] = calendar.keys_in(span)
    return partitions


def dumps(value: Any) -> str:
    """Deterministic JSON for assertion messages."""
    return json.dumps(value, indent=1, sort_keys=True, default=str)
