"""The production stack's Dagster UI in a real headless Chromium, after the lifecycle ran through it.

The asset graph with every feature; a feature's page with its graph hash as code version and its hash metadata,
whose manifest is in S3; the feature backfill, succeeded; the promotion run with every gate as a step and the
rationale it was given. Screenshots are kept (:mod:`ml_platform_tests.harness.browser` says where).
"""

from __future__ import annotations

import pytest
from quant_alpha.features import build_graph

from ml_platform_tests.harness.browser import open_ui
from ml_platform_tests.harness.example_lifecycle import RATIONALE_2
from ml_platform_tests.production.lifecycle import LIFECYCLE_TIMEOUT, StackLifecycle, stack_lifecycle
from ml_platform_tests.production.stack import GROUP, START_TIMEOUT

#: the first test boots the stack and drives the whole lifecycle (about 20 minutes on a busy 2-core machine)
pytestmark = [pytest.mark.xdist_group(GROUP), pytest.mark.postgres, pytest.mark.daemon, pytest.mark.slow,
              pytest.mark.timeout(LIFECYCLE_TIMEOUT + START_TIMEOUT)]

__all__ = ["stack_lifecycle"]

GRAPH = build_graph("sample")
GATES = ("promotion_report", "rationale_gate", "contract_gate", "four_eyes_gate", "thresholds_gate",
         "record_promotion")


def test_the_ui_shows_the_graph_a_features_hashes_the_backfill_and_the_promotion(
        request: pytest.FixtureRequest, stack_lifecycle: StackLifecycle) -> None:
    life = stack_lifecycle.driven
    node = GRAPH["feature_matrix"]
    with open_ui(stack_lifecycle.stack.url, request.node.name) as ui:
        ui.open(f"/locations/{stack_lifecycle.gql.location_name}/asset-groups/features",
                wait_for=[n.key for n in GRAPH if n.spec.group == "features"])
        ui.screenshot("feature-graph")

        ui.asset([node.key], wait_for=["ml_platform/graph_hash", node.graph_hash, "ml_platform/data_hash",
                                       "s3://"])
        ui.show_code_version(node.graph_hash)
        ui.screenshot("feature-matrix")
        # the events tab opens on the latest materialization (Dagster 1.13 ignores a partition in the query): a
        # day's record with its code hash and the manifest hash anchoring the stored manifest
        ui.asset([node.key], view="events",
                 wait_for=["materialized in run", "ml_platform/manifest_hash", node.code_hash])
        ui.screenshot("feature-matrix-events")

        # the backfill's page names its id, each feature and its partitions, not its title
        ui.backfill(life.backfill_id, wait_for=[life.backfill_id, *[n.key for n in GRAPH if n.spec.partitioned]])
        ui.wait_text("Succeeded")
        ui.wait_text("100% completed")
        ui.screenshot("feature-backfill")

        ui.run(life.promotion.run_id, wait_for=["promote_model", "record_promotion"])
        ui.show_steps(f"Succeeded ({len(GATES)})", GATES)
        ui.screenshot("promotion-run")
        ui.show_run_config(RATIONALE_2.split(",")[0])
        ui.screenshot("promotion-rationale")
    assert len(ui.taken) == 6
