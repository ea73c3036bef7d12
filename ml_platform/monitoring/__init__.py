"""Bimodal monitoring: infra freshness pages on-call, alpha drift goes to research and never pages.

* :mod:`~ml_platform.monitoring.alerts`: the two alert types (pure);
* :mod:`~ml_platform.monitoring.infra`: the infra checks (pure);
* :mod:`~ml_platform.monitoring.drift`: the alpha drift statistics (pure);
* :mod:`~ml_platform.monitoring.outbox` and :mod:`~ml_platform.monitoring.routes`: the outbox and the two routes;
* the Dagster wiring (asset checks, sensors, jobs) on top.
"""

from __future__ import annotations

from ml_platform.monitoring.alerts import (
    AlphaDriftFinding,
    IncidentAction,
    InfraCheckKind,
    InfraIncident,
    Severity,
)

__all__ = ["AlphaDriftFinding", "IncidentAction", "InfraCheckKind", "InfraIncident", "Severity"]
