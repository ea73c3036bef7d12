"""The lifecycle as Dagster runs: features over a window, training set, training, live signals.

The thin layer that ``ml-platform demo``, the end-to-end tests and a notebook share. Every step is a
real Dagster run on the given instance (so it shows up in the UI), with the deployment's resources.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ml_platform.errors import WindowError
from ml_platform.features.assets import DAILY
from ml_platform.features.graph import FeatureGraph
from ml_platform.window import DataWindow

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
FEATURE_KEYS = ("feature_matrix", "forward_return")


def range_tags(window: DataWindow) -> dict[str, str]:
    """Tags that make one Dagster run cover every daily partition of ``window`` (single-run backfill)."""
    for day in (window.start, window.end):
        if not DAILY.has_partition_key(day.isoformat()):
            raise WindowError(
                f"day {day.isoformat()} of window {window} is not a daily partition "
                f"(partitions run from {DAILY.start.date().isoformat()} to yesterday)"
            )
    return {RANGE_START: window.start.isoformat(), RANGE_END: window.end.isoformat()}


def plan_ranges(graph: FeatureGraph, window: DataWindow,
                targets: tuple[str, ...] = FEATURE_KEYS) -> list[tuple[DataWindow, tuple[str, ...]]]:
    """The runs that materialize ``targets`` over ``window`` point-in-time: (span, node keys), in order.

    A node's span is the union, over the nodes that read it, of their spans widened by that edge's
    lookback and lookahead, clipped to the days that are partitions (history starts in 2000; the
    future does not exist yet). Ancestors have spans that start no later and end no earlier than
    their descendants', so ordering runs by (start, later end first) runs ancestors first.
    """
    first = DAILY.start.date()
    last = dt.date.today() - dt.timedelta(days=1)
    span: dict[str, tuple[dt.date, dt.date]] = {}
    order = [n.key for n in graph if n.spec.partitioned]     # the graph iterates topologically
    for key in targets:
        graph[key]
        span[key] = (window.start, window.end)
    for key in reversed(order):
        if key not in span:
            continue
        start, end = span[key]
        for up in graph[key].spec.upstream.values():
            up_start = start - dt.timedelta(days=up.lookback_days)
            up_end = end + dt.timedelta(days=up.lookahead_days)
            old = span.get(up.key, (up_start, up_end))
            span[up.key] = (min(old[0], up_start), max(old[1], up_end))
    groups: dict[tuple[dt.date, dt.date], list[str]] = {}
    for key in order:
        if key in span:
            start, end = max(span[key][0], first), min(span[key][1], last)
            if start > end:
                raise WindowError(f"{key} would need days {span[key][0]}..{span[key][1]}, none of which exist yet")
            groups.setdefault((start, end), []).append(key)
    ranked = sorted(groups.items(), key=lambda item: (item[0][0], -item[0][1].toordinal()))
    return [(DataWindow(start, end), tuple(keys)) for (start, end), keys in ranked]


@dataclass(frozen=True)
class Lifecycle:
    """Runs lifecycle steps of one Definitions object on one Dagster instance.

    Example:
        >>> life = Lifecycle(defs, graph, instance)
        >>> life.features(DataWindow.parse("2011-01-03..2011-06-30"))
    """

    defs: dg.Definitions
    graph: FeatureGraph
    instance: dg.DagsterInstance
    log_level: str = "WARNING"

    def run(self, selection: list[str], *, tags: Mapping[str, str] | None = None,
             run_config: Mapping[str, Any] | None = None) -> dg.ExecuteInProcessResult:
        """One Dagster run materializing ``selection`` with the deployment's resources; raises on failure."""
        assets = list(self.defs.assets or [])
        result = dg.materialize(
            assets, selection=[dg.AssetKey(k) for k in selection], instance=self.instance,
            resources=dict(self.defs.resources or {}), tags=dict(tags or {}),
            run_config={**dict(run_config or {}), "loggers": {"console": {"config": {"log_level": self.log_level}}}},
            raise_on_error=True,
        )
        return result

    def features(self, window: DataWindow) -> list[dg.ExecuteInProcessResult]:
        """Every partitioned feature for ``window``, with the history (and label lookahead) it needs.

        Each node is materialized over the span its descendants need (see :func:`plan_ranges`), in
        ancestor-first runs, so every lookback partition exists before a node reads it.
        """
        return [self.materialize(keys, span) for span, keys in plan_ranges(self.graph, window)]

    def materialize(self, keys: tuple[str, ...] | list[str], window: DataWindow) -> dg.ExecuteInProcessResult:
        """One run materializing the daily-partitioned ``keys`` over every day of ``window``."""
        return self.run(list(keys), tags=range_tags(window))

    def training_set(self, window: DataWindow) -> dg.ExecuteInProcessResult:
        """Assemble the training set over ``window`` (its features and labels must be materialized)."""
        return self.run(["training_set"], run_config={"ops": {"training_set": {"config": {"window": str(window)}}}})

    def train(self, **config: Any) -> dg.ExecuteInProcessResult:
        """Train, validate and register a version of the model (``config``: TrainingRunConfig fields)."""
        return self.run(["trained_model"], run_config={"ops": {"trained_model": {"config": config}}})

    def live(self, window: DataWindow, model_name: str | None = None) -> dg.ExecuteInProcessResult:
        """Live signals (through the contract check) and PnL for ``window``."""
        config = {"ops": {"live_signals": {"config": {"model_name": model_name}}}} if model_name else {}
        return self.run(["live_signals", "live_pnl"], tags=range_tags(window), run_config=config)
