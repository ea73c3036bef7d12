"""The example driven through a real webserver's GraphQL API and seen in a real headless Chromium.

A Dagster webserver and daemon (:class:`~ml_platform.reproduce.dagster_services.DagsterServices`) load the
example's ``quant_alpha.definitions`` on the embedded default, in a temporary home. Through GraphQL: a partition
backfill the daemon executes, a materialization's hash metadata, asset checks, staleness, and the promotion and
rollback jobs refusing what they must. In Chromium: the feature graph, a feature's page with its graph hash as
code version and its hash metadata, the backfill, the refused promotion's run. Screenshots are kept (see
:mod:`ml_platform_tests.harness.browser`). The production stack's tests drive the same through the same harness.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from quant_alpha.features import build_graph
from quant_alpha.project import CALENDAR, MODEL_NAME

from ml_platform import DataWindow
from ml_platform.features.calendar import Calendar
from ml_platform.reproduce.backfill import IN_PROCESS, BackfillOutcome
from ml_platform.reproduce.dagster_services import CodeLocation, DagsterServices, IsolatedDeployment
from ml_platform_tests.harness.browser import open_ui
from ml_platform_tests.harness.dagster_graphql import DagsterGraphQL, JobRun, dumps

pytestmark = pytest.mark.daemon

ROOT = Path(__file__).resolve().parents[3]
LOCATION = "quant_alpha"
#: a week of momentum: the backfill also writes the 112 calendar days of market bars its lookback reads
WEEK = DataWindow.parse("2011-09-01..2011-09-07")
DAY = "2011-09-05"
GRAPH = build_graph("sample")


@pytest.fixture(scope="module")
def dagster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterGraphQL]:
    """A webserver and a daemon on the example, on the embedded default under a temporary home."""
    root = tmp_path_factory.mktemp("webserver_graphql")
    location = CodeLocation(LOCATION, "quant_alpha.definitions", "defs", ROOT, Path(sys.executable))
    deployment = IsolatedDeployment(root, location, env={"ML_PLATFORM_HOME": str(root / ".ml_platform"),
                                                         "QUANT_ALPHA_MARKET_SOURCE": "sample"})
    with DagsterServices(deployment, backfill_tick=2.0) as services:
        gql = DagsterGraphQL(services.url, LOCATION, services.logs)
        gql.wait_loaded()
        yield gql


@pytest.fixture(scope="module")
def backfilled(dagster: DagsterGraphQL) -> BackfillOutcome:
    outcome = dagster.backfill_features(GRAPH, Calendar(CALENDAR), WEEK, targets=["momentum"],
                                        title=f"momentum {WEEK}", timeout=600, run_config=IN_PROCESS)
    assert outcome.succeeded, f"backfill {outcome.backfill_id} ended {outcome.status}: {outcome.runs}"
    return outcome


@pytest.fixture(scope="module")
def refused_promotion(dagster: DagsterGraphQL) -> JobRun:
    """``promote_model`` asked to promote a version nobody registered."""
    config = {"model": MODEL_NAME, "version": "7", "approver": "risk-officer",
              "rationale": "A rationale long enough for the gate, about a version that was never registered at all."}
    return dagster.run_job("promote_model", {**IN_PROCESS, "ops": {"promotion_report": {"config": config}}},
                           timeout=600)


def test_the_backfill_records_each_partition_with_its_hashes_checks_and_staleness(dagster, backfilled):
    page = dagster.backfill_page(backfilled.backfill_id)
    assert page["status"] == "COMPLETED_SUCCESS" and page["title"] == f"momentum {WEEK}"
    assert {"/".join(k["path"]) for k in page["assetSelection"]} == {"market_bars", "momentum"}
    node = GRAPH["momentum"]
    assert dagster.asset_nodes([["momentum"]])["momentum"]["opVersion"] == node.graph_hash
    event = dagster.materialization(["momentum"], DAY)
    meta = event["metadata"]
    assert event["partition"] == DAY and event["run_id"] in {r for r, _ in backfilled.runs}
    assert meta["ml_platform/graph_hash"] == node.graph_hash, dumps(meta)
    assert meta["ml_platform/code_hash"] == node.code_hash, dumps(meta)
    assert str(meta["ml_platform/data_hash"]).startswith("xxh3_128:") and meta["ml_platform/manifest_hash"]
    assert dagster.staleness(["momentum"], DAY) == ("FRESH", [])
    assert dagster.staleness(["momentum"], "2011-09-08")[0] == "MISSING"
    # Dagster runs the checks of the assets a backfill materializes: recorded, judged as of now (2011 is long past)
    checks = dagster.check_executions(["momentum"])
    assert set(checks) == {"freshness", "latency"}
    assert checks["freshness"]["status"] in {"SUCCEEDED", "FAILED"} and checks["freshness"]["metadata"]["summary"]


def test_a_promotion_of_an_unknown_version_fails_at_the_report_and_a_rollback_without_champion_is_refused(
        dagster, refused_promotion):
    run = refused_promotion
    assert run.status == "FAILURE", run.explain()
    assert run.steps["promotion_report"] == "FAILURE" and "record_promotion" not in {
        k for k, v in run.steps.items() if v == "SUCCESS"}, run.explain()
    assert any("MODEL_NOT_FOUND" in f and MODEL_NAME in f for f in run.failures), run.explain()
    rollback = dagster.run_job("rollback_model", {**IN_PROCESS, "ops": {"rollback_champion": {"config": {
        "reason": "nothing to roll back to, on purpose"}}}}, timeout=600)
    assert rollback.status == "FAILURE" and rollback.steps == {"rollback_champion": "FAILURE"}, rollback.explain()
    assert rollback.failures and MODEL_NAME in " ".join(rollback.failures), rollback.explain()


def test_the_ui_shows_the_feature_graph_a_features_hashes_the_backfill_and_the_refused_promotion(
        request, dagster, backfilled, refused_promotion):
    node = GRAPH["momentum"]
    with open_ui(dagster.url, request.node.name) as ui:
        ui.open(f"/locations/{LOCATION}/asset-groups/features",
                wait_for=[n.key for n in GRAPH if n.spec.group == "features"])
        ui.screenshot("feature-graph")

        ui.asset(["momentum"], wait_for=["ml_platform/graph_hash", node.graph_hash, "ml_platform/data_hash"])
        ui.show_code_version(node.graph_hash)
        ui.screenshot("momentum-overview")
        ui.asset(["momentum"], view="events", partition=DAY,
                 wait_for=[f"Partition {DAY} materialized", "ml_platform/manifest_hash", node.code_hash])
        ui.screenshot("momentum-partition")

        ui.backfill(backfilled.backfill_id, wait_for=[backfilled.backfill_id, "market_bars", "momentum"])
        ui.wait_text("Succeeded")
        ui.screenshot("backfill")

        ui.run(refused_promotion.run_id, wait_for=["promote_model", "promotion_report"])
        ui.show_steps("Errored (1)", ["promotion_report"])
        ui.show_run_config("A rationale long enough")
        ui.screenshot("refused-promotion")
    assert len(ui.taken) == 5 and all(p.stat().st_size > 0 for p in ui.taken)
