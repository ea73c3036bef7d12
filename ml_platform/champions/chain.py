"""Re-walk a model's hash chain and name the first altered, deleted or reordered entry. Pure: stdlib only.

How it works, and why: docs/architecture.md, "ml_platform/champions/chain.py".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_platform.champions.entry import (
    GENESIS_HASH,
    HASHED_FIELDS,
    LedgerEntry,
    compute_entry_hash,
    parse_time,
)
from ml_platform.errors import ConfigurationError, LedgerTampered

__all__ = ["ChainProblem", "ChainReport", "entry_from_row", "walk_chain"]


@dataclass(frozen=True)
class ChainProblem:
    """The first bad entry of a chain.

    Attributes:
        seq: Its sequence number (the position in the chain where things first go wrong).
        kind: ``missing``, ``reordered``, ``altered``, ``broken_link``, ``inconsistent``, ``head``,
            ``moved_back``, or what the anchor names: ``cut_tail``, ``anchor_mismatch``, ``anchor_unreadable``.
        detail: What was found, in words.
    """

    seq: int
    kind: str
    detail: str


@dataclass(frozen=True)
class ChainReport:
    """The outcome of re-walking one model's chain.

    Attributes:
        model: Registered model name.
        entries: How many entry rows were read.
        head_seq: The head row's sequence number (0: no head row).
        head_hash: The head row's entry hash (``None``: no head row).
        problem: The first bad entry, ``None`` when the chain verifies.
        anchor: The head's anchor as read outside the ledger's tables (``None``: none, or not read).
        anchor_state: ``unchecked``, ``matches``, ``behind`` (an unfinished move), ``missing``, ``none``
            (no head, no anchor), or the kind of the problem the anchor names
            (:mod:`ml_platform.champions.anchor`).
        walked: The chain was re-walked (``False``: only the head and its anchor were read).
    """

    model: str
    entries: int
    head_seq: int
    head_hash: str | None
    problem: ChainProblem | None
    anchor: str | None = None
    anchor_state: str = "unchecked"
    walked: bool = True

    @property
    def ok(self) -> bool:
        """Whether the chain verifies end to end, head included."""
        return self.problem is None

    def describe(self) -> str:
        """One line for ``ml-platform audit verify``."""
        if self.problem is None:
            checked = (f"{self.entries} entries, chain verifies" if self.walked
                       else "chain not re-walked (anchor only)")
            return (f"ledger of model {self.model!r}: {checked}, head is entry {self.head_seq} "
                    f"({self.head_hash}){_ANCHOR_NOTES.get(self.anchor_state, '')}")
        return (f"ledger of model {self.model!r} is TAMPERED at entry {self.problem.seq} ({self.problem.kind}): "
                f"{self.problem.detail}")

    def raise_if_tampered(self) -> ChainReport:
        """Return ``self`` if the chain verifies.

        Raises:
            LedgerTampered: naming the first bad entry and what to do.
        """
        if self.problem is not None:
            raise LedgerTampered(
                f"{self.describe()}; do not trust the champion of record of {self.model!r}: compare the table "
                "with a database backup to find who changed it, and restore it",
                model=self.model, seq=self.problem.seq, problem=self.problem.kind)
        return self


_ANCHOR_NOTES = {
    "matches": ", anchored",
    "behind": (", anchored at an earlier entry: a move whose anchor write did not finish; "
               "`ml-platform registry reconcile` re-anchors it"),
    "missing": (", not anchored yet (a move whose anchor write did not finish, or made before anchors): "
                "`ml-platform registry reconcile` anchors it"),
}


def entry_from_row(row: Mapping[str, Any]) -> LedgerEntry:
    """A :class:`LedgerEntry` from a stored row.

    Raises:
        ValueError / TypeError: a field cannot be read back into its type (the row was edited).
    """
    seq = row["seq"]
    override = row["override"]
    if isinstance(override, int) and not isinstance(override, bool) and override in (0, 1):
        override = bool(override)
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(override, bool):
        raise TypeError(f"seq {seq!r} or override {override!r} is not of its type")
    values = {name: row[name] for name in HASHED_FIELDS if name not in ("seq", "override", "recorded_at")}
    return LedgerEntry(**values, seq=seq, override=override, recorded_at=parse_time(row["recorded_at"]),
                       entry_hash=row["entry_hash"])


def _row_hash(row: Mapping[str, Any], seq: int | None = None) -> str:
    entry = entry_from_row(row)
    fields = entry.hashed_fields()
    if seq is not None:
        fields["seq"] = seq
    return compute_entry_hash(fields)


def _check_row(row: Mapping[str, Any], position: int, positions: Sequence[int]) -> ChainProblem | None:
    try:
        recomputed = _row_hash(row)
    except (ValueError, TypeError, ConfigurationError) as exc:
        return ChainProblem(position, "altered", f"its fields cannot be read back ({exc}): it was edited")
    if recomputed == row["entry_hash"]:
        return None
    for other in positions:
        if other != position and _row_hash(row, other) == row["entry_hash"]:
            return ChainProblem(position, "reordered",
                                f"the row at position {position} was written as entry {other}: "
                                "entries were swapped or renumbered")
    return ChainProblem(position, "altered",
                        f"its fields give {recomputed} but it was written with {row['entry_hash']}: "
                        "it was edited after it was written")


def walk_chain(model: str, rows: Sequence[Mapping[str, Any]], head: Mapping[str, Any] | None) -> ChainReport:
    """Verify ``rows`` (a model's entry rows ordered by ``seq``) and its ``head`` row (``None``: absent).

    Returns:
        The report; its ``problem`` names the first bad entry, ``None`` if everything verifies.
    """
    head_seq = int(head["seq"]) if head is not None else 0
    head_hash = head["entry_hash"] if head is not None else None
    positions = range(1, max([head_seq, len(rows), *(int(r["seq"]) for r in rows)]) + 2)

    def report(problem: ChainProblem | None) -> ChainReport:
        return ChainReport(model, len(rows), head_seq, head_hash, problem)

    prev_hash, prev_to, expected = GENESIS_HASH, None, 1
    for row in rows:
        if row["seq"] != expected:
            return report(ChainProblem(expected, "missing", (
                f"entry {expected} is missing: the chain goes from entry {expected - 1} to entry {row['seq']} "
                "(deleted)")))
        problem = _check_row(row, expected, positions)
        if problem is not None:
            return report(problem)
        if row["model"] != model:
            return report(ChainProblem(expected, "altered", f"it names model {row['model']!r}"))
        if row["prev_hash"] != prev_hash:
            return report(ChainProblem(expected, "broken_link", (
                f"it follows {row['prev_hash']} but the entry before it is {prev_hash}: the entry before it was "
                "replaced, or entries were reordered")))
        if row["from_version"] != prev_to:
            return report(ChainProblem(expected, "inconsistent", (
                f"it moves from version {row['from_version']!r} but the champion before it was {prev_to!r}")))
        prev_hash, prev_to, expected = row["entry_hash"], row["to_version"], expected + 1
    last = expected - 1
    if head is None:
        if rows:
            return report(ChainProblem(last, "head", f"the head row is missing while the chain ends at entry {last}"))
        return report(None)
    if head_seq > last:
        return report(ChainProblem(last + 1, "missing", (
            f"the head names entry {head_seq} but the chain ends at entry {last}: entries {last + 1}..{head_seq} "
            "were deleted")))
    if 0 < head_seq < last and head_hash == rows[head_seq - 1]["entry_hash"]:
        return report(ChainProblem(head_seq, "moved_back", (
            f"the head names entry {head_seq} but the chain goes on to entry {last} ({prev_hash}): the head row was "
            f"moved back, hiding entries {head_seq + 1}..{last} from serving")))
    if head_seq != last or head_hash != prev_hash:
        return report(ChainProblem(head_seq, "head", (
            f"the head names entry {head_seq} ({head_hash}) but the chain ends at entry {last} ({prev_hash}): "
            "the head row was altered")))
    return report(None)
