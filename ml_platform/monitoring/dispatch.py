"""From check results to the two routes: infra outcomes to the pager, a drift finding to research.

Each function takes the one route it may use, typed: :func:`dispatch_infra` a pager route of
``InfraIncident``, :func:`research_report` a research route of ``AlphaDriftFinding``. Neither can be
handed the other route's alerts (the routes also refuse them at run time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ml_platform.dagster_boundary import link_metadata
from ml_platform.errors import ConfigurationError
from ml_platform.metadata import file_link
from ml_platform.monitoring.alerts import AlphaDriftFinding, InfraIncident
from ml_platform.monitoring.drift import finding_of
from ml_platform.monitoring.drift_report import render_drift_report
from ml_platform.monitoring.infra import InfraOutcome, incident_of
from ml_platform.monitoring.observe import DriftObservation
from ml_platform.monitoring.routes import PagerRoute, Route
from ml_platform.registry import run_files
from ml_platform.registry.store import ModelRegistry

__all__ = ["DRIFT_DIR", "ResearchOutcome", "dispatch_infra", "research_report"]

DRIFT_DIR = "monitoring/alpha_drift"


def dispatch_infra(route: PagerRoute, outcomes: Sequence[InfraOutcome], now: dt.datetime) -> dict[str, str]:
    """Page every failing outcome and resolve every open incident whose check now passes.

    Returns incident key -> what the route did (``delivered``, ``suppressed``, ``pending``...). A check
    that was not judged (``skipped``) neither pages nor resolves.
    """
    done: dict[str, str] = {}
    open_incidents = route.open_incidents()
    for outcome in outcomes:
        if not outcome.passed:
            done[outcome.key] = str(route.send(incident_of(outcome, observed_at=now)).status)
        elif outcome.skipped is None and outcome.key in open_incidents:
            opened = InfraIncident.from_dict(open_incidents[outcome.key].alert or {})
            resolve = opened.resolved(f"recovered: {outcome.summary}", observed_at=now.astimezone(dt.UTC).isoformat())
            done[outcome.key] = str(route.send(resolve).status)
    return done


@dataclass(frozen=True)
class ResearchOutcome:
    """What the alpha drift job did: the finding (if any), where the report is, what research was sent."""

    observation: DriftObservation
    finding: AlphaDriftFinding | None
    report_ref: str | None
    plot_path: str | None  # the plot's local path, or its MLflow server URL (run_files.artifact_link)
    markdown: str
    delivery: str | None

    def metadata(self) -> dict[str, Any]:
        import dagster as dg

        meta: dict[str, Any] = {"report": dg.MetadataValue.md(self.markdown),
                                "drifted": self.finding is not None, "research": self.delivery or "not sent"}
        if self.report_ref:
            meta["report_ref"] = self.report_ref
        if self.plot_path:
            meta["plot"] = link_metadata(file_link(self.plot_path))
        return meta


def research_report(registry: ModelRegistry, route: Route[AlphaDriftFinding], observation: DriftObservation, *,
                    created_at: dt.datetime) -> ResearchOutcome:
    """Store the research report beside the champion version in MLflow, then send the finding to research.

    The report is written whatever the verdict (it is the record of the evaluation); the finding is sent
    only when the champion drifted.
    """
    if observation.version is None:
        raise ConfigurationError(f"model {observation.model!r} has no champion of record; nothing to report on")
    stamp = created_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    evaluation = observation.evaluation
    rendered = render_drift_report(evaluation, observation.validated, observation.live, model=observation.model,
                                   version=observation.version, time=observation.time_column,
                                   created_at=created_at.astimezone(dt.UTC).isoformat())
    run_id = registry.model_version(observation.model, observation.version).run_id
    folder = f"{DRIFT_DIR}/{stamp}"
    run_files.log_files(registry, run_id, folder, rendered.files())
    report_ref = run_files.artifact_ref(run_id, f"{folder}/report.html")
    plot = run_files.artifact_link(registry, run_id, f"{folder}/report.png").target
    finding = finding_of(evaluation, model=observation.model, version=observation.version)
    delivery = None
    if finding is not None:
        finding = finding.with_report(report_ref)
        delivery = str(route.send(finding).status)
    return ResearchOutcome(observation, finding, report_ref, plot, rendered.markdown, delivery)

