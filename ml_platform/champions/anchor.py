"""The ledger head's anchor outside the ledger's tables, and what comparing the two names. Pure: no MLflow.

Every move writes ``SEQ:sha256:HEX`` of the new head to the MLflow registered model's tag
``ml_platform.ledger.head`` after the ledger commit. An anchor ahead of the head names a cut tail; one
behind it, an unfinished move that reconcile re-anchors. Why: docs/architecture.md, "ml_platform/champions/anchor.py".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_platform.champions.chain import ChainProblem, ChainReport
from ml_platform.champions.entry import LedgerEntry
from ml_platform.errors import LedgerTampered
from ml_platform.registry.entities import LEDGER_HEAD_TAG

__all__ = [
    "ANCHOR_SOURCE",
    "AnchorReading",
    "anchor_of",
    "check_anchor",
    "format_anchor",
    "head_problem",
    "head_report",
    "parse_anchor",
    "refuse_unanchored_head",
]

ANCHOR_SOURCE = f"the MLflow registered model tag {LEDGER_HEAD_TAG!r}"
"""Where the anchor is read from, as messages name it."""

_ANCHOR = re.compile(r"^([1-9][0-9]{0,17}):(sha256:[0-9a-f]{64})$")


@dataclass(frozen=True)
class AnchorReading:
    """What was read where a model's ledger head is anchored.

    Attributes:
        value: The anchor's text as stored, ``None`` when there is none (never written, or a move's
            anchor write did not finish, or the registered model is gone).
        source: Where it was read, for messages.
    """

    value: str | None
    source: str = ANCHOR_SOURCE


def format_anchor(entry: LedgerEntry) -> str:
    """The anchor of ``entry`` as a head: ``SEQ:sha256:HEX``."""
    return f"{entry.seq}:{entry.entry_hash}"


def parse_anchor(text: str) -> tuple[int, str]:
    """``(seq, entry_hash)`` of an anchor's text.

    Raises:
        ValueError: the text is not ``SEQ:sha256:HEX`` (the platform writes nothing else).
    """
    found = _ANCHOR.match(text) if isinstance(text, str) else None
    if found is None:
        raise ValueError(f"not a ledger anchor (SEQ:sha256:HEX): {text!r}")
    return int(found.group(1)), found.group(2)


def anchor_of(tags: Mapping[str, str] | None) -> AnchorReading:
    """The reading of a registered model's tags (``None``: no registered model, so no anchor)."""
    return AnchorReading(None if tags is None else tags.get(LEDGER_HEAD_TAG))


def head_problem(head_seq: int, head_hash: str | None, reading: AnchorReading) -> ChainProblem | None:
    """What the anchor says of a head alone (what serving and ``--anchor-only`` check), ``None``: nothing wrong.

    A head behind its anchor lost entries the anchor saw written (a cut tail or a moved-back head);
    at the anchor's own entry, another hash means the chain was rewritten. An anchor behind the head is
    not checked here (it needs the entry at its seq; :func:`check_anchor` does).
    """
    if reading.value is None:
        return None
    try:
        seq, entry_hash = parse_anchor(reading.value)
    except ValueError:
        return ChainProblem(head_seq, "anchor_unreadable", (
            f"{reading.source} reads {reading.value!r}, not SEQ:sha256:HEX as every move writes it: it was edited"))
    if seq > head_seq:
        return ChainProblem(head_seq + 1, "cut_tail", (
            f"{reading.source} names entry {seq} ({entry_hash}) but the ledger's head is entry {head_seq}: "
            f"entries {head_seq + 1}..{seq} were cut off the tail and the head row moved back"))
    if seq == head_seq and entry_hash != head_hash:
        return ChainProblem(seq, "anchor_mismatch", (
            f"{reading.source} names entry {seq} as {entry_hash} but the ledger's entry {seq} is {head_hash}: "
            f"the chain was rewritten at or before entry {seq}"))
    return None


def check_anchor(report: ChainReport, rows: Sequence[Mapping[str, Any]], reading: AnchorReading) -> ChainReport:
    """``report`` (a verified walk of ``rows``, oldest first) cross-checked against the anchor ``reading``.

    Returns:
        The report with ``anchor`` and ``anchor_state`` set (``matches``, ``behind``, ``missing``,
        ``none`` for an empty ledger, or ``unchecked`` when the walk had already failed), and the
        anchor's problem if it names one.
    """
    if not report.ok:
        return dataclasses.replace(report, anchor=reading.value)
    problem = head_problem(report.head_seq, report.head_hash, reading)
    if problem is not None:
        return dataclasses.replace(report, anchor=reading.value, anchor_state=problem.kind, problem=problem)
    if reading.value is None:
        return dataclasses.replace(report, anchor=None, anchor_state="missing" if report.head_seq else "none")
    seq, entry_hash = parse_anchor(reading.value)
    if seq == report.head_seq:
        return dataclasses.replace(report, anchor=reading.value, anchor_state="matches")
    written = rows[seq - 1]["entry_hash"]
    if written != entry_hash:
        return dataclasses.replace(report, anchor=reading.value, anchor_state="anchor_mismatch", problem=ChainProblem(
            seq, "anchor_mismatch", f"{reading.source} names entry {seq} as {entry_hash} but the ledger's entry "
                                    f"{seq} is {written}: the chain was rewritten at or before entry {seq}"))
    return dataclasses.replace(report, anchor=reading.value, anchor_state="behind")


def head_report(model: str, head: LedgerEntry | None, reading: AnchorReading) -> ChainReport:
    """The report of ``model``'s head checked against its anchor alone (the chain not re-walked)."""
    seq, entry_hash = (0, None) if head is None else (head.seq, head.entry_hash)
    problem = head_problem(seq, entry_hash, reading)
    if problem is not None:
        state = problem.kind
    elif reading.value is None:
        state = "missing" if seq else "none"
    else:
        state = "matches" if parse_anchor(reading.value)[0] == seq else "behind"
    return ChainReport(model, 1 if head else 0, seq, entry_hash, problem, anchor=reading.value, anchor_state=state,
                       walked=False)  # one entry row read: the head's


def refuse_unanchored_head(model: str, head: LedgerEntry | None, reading: AnchorReading) -> None:
    """Raise if ``model``'s head disagrees with its anchor (the check at the serving boundary).

    Raises:
        LedgerTampered: the anchor names entries past the head, or another hash for the head's entry.
    """
    problem = head_problem(0 if head is None else head.seq, None if head is None else head.entry_hash, reading)
    if problem is not None:
        raise LedgerTampered(
            f"the champion ledger of model {model!r} disagrees with its anchor ({problem.kind}): {problem.detail}; "
            f"do not serve from it: run `ml-platform audit verify {model}` and restore the ledger tables from a "
            "backup", model=model, seq=problem.seq, problem=problem.kind)
