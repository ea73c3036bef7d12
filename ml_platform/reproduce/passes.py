"""Which recorded versions one reproduction pass rebuilds, when a model's live days read other versions.

One store holds one head per partition, so one pass can only rebuild a *consistent* set of versions (one
data hash per node and partition). The training set's lineage is always consistent; a live day the model
served may have read a partition at another version than training did (a vendor revised a day of the
lookback after training, and the live features read the revision). Such a day cannot share a pass with
the training set, so it gets a later pass: its sources are seeded again at the versions it read, and only
the versions it read that the store does not already hold as the head are rebuilt. A version is named by
``(key, partition, data hash)`` and its manifest fixes the upstream versions it read, so a version
rebuilt in an earlier pass stays what it was whatever later passes write.

Pure logic over :class:`~ml_platform.reproduce.recorded.RecordedLineage`: no Dagster, no MLflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ml_platform.reproduce.recorded import RecordedLineage, RecordedPartition

__all__ = ["ReproductionPass", "ReproductionPlan", "plan_passes"]

Ident = tuple[str, str | None, str]


def _ident(part: RecordedPartition) -> Ident:
    return (part.key, part.partition, part.data_hash)


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
class ReproductionPlan:
    """The passes, in order, and the live days no pass can hold (their own lineage reads one partition at
    two versions), each with the first such partition."""

    passes: tuple[ReproductionPass, ...]
    unplaceable: tuple[tuple[RecordedPartition, str], ...]


def _reachable(start: Iterable[Ident], index: dict[Ident, RecordedPartition]) -> list[Ident]:
    """Every version reachable from ``start`` over upstream references, ``start`` first, in walk order."""
    order: list[Ident] = []
    seen: set[Ident] = set()
    stack = list(start)[::-1]
    while stack:
        ident = stack.pop()
        if ident in seen or ident not in index:
            continue
        seen.add(ident)
        order.append(ident)
        stack.extend((ref.key, ref.partition, ref.data_hash) for ref in index[ident].upstream[::-1])
    return order


def _first_conflict(versions: Iterable[Ident]) -> str | None:
    held: dict[tuple[str, str | None], str] = {}
    for key, partition, data_hash in versions:
        other = held.setdefault((key, partition), data_hash)
        if other != data_hash:
            where = key if partition is None else f"{key} partition {partition}"
            return f"{where} at {other} and at {data_hash}"
    return None


def plan_passes(lineage: RecordedLineage, live_days: Sequence[RecordedPartition]) -> ReproductionPlan:
    """Split ``lineage`` (the training set's root and ``live_days``, walked together) into passes.

    Pass 0 holds the training set's lineage and every live day consistent with it; each other live day,
    in the order given, joins the first later pass it is consistent with, or opens a new one.

    Raises:
        ValueError: the lineage has no root (an incomplete lineage is refused before planning).
    """
    if lineage.root is None:
        raise ValueError("a reproduction plan needs the training set's recorded version (the lineage has no root)")
    index = {_ident(p): p for p in lineage.partitions}
    root = _ident(lineage.root)
    live_ids = {_ident(d) for d in live_days}
    groups: list[tuple[dict[tuple[str, str | None], str], list[Ident], list[RecordedPartition]]] = []
    training = _reachable([root], index)
    groups.append(({(k, p): h for k, p, h in training}, training, []))
    unplaceable: list[tuple[RecordedPartition, str]] = []
    for day in live_days:
        reach = _reachable([_ident(day)], index)
        conflict = _first_conflict(reach)
        if conflict is not None:
            unplaceable.append((day, conflict))
            continue
        for held, order, days in groups:
            if all(held.get((k, p), h) == h for k, p, h in reach):
                break
        else:
            held, order, days = {}, [], []
            groups.append((held, order, days))
        for k, p, h in reach:
            if (k, p) not in held:
                held[(k, p)] = h
                order.append((k, p, h))
        days.append(day)
    passes = []
    heads: dict[tuple[str, str | None], str] = {}  # what the reproduction's store holds after each pass
    for number, (_, order, days) in enumerate(groups):
        wanted = [index[i] for i in order if heads.get((i[0], i[1])) != i[2]]
        for key, partition, data_hash in order:
            heads[(key, partition)] = data_hash
        passes.append(ReproductionPass(
            number,
            seeded=tuple(p for p in wanted if p.is_source),
            rebuilt=tuple(p for p in wanted if not p.is_source and _ident(p) != root and _ident(p) not in live_ids),
            live_days=tuple(days)))
    return ReproductionPlan(tuple(passes), tuple(unplaceable))
