"""The lifecycle as Dagster runs: features over a window, training set, training, live signals.

The thin layer that a project's demo, its tests and a notebook share. Every step is a real Dagster run
on the given instance (so it shows up in the UI), with the Definitions' own resources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from ml_platform.dagster_boundary import platform_error_of
from ml_platform.errors import ConfigurationError, GraphError, WindowError
from ml_platform.features.assets import FeatureAssetsTranslator
from ml_platform.features.calendar import Calendar
from ml_platform.features.graph import FeatureGraph
from ml_platform.model_assets import LIVE_PNL, LIVE_SIGNALS, TRAINED_MODEL
from ml_platform.window import DataWindow

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

__all__ = ["Lifecycle", "plan_ranges", "range_tags"]


def range_tags(calendar: Calendar, window: DataWindow) -> dict[str, str]:
    """Tags that make one Dagster run cover every partition of ``window`` (single-run backfill)."""
    keys = calendar.keys_in(window)
    if not keys:
        raise WindowError(f"window {window} holds no partition of the calendar (partitions start "
                          f"{calendar.partitions_def.start.date().isoformat()} and end before today)")
    return {RANGE_START: keys[0], RANGE_END: keys[-1]}


def _partitioned_sinks(graph: FeatureGraph) -> tuple[str, ...]:
    """Partitioned nodes no other partitioned node reads: what a window's features end in."""
    read = {up.key for n in graph if n.spec.partitioned for up in n.spec.upstream.values()}
    return tuple(n.key for n in graph if n.spec.partitioned and n.key not in read)


def plan_ranges(graph: FeatureGraph, calendar: Calendar, window: DataWindow,
                targets: Sequence[str] | None = None) -> list[tuple[DataWindow, tuple[str, ...]]]:
    """The runs that materialize ``targets`` over ``window`` point-in-time: (span, node keys), in order.

    A node's span, in partitions, is the union over the nodes that read it of their spans widened by
    that edge's lookback and lookahead, clipped to the partitions that exist (history has a first
    partition; the future does not exist yet). Ancestors have spans that start no later and end no
    earlier than their descendants', so ordering runs by (start, later end first) runs ancestors first.

    Args:
        targets: node keys to materialize; default every partitioned node no other partitioned node reads.
    """
    keys = calendar.all_keys()
    position = {k: i for i, k in enumerate(keys)}
    inside = calendar.keys_in(window)
    if not inside:
        raise WindowError(f"window {window} holds no partition of the graph's calendar")
    first, last = position[inside[0]], position[inside[-1]]
    order = [n.key for n in graph if n.spec.partitioned]  # the graph iterates topologically
    span: dict[str, tuple[int, int]] = {}
    for key in targets if targets is not None else _partitioned_sinks(graph):
        if not graph[key].spec.partitioned:
            raise GraphError(f"{key!r} is a windowed node; plan_ranges materializes partitioned nodes")
        span[key] = (first, last)
    for key in reversed(order):
        if key not in span:
            continue
        start, end = span[key]
        for up in graph[key].spec.upstream.values():
            before, after = calendar.offsets(up)
            old = span.get(up.key, (start - before, end + after))
            span[up.key] = (min(old[0], start - before), max(old[1], end + after))
    groups: dict[tuple[int, int], list[str]] = {}
    for key in order:
        if key in span:
            start, end = max(span[key][0], 0), min(span[key][1], len(keys) - 1)
            if start > end:
                raise WindowError(f"{key} would need partitions none of which exist yet")
            groups.setdefault((start, end), []).append(key)
    ranked = sorted(groups.items(), key=lambda item: (item[0][0], -item[0][1]))
    return [(calendar.window_of_keys(keys[s], keys[e]), tuple(nodes)) for (s, e), nodes in ranked]


