"""The example's lifecycle driven through a webserver's GraphQL API, as a desk drives production.

:func:`drive_lifecycle` runs, on any Dagster webserver loading the example's ``quant_alpha`` location: one
asset backfill of every feature over :data:`FEATURES` (the daemon executes it), the training job over
:data:`TRAINING_1` (version 1), the promotion job with a rationale (version 1 becomes champion), the training
job again over :data:`TRAINING_2` (the challenger, version 2), its promotion (with a declared override should
the thresholds refuse it), a rollback job back to version 1, and the infra checks judged as of the last day.
It asserts only that each run succeeded; what the runs left behind is for the tests to check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quant_alpha.features import build_graph
from quant_alpha.project import CALENDAR, MODEL_NAME

from ml_platform.features.calendar import Calendar
from ml_platform.reproduce.backfill import BackfillOutcome
from ml_platform.window import DataWindow
from ml_platform_tests.harness.dagster_graphql import DagsterGraphQL, JobRun

__all__ = ["APPROVER", "FEATURES", "MODEL_NAME", "RATIONALE_1", "RATIONALE_2", "ROLLBACK_REASON", "TRAINED_BY",
           "TRAINING_1", "TRAINING_2", "DrivenLifecycle", "drive_lifecycle"]

FEATURES = DataWindow.parse("2011-07-01..2011-12-30")
TRAINING_1 = DataWindow.parse("2011-07-01..2011-11-30")
TRAINING_2 = DataWindow.parse("2011-08-01..2011-12-30")
#: the infra checks judge the last feature day after its deadline (the close, 16:00 New York, plus 2 hours)
CHECKS_AS_OF = "2011-12-30T23:30:00+00:00"
TRAINED_BY = "quant@desk"
APPROVER = "risk-officer@desk"
RATIONALE_1 = ("First champion of the cross-sectional ridge on momentum, volatility and volume features, trained July "
               "to November 2011 through the production stack. Promoted knowingly on a short record to prove the "
               "desk's plumbing end to end; traded at minimum size until the live record says more.")
RATIONALE_2 = ("Challenger retrained August to December 2011, one month later than the champion, so it has seen the "
               "December tape. We want it live beside the incumbent's record and accept rolling it back at once "
               "should its first live days disappoint the desk's expectations.")
OVERRIDE = "OVERRIDE: the desk accepts weaker validation numbers for this experiment, capped at minimum size.\n"
ROLLBACK_REASON = "the challenger's first live days disappoint: back to the incumbent"


@dataclass(frozen=True)
class DrivenLifecycle:
    """Every run :func:`drive_lifecycle` launched, as the webserver reported them."""

    backfill_id: str
    backfill: BackfillOutcome
    trainings: tuple[JobRun, JobRun]
    versions: tuple[str, str]
    promotions: tuple[JobRun, ...]
    rollback: JobRun
    checks: JobRun

    @property
    def promotion(self) -> JobRun:
        """The successful promotion of the challenger (the last promotion run)."""
        return self.promotions[-1]

    @property
    def runs(self) -> tuple[JobRun, ...]:
        return (*self.trainings, *self.promotions, self.rollback, self.checks)


def _succeeded(run: JobRun) -> JobRun:
    assert run.status == "SUCCESS", run.explain()
    return run


def _train(gql: DagsterGraphQL, window: DataWindow, execution: Mapping[str, Any], timeout: float) -> tuple[JobRun, str]:
    run = _succeeded(gql.run_job("training_job", {
        **execution, "ops": {"training_set": {"config": {"window": str(window)}},
                             "trained_model": {"config": {"model_name": MODEL_NAME, "trained_by": TRAINED_BY}}}},
        timeout=timeout, tags={"ml_platform/test": "training"}))
    [model] = run.materializations["trained_model"]
    return run, str(model["ml_platform/model_version"])


def promote(gql: DagsterGraphQL, version: str, rationale: str, *, execution: Mapping[str, Any],
            timeout: float) -> JobRun:
    """One run of ``promote_model`` for ``version`` approved by :data:`APPROVER`; whatever its outcome."""
    config = {"model": MODEL_NAME, "version": version, "approver": APPROVER, "rationale": rationale}
    return gql.run_job("promote_model", {**execution, "ops": {"promotion_report": {"config": config}}},
                       timeout=timeout, tags={"ml_platform/test": "promotion"})


def drive_lifecycle(gql: DagsterGraphQL, *, execution: Mapping[str, Any] | None = None,
                    timeout: float = 900.0) -> DrivenLifecycle:
    """The whole lifecycle through ``gql`` (see the module); ``execution``: run config every run is given (e.g.
    ``in_process`` on a small machine; empty keeps the deployment's executor)."""
    execution = dict(execution or {})
    graph = build_graph("sample")
    outcome = gql.backfill_features(graph, Calendar(CALENDAR), FEATURES, title=f"features {FEATURES}",
                                    timeout=timeout, run_config=execution or None)
    assert outcome.succeeded, f"the feature backfill {outcome.backfill_id} ended {outcome.status}: {outcome.runs}"
    first, v1 = _train(gql, TRAINING_1, execution, timeout)
    promotions = [_succeeded(promote(gql, v1, RATIONALE_1, execution=execution, timeout=timeout))]
    second, v2 = _train(gql, TRAINING_2, execution, timeout)
    challenger = promote(gql, v2, RATIONALE_2, execution=execution, timeout=timeout)
    promotions.append(challenger)
    if challenger.status != "SUCCESS" and challenger.steps.get("thresholds_gate") == "FAILURE":
        promotions.append(_succeeded(promote(gql, v2, OVERRIDE + RATIONALE_2, execution=execution, timeout=timeout)))
    _succeeded(promotions[-1])
    rollback = _succeeded(gql.run_job("rollback_model", {
        **execution, "ops": {"rollback_champion": {"config": {"reason": ROLLBACK_REASON, "to": v1}}}},
        timeout=timeout, tags={"ml_platform/test": "rollback"}))
    checks = _succeeded(gql.run_job("infra_freshness_job", {
        **execution, "ops": {"infra_checks": {"config": {"as_of": CHECKS_AS_OF}}}},
        timeout=timeout, tags={"ml_platform/test": "infra"}))
    return DrivenLifecycle(outcome.backfill_id, outcome, (first, second), (v1, v2), tuple(promotions), rollback,
                           checks)
