"""Which recorded versions one reproduction pass rebuilds, when a model's live days read other versions.

How it works, and why: docs/architecture.md, "ml_platform/reproduce/passes.py".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ml_platform.io.recorded_lineage import Ident, Node, RecordedLineage, RecordedPartition

__all__ = ["PassPlan", "ReproductionPass", "plan_passes"]


@dataclass(frozen=True)
class ReproductionPass:
    """One pass: what to seed, what to rebuild, which live days to score, all consistent with each other.

    Attributes:
        index: 0 for the pass that also rebuilds and retrains the training set.
        seeded: source versions to write as delivered (those the store does not hold as head already).
        rebuilt: computed versions to rebuild by the backfill (neither sources, nor the training set, nor
            the live signal days), in walk order.
        live_days: the live signal days this pass scores.
    """

    index: int
    seeded: tuple[RecordedPartition, ...]
    rebuilt: tuple[RecordedPartition, ...]
    live_days: tuple[RecordedPartition, ...]

    def as_lineage(self, root: RecordedPartition) -> RecordedLineage:
        """The pass's sources as a complete lineage (what :func:`~ml_platform.reproduce.sources.seed_sources` takes)."""
        return RecordedLineage(root, (root, *self.seeded), ())


@dataclass(frozen=True)
class PassPlan:
    """The passes, in order, and the live days no pass can hold (their own lineage reads one partition at
    two versions), each with the first such partition."""

    passes: tuple[ReproductionPass, ...]
    unplaceable: tuple[tuple[RecordedPartition, str], ...]


def _reachable(start: Iterable[Node], index: dict[Node, RecordedPartition]) -> list[Node]:
    """Every version reachable from ``start`` over upstream references as each reader read them (data hash
    and provenance), ``start`` first, in walk order."""
    order: list[Node] = []
    seen: set[Node] = set()
    stack = list(start)[::-1]
    while stack:
        node = stack.pop()
        if node in seen or node not in index:
            continue
        seen.add(node)
        order.append(node)
        stack.extend(index[node].upstream_versions()[::-1])
    return order


def _first_conflict(versions: Iterable[Ident]) -> str | None:
    held: dict[tuple[str, str | None], str] = {}
    for key, partition, data_hash in versions:
        other = held.setdefault((key, partition), data_hash)
        if other != data_hash:
            where = key if partition is None else f"{key} partition {partition}"
            return f"{where} at {other} and at {data_hash}"
    return None


def _join(group: tuple[dict[tuple[str, str | None], str], list[Node], list[RecordedPartition]],
          reach: Iterable[Node]) -> None:
    held, order, _ = group
    for node in reach:
        if (node[0], node[1]) not in held:
            held[(node[0], node[1])] = node[2]
            order.append(node)


def plan_passes(lineage: RecordedLineage, live_days: Sequence[RecordedPartition]) -> PassPlan:
    """Split ``lineage`` (the training set's root and ``live_days``, walked together) into passes.

    Pass 0 holds the training set's lineage and every live day consistent with it; each other live day,
    in the order given, joins the first later pass it is consistent with, or opens a new one.

    Raises:
        ValueError: the lineage has no root (an incomplete lineage is refused before planning).
    """
    if lineage.root is None:
        raise ValueError("a reproduction plan needs the training set's recorded version (the lineage has no root)")
    index = {p.version: p for p in lineage.partitions}
    root = lineage.root.ident
    live_ids = {d.ident for d in live_days}
    groups: list[tuple[dict[tuple[str, str | None], str], list[Node], list[RecordedPartition]]] = [({}, [], [])]
    _join(groups[0], _reachable([lineage.root.version], index))
    unplaceable: list[tuple[RecordedPartition, str]] = []
    for day in live_days:
        reach = _reachable([day.version], index)
        conflict = _first_conflict(node[:3] for node in reach)
        if conflict is not None:
            unplaceable.append((day, conflict))
            continue
        group = next((g for g in groups if all(g[0].get((k, p), h) == h for k, p, h, _ in reach)), None)
        if group is None:
            group = ({}, [], [])
            groups.append(group)
        _join(group, reach)
        group[2].append(day)
    passes = []
    heads: dict[tuple[str, str | None], str] = {}  # what the reproduction's store holds after each pass
    for number, (_, order, days) in enumerate(groups):
        wanted = [index[n] for n in order if heads.get((n[0], n[1])) != n[2]]
        for key, partition, data_hash, _ in order:
            heads[(key, partition)] = data_hash
        passes.append(ReproductionPass(
            number,
            seeded=tuple(p for p in wanted if p.is_source),
            rebuilt=tuple(p for p in wanted if not p.is_source and p.ident != root and p.ident not in live_ids),
            live_days=tuple(days)))
    return PassPlan(tuple(passes), tuple(unplaceable))
