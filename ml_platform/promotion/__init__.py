"""Promotion through gates: a numeric report, a written rationale, the contract, four eyes, thresholds.

How it works, and why: docs/architecture.md, "ml_platform/promotion/__init__.py".
"""

from __future__ import annotations

from ml_platform.promotion.gates import GATE_ORDER, GateResult, NumericReport
from ml_platform.promotion.policy import PromotionPolicy

__all__ = ["GATE_ORDER", "GateResult", "NumericReport", "PromotionPolicy"]
