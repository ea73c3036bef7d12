"""The key columns of a feature graph's frames: one time column and the entity columns. Pure.

Every frame a feature node returns, a model scores and a signal asset writes is keyed by one row per
(time, entity...) value. The platform never assumes the names: a graph declares them once
(``FeatureGraph(..., keys=FrameKeys("date", ("instrument",)))``) and every layer reads them from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ml_platform.errors import ConfigurationError

__all__ = ["DEFAULT_KEYS", "FrameKeys"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FrameKeys:
    """Which columns identify a row: a time column (Date or Datetime) and one or more entity columns.

    Attributes:
        time: the column partitions are split on and cross-sections are grouped by (``date``, ``week``).
        entities: the columns naming the thing observed (``instrument``; ``exchange``, ``ticker``).

    Example:
        >>> FrameKeys("week", ("ticker",)).columns
        ('week', 'ticker')
    """

    time: str = "date"
    entities: tuple[str, ...] = ("instrument",)

    def __post_init__(self) -> None:
        entities = (self.entities,) if isinstance(self.entities, str) else tuple(self.entities)
        object.__setattr__(self, "entities", entities)
        names = (self.time, *entities)
        if not entities:
            raise ConfigurationError("FrameKeys needs at least one entity column (e.g. ('instrument',))")
        for name in names:
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigurationError(
                    f"key column {name!r} is not a plain column name (letters, digits, _; not starting "
                    "with a digit)"
                )
        if len(set(names)) != len(names):
            raise ConfigurationError(f"key columns {names} repeat a name; list each column once")

    @property
    def columns(self) -> tuple[str, ...]:
        """``(time, *entities)``: the canonical sort order of every keyed frame."""
        return (self.time, *self.entities)

    def to_dict(self) -> dict[str, object]:
        return {"time": self.time, "entities": list(self.entities)}

    @classmethod
    def from_dict(cls, data: object) -> FrameKeys:
        if not isinstance(data, dict) or set(data) != {"time", "entities"}:
            raise ConfigurationError(f"a FrameKeys record is {{'time', 'entities'}}, got {data!r}")
        return cls(data["time"], tuple(data["entities"]))

    def __str__(self) -> str:
        return ", ".join(self.columns)


#: ``date`` and ``instrument``: the keys of a daily cross-sectional equity graph, used when a graph names none.
DEFAULT_KEYS = FrameKeys()
