"""Trace a live signal back to everything that made it, as recorded when it was written.

* :mod:`~ml_platform.trace.record` (pure): :class:`TraceRecord` and its parts, frozen, with ``to_dict``;
* :mod:`~ml_platform.trace.resolve` (pure): the signal's partition version, row, ledger entry in force and
  recorded lineage (by data hash, through :mod:`ml_platform.reproduce.recorded`);
* :mod:`~ml_platform.trace.recompute` (pure): the signal recomputed in this process, compared bit for bit;
* :mod:`~ml_platform.trace.report` (pure): markdown and HTML with a lineage picture;
* :mod:`~ml_platform.trace.service`: :func:`trace_signal`, opening the store and registry from the settings;
* :mod:`~ml_platform.trace.command`: ``ml-platform trace``.

Example:
    >>> record = trace_signal("team_b_ridge", "2021-06-02", "ALPH", recompute=True)  # doctest: +SKIP
    >>> record.champion.actor, record.model.version, record.recompute.equal  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "ChampionEntry",
    "Evidence",
    "FeatureRow",
    "ModelFacts",
    "Recomputation",
    "SignalValue",
    "StoredVersion",
    "TraceRecord",
    "render_html",
    "render_markdown",
    "trace_signal",
    "write_trace_report",
]

_EXPORTS = {
    "trace_signal": "ml_platform.trace.service",
    "render_markdown": "ml_platform.trace.report",
    "render_html": "ml_platform.trace.report",
    "write_trace_report": "ml_platform.trace.command",
    **{name: "ml_platform.trace.record" for name in ("ChampionEntry", "Evidence", "FeatureRow", "ModelFacts",
                                                      "Recomputation", "SignalValue", "StoredVersion",
                                                      "TraceRecord")},
}

if TYPE_CHECKING:  # pragma: no cover
    from ml_platform.trace.command import write_trace_report
    from ml_platform.trace.record import (
        ChampionEntry,
        Evidence,
        FeatureRow,
        ModelFacts,
        Recomputation,
        SignalValue,
        StoredVersion,
        TraceRecord,
    )
    from ml_platform.trace.report import render_html, render_markdown
    from ml_platform.trace.service import trace_signal


def __getattr__(name: str) -> Any:
    import importlib

    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ml_platform.trace' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
