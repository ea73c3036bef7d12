"""Promotion through gates: a numeric report, a written rationale, the contract, four eyes, thresholds.

* :mod:`~ml_platform.promotion.policy` and :mod:`~ml_platform.promotion.gates`: pure (no Dagster, no MLflow);
* :mod:`~ml_platform.promotion.report`: JSON + HTML + PNG (matplotlib ``Figure``, no pyplot);
* :mod:`~ml_platform.promotion.service`: the steps over the registry, the store and the champion ledger;
* :mod:`~ml_platform.promotion.job`: :func:`build_promotion_job`, the ``promote_model`` Dagster job;
* :mod:`~ml_platform.promotion.rollback_job`: :func:`build_rollback_job`, the ``rollback_model`` Dagster job;
* :mod:`~ml_platform.promotion.runs`: :func:`~ml_platform.promotion.runs.run_refusal`, the refused gate of a run;
* :mod:`~ml_platform.cli.promote`: ``ml-platform promote``.
"""

from __future__ import annotations

from ml_platform.promotion.gates import GATE_ORDER, GateResult, NumericReport
from ml_platform.promotion.policy import PromotionPolicy

__all__ = ["GATE_ORDER", "GateResult", "NumericReport", "PromotionPolicy"]
