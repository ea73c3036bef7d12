"""The lifecycle as Dagster runs: features over a window, training set, training, live signals.

The thin layer that ``ml-platform demo``, the end-to-end tests and a notebook share. Every step is a
real Dagster run on the given instance (so it shows up in the UI), with the deployment's resources.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping

import dagster as dg

from ml_platform.errors import WindowError
from ml_platform.features.assets import DAILY
from ml_platform.features.graph import FeatureGraph
from ml_platform.window import DataWindow

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
FEATURE_KEYS = ("daily_returns", "momentum", "realized_vol", "volume_zscore", "cross_sectional_ranks",
                "feature_matrix", "forward_return")


def range_tags(window: DataWindow) -> dict[str, str]:
    """Tags that make one Dagster run cover every daily partition of ``window`` (single-run backfill)."""
    for day in (window.start, window.end):
        if not DAILY.has_partition_key(day.isoformat()):
            raise WindowError(
                f"day {day.isoformat()} of window {window} is not a daily partition "
                f"(partitions run from {DAILY.start.date().isoformat()} to yesterday)"
            )
    return {RANGE_START: window.start.isoformat(), RANGE_END: window.end.isoformat()}


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

    def _run(self, selection: list[str], *, tags: Mapping[str, str] | None = None,
             run_config: Mapping[str, Any] | None = None) -> dg.ExecuteInProcessResult:
        assets = list(self.defs.assets or [])
        result = dg.materialize(
            assets, selection=[dg.AssetKey(k) for k in selection], instance=self.instance,
            resources=dict(self.defs.resources or {}), tags=dict(tags or {}), run_config=dict(run_config or {}),
            raise_on_error=True,
        )
        return result

    def history_needed(self) -> tuple[int, int]:
        """Calendar days of market data needed before and after a feature window (lookback, lookahead)."""
        back = self._max_span("lookback_days")
        ahead = max((u.lookahead_days for n in self.graph for u in n.spec.upstream.values()), default=0)
        return back, ahead

    def _max_span(self, attr: str) -> int:
        memo: dict[str, int] = {}

        def span(key: str) -> int:
            if key not in memo:
                ups = self.graph[key].spec.upstream.values()
                memo[key] = max((getattr(u, attr) + span(u.key) for u in ups), default=0)
            return memo[key]

        return max(span(n.key) for n in self.graph if n.spec.partitioned)

    def market(self, window: DataWindow) -> dg.ExecuteInProcessResult:
        """Materialize market bars for ``window`` in one run."""
        return self._run(["market_bars"], tags=range_tags(window))

    def features(self, window: DataWindow) -> dg.ExecuteInProcessResult:
        """Market bars with the history and lookahead the graph needs, then every feature for ``window``."""
        back, ahead = self.history_needed()
        yesterday = dt.date.today() - dt.timedelta(days=1)
        market = window.shift(before=back, after=ahead)
        market = DataWindow(max(market.start, DAILY.start.date()), min(market.end, yesterday))
        self.market(market)
        return self._run(list(FEATURE_KEYS), tags=range_tags(window))

    def training_set(self, window: DataWindow) -> dg.ExecuteInProcessResult:
        """Assemble the training set over ``window`` (its features and labels must be materialized)."""
        return self._run(["training_set"], run_config={"ops": {"training_set": {"config": {"window": str(window)}}}})

    def train(self, **config: Any) -> dg.ExecuteInProcessResult:
        """Train, validate and register a version of the model (``config``: TrainingRunConfig fields)."""
        return self._run(["trained_model"], run_config={"ops": {"trained_model": {"config": config}}})

    def live(self, window: DataWindow, model_name: str | None = None) -> dg.ExecuteInProcessResult:
        """Live signals (through the contract check) and PnL for ``window``."""
        config = {"ops": {"live_signals": {"config": {"model_name": model_name}}}} if model_name else {}
        return self._run(["live_signals", "live_pnl"], tags=range_tags(window), run_config=config)