@dataclass(frozen=True)
class Lifecycle:
    """Runs lifecycle steps of one Definitions object on one Dagster instance.

    Args:
        defs: the Definitions holding the graph's feature assets (and model assets, to train and serve).
        graph: the feature graph the assets were built from.
        instance: the Dagster instance the runs are recorded in.
        key_prefix: the asset key prefix the assets were built with.
        log_level: console log level of the runs.

    Example:
        >>> life = Lifecycle(defs, graph, instance)
        >>> life.features(DataWindow.parse("2011-01-03..2011-06-30"))
    """

    defs: dg.Definitions
    graph: FeatureGraph
    instance: dg.DagsterInstance
    key_prefix: str | Sequence[str] = ()
    log_level: str = "WARNING"
    translator: FeatureAssetsTranslator = field(init=False)
    calendar: Calendar = field(init=False)

    def __post_init__(self) -> None:
        translator = FeatureAssetsTranslator(self.key_prefix)
        object.__setattr__(self, "translator", translator)
        partitioned = next((n for n in self.graph if n.spec.partitioned), None)
        if partitioned is None:
            raise GraphError("the graph has no partitioned node: nothing to materialize over a window")
        key = translator.get_asset_key(partitioned)
        found = [a for a in self.defs.assets or [] if isinstance(a, dg.AssetsDefinition) and key in a.keys]
        if not found or found[0].partitions_def is None:
            raise ConfigurationError(
                f"the Definitions hold no partitioned asset {key.to_user_string()}: build them with "
                f"build_feature_assets(graph, ..., key_prefix={tuple(translator.key_prefix)!r})")
        object.__setattr__(self, "calendar", Calendar(found[0].partitions_def))  # type: ignore[arg-type]

    def asset_key(self, name: str) -> dg.AssetKey:
        """The asset key of a node or model asset name under this project's prefix."""
        return dg.AssetKey([*self.translator.key_prefix, name])

    def run(self, selection: Sequence[str], *, tags: Mapping[str, str] | None = None,
            run_config: Mapping[str, Any] | None = None) -> dg.ExecuteInProcessResult:
        """One Dagster run materializing ``selection`` (names under the prefix); raises on failure.

        A platform error an asset raised (which Dagster records as a ``dagster.Failure`` with its code as
        metadata) is raised here as itself, e.g. :class:`~ml_platform.errors.ContractViolation`, with the
        Failure as its context.
        """
        try:
            return dg.materialize(
                list(self.defs.assets or []), selection=[self.asset_key(k) for k in selection],
                instance=self.instance, resources=dict(self.defs.resources or {}), tags=dict(tags or {}),
                run_config={**dict(run_config or {}),
                            "loggers": {"console": {"config": {"log_level": self.log_level}}}},
                raise_on_error=True,
            )
        except dg.Failure as failure:
            error = platform_error_of(failure)
            if error is None:
                raise
            raise error  # its own __cause__ (a third-party error, say) stays; the Failure becomes its context

    def _op(self, name: str) -> str:
        return self.asset_key(name).to_python_identifier()

    def features(self, window: DataWindow,
                 targets: Sequence[str] | None = None) -> list[dg.ExecuteInProcessResult]:
        """Every partitioned feature for ``window``, with the history (and label lookahead) it needs.

        Each node is materialized over the span its descendants need (see :func:`plan_ranges`), in
        ancestor-first runs, so every lookback partition exists before a node reads it.
        """
        return [self.materialize(keys, span) for span, keys in self.plan(window, targets)]

    def plan(self, window: DataWindow,
             targets: Sequence[str] | None = None) -> list[tuple[DataWindow, tuple[str, ...]]]:
        """The ranges :meth:`features` runs, without running them."""
        return plan_ranges(self.graph, self.calendar, window, targets)

    def materialize(self, keys: Sequence[str], window: DataWindow) -> dg.ExecuteInProcessResult:
        """One run materializing the partitioned ``keys`` over every partition of ``window``."""
        return self.run(list(keys), tags=range_tags(self.calendar, window))

    def training_set(self, window: DataWindow, node: str | None = None) -> dg.ExecuteInProcessResult:
        """Assemble a windowed node (default: the graph's only one) over ``window``."""
        windowed = [n.key for n in self.graph if not n.spec.partitioned]
        if node is None:
            if len(windowed) != 1:
                raise GraphError(f"the graph has windowed nodes {windowed}; name the one to assemble")
            node = windowed[0]
        return self.run([node], run_config={"ops": {self._op(node): {"config": {"window": str(window)}}}})

    def train(self, **config: Any) -> dg.ExecuteInProcessResult:
        """Train, validate and register a model version (``config``: TrainingRunConfig fields)."""
        return self.run([TRAINED_MODEL], run_config={"ops": {self._op(TRAINED_MODEL): {"config": config}}})

    def live(self, window: DataWindow, model_name: str | None = None,
             targets: Sequence[str] = (LIVE_SIGNALS, LIVE_PNL)) -> dg.ExecuteInProcessResult:
        """Live signals (through the contract check) and PnL for ``window``; ``targets`` picks one of them."""
        unknown = sorted(set(targets) - {LIVE_SIGNALS, LIVE_PNL})
        if unknown or not targets:
            raise ConfigurationError(f"Lifecycle.live targets must be among {[LIVE_SIGNALS, LIVE_PNL]}, got "
                                     f"{list(targets)!r}")
        config = {"ops": {self._op(LIVE_SIGNALS): {"config": {"model_name": model_name}}}} \
            if model_name and LIVE_SIGNALS in targets else {}
        return self.run(list(targets), tags=range_tags(self.calendar, window), run_config=config)
