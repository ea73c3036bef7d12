"""A feature graph's calendar: a Dagster time-window partitions definition, read as data windows.

Any :class:`dagster.TimeWindowPartitionsDefinition` whose partitions last at least a day works: daily
from any start date, business days (``cron_schedule="0 0 * * 1-5"``), weekly, monthly. A partition
covers the calendar days ``[window start, window end)``; a run over several partitions covers the
union. Lookbacks stated in calendar days become enough partitions to cover that many days.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property

import dagster as dg

from ml_platform.errors import ConfigurationError, PartitionError, WindowError
from ml_platform.features.spec import Upstream
from ml_platform.window import DataWindow

__all__ = ["Calendar"]

_SAMPLE = 64  # partitions looked at to find the shortest one (covers every month of five years)


@dataclass(frozen=True)
class Calendar:
    """The partitions of a graph, with the day arithmetic the platform needs.

    Raises:
        ConfigurationError: the partitions definition is not time-windowed, or its partitions are
            shorter than a day.
    """

    partitions_def: dg.TimeWindowPartitionsDefinition

    def __post_init__(self) -> None:
        pd = self.partitions_def
        if not isinstance(pd, dg.TimeWindowPartitionsDefinition):
            raise ConfigurationError(
                f"the feature graph's partitions must be a dagster.TimeWindowPartitionsDefinition (daily, "
                f"business days, weekly...), got {type(pd).__name__}; point-in-time lookbacks need a calendar"
            )
        if self.min_days < 1:
            raise ConfigurationError(
                f"partitions of {pd.cron_schedule!r} last less than a day; ml_platform supports calendars of "
                "daily or longer partitions (daily, business days, weekly, monthly)"
            )

    @cached_property
    def min_days(self) -> int:
        """The shortest partition in whole days (1 for daily and business days, 7 for weekly)."""
        first = self.partitions_def.get_first_partition_window()
        if first is None:
            return 1
        shortest = first.end - first.start
        window = first
        for _ in range(_SAMPLE):
            window = self.partitions_def.get_next_partition_window(window.end, respect_bounds=False)
            if window is None:
                break
            shortest = min(shortest, window.end - window.start)
        return shortest.days

    def offsets(self, up: Upstream) -> tuple[int, int]:
        """Partitions of history and of future an edge needs: its partition offsets plus its days."""
        return (up.lookback + math.ceil(up.lookback_days / self.min_days),
                up.lookahead + math.ceil(up.lookahead_days / self.min_days))

    def partition_mapping(self, up: Upstream) -> dg.TimeWindowPartitionMapping:
        before, after = self.offsets(up)
        return dg.TimeWindowPartitionMapping(
            start_offset=-before, end_offset=after, allow_nonexistent_upstream_partitions=True)

    def window_of_key(self, key: str) -> DataWindow:
        """The calendar days partition ``key`` covers."""
        try:
            tw = self.partitions_def.time_window_for_partition_key(key)
        except Exception as exc:  # dagster raises several types for a malformed key
            raise PartitionError(f"{key!r} is not a partition key of this calendar: {exc}") from exc
        return DataWindow(tw.start.date(), (tw.end - dt.timedelta(days=1)).date())

    def window_of_keys(self, first: str, last: str) -> DataWindow:
        """The calendar days partitions ``first`` to ``last`` cover."""
        return DataWindow(self.window_of_key(first).start, self.window_of_key(last).end)

    def all_keys(self) -> list[str]:
        return self.partitions_def.get_partition_keys()

    def _span(self, keys: list[str], window: DataWindow) -> tuple[int, int]:
        """``[lo, hi)`` indexes of the keys whose window starts on a day of ``window`` (keys are in time order)."""
        def start(key: str) -> dt.date:
            return self.window_of_key(key).start
        return (bisect.bisect_left(keys, window.start, key=start),
                bisect.bisect_right(keys, window.end, key=start))

    def keys_in(self, window: DataWindow) -> list[str]:
        """Partition keys whose window starts on a day of ``window``, in order."""
        keys = self.all_keys()
        lo, hi = self._span(keys, window)
        return keys[lo:hi]

    def keys_with_offsets(self, window: DataWindow, before: int, after: int) -> list[str]:
        """The partitions of ``window`` widened by ``before``/``after`` partitions, clipped to existing ones."""
        keys = self.all_keys()
        lo, hi = self._span(keys, window)
        if lo >= hi:
            raise WindowError(f"window {window} holds no partition of this calendar "
                              f"(first: {keys[0] if keys else 'none'}, last: {keys[-1] if keys else 'none'})")
        return keys[max(0, lo - before): hi + after]
