"""The ledger head's anchor, pure: what comparing a head with its anchor names, and what it leaves to reconcile.

Rows are built as in ``test_chain.py``; the ledger, service, serving and CLI tests tamper a real
database and a real MLflow registry (``test_tamper.py``).
"""

from __future__ import annotations

import pytest

from ml_platform.champions.anchor import (
    ANCHOR_SOURCE,
    AnchorReading,
    anchor_of,
    check_anchor,
    format_anchor,
    head_problem,
    head_report,
    parse_anchor,
    refuse_unanchored_head,
)
from ml_platform.champions.chain import entry_from_row, walk_chain
from ml_platform.errors import LedgerTampered
from ml_platform.registry.entities import LEDGER_HEAD_TAG
from ml_platform_tests.champions.test_chain import MOVES, chain, head_of

ROWS = chain("alpha", MOVES)
HASHES = [row["entry_hash"] for row in ROWS]


def at(seq: int) -> AnchorReading:
    return AnchorReading(f"{seq}:{HASHES[seq - 1]}")


def test_an_anchor_is_seq_and_entry_hash_and_nothing_else_parses() -> None:
    entry = entry_from_row(ROWS[2])
    assert format_anchor(entry) == f"3:{HASHES[2]}"
    assert parse_anchor(format_anchor(entry)) == (3, HASHES[2])
    assert LEDGER_HEAD_TAG == "ml_platform.ledger.head"
    assert ANCHOR_SOURCE == "the MLflow registered model tag 'ml_platform.ledger.head'"
    for bad in ("0:" + HASHES[0], "03:" + HASHES[0], "3:" + HASHES[0].upper(), "3:" + HASHES[0][7:], "3",
                f"3:{HASHES[0]} ", f"-3:{HASHES[0]}", "", None):
        with pytest.raises(ValueError, match="not a ledger anchor"):
            parse_anchor(bad)  # type: ignore[arg-type]
    assert anchor_of(None) == AnchorReading(None)
    assert anchor_of({"other": "x"}) == AnchorReading(None)
    assert anchor_of({LEDGER_HEAD_TAG: "4:x"}) == AnchorReading("4:x", ANCHOR_SOURCE)


def test_an_anchor_ahead_of_the_head_names_a_cut_tail() -> None:
    found = head_problem(2, HASHES[1], at(4))
    assert found is not None and (found.seq, found.kind) == (3, "cut_tail")
    assert found.detail == (f"{ANCHOR_SOURCE} names entry 4 ({HASHES[3]}) but the ledger's head is entry 2: "
                            "entries 3..4 were cut off the tail and the head row moved back")
    everything = head_problem(0, None, at(1))
    assert everything is not None and (everything.seq, everything.kind) == (1, "cut_tail")
    assert head_problem(3, HASHES[2], at(4)) is not None  # one entry cut is enough


def test_an_anchor_at_the_head_must_name_its_hash() -> None:
    assert head_problem(4, HASHES[3], at(4)) is None
    found = head_problem(4, HASHES[2], at(4))
    assert found is not None and (found.seq, found.kind) == (4, "anchor_mismatch")
    assert found.detail == (f"{ANCHOR_SOURCE} names entry 4 as {HASHES[3]} but the ledger's entry 4 is {HASHES[2]}: "
                            "the chain was rewritten at or before entry 4")


def test_an_anchor_behind_or_absent_is_no_problem_of_the_head_alone() -> None:
    assert head_problem(4, HASHES[3], at(3)) is None
    assert head_problem(4, HASHES[3], at(1)) is None
    assert head_problem(4, HASHES[3], AnchorReading(None)) is None
    unreadable = head_problem(4, HASHES[3], AnchorReading("garbage"))
    assert unreadable is not None and (unreadable.seq, unreadable.kind) == (4, "anchor_unreadable")
    assert unreadable.detail == (f"{ANCHOR_SOURCE} reads 'garbage', not SEQ:sha256:HEX as every move writes it: "
                                 "it was edited")


def test_a_verified_walk_cross_checked_with_its_anchor() -> None:
    walked = walk_chain("alpha", ROWS, head_of(ROWS))
    assert walked.anchor_state == "unchecked" and walked.anchor is None
    matches = check_anchor(walked, ROWS, at(4))
    assert (matches.ok, matches.anchor_state, matches.anchor) == (True, "matches", at(4).value)
    assert matches.describe().endswith(f"head is entry 4 ({HASHES[3]}), anchored")
    behind = check_anchor(walked, ROWS, at(2))
    assert (behind.ok, behind.anchor_state) == (True, "behind")
    assert "a move whose anchor write did not finish; `ml-platform registry reconcile` re-anchors it" in \
        behind.describe()
    missing = check_anchor(walked, ROWS, AnchorReading(None))
    assert (missing.ok, missing.anchor_state) == (True, "missing")
    assert "not anchored yet" in missing.describe() and "`ml-platform registry reconcile` anchors it" in \
        missing.describe()
    empty = check_anchor(walk_chain("alpha", [], None), [], AnchorReading(None))
    assert (empty.ok, empty.anchor_state) == (True, "none")


def test_a_cut_tail_verifies_as_a_chain_and_fails_against_its_anchor() -> None:
    cut = ROWS[:2]
    walked = walk_chain("alpha", cut, head_of(cut))
    assert walked.ok  # the chain alone cannot see its tail cut off
    report = check_anchor(walked, cut, at(4))
    assert not report.ok and (report.problem.seq, report.problem.kind) == (3, "cut_tail")  # type: ignore[union-attr]
    assert report.anchor_state == "cut_tail"
    assert report.describe().startswith("ledger of model 'alpha' is TAMPERED at entry 3 (cut_tail): ")
    with pytest.raises(LedgerTampered, match="cut off the tail") as caught:
        report.raise_if_tampered()
    assert (caught.value.seq, caught.value.problem) == (3, "cut_tail")


def test_an_anchor_behind_must_name_the_entry_at_its_seq() -> None:
    walked = walk_chain("alpha", ROWS, head_of(ROWS))
    forged = AnchorReading(f"2:{HASHES[0]}")
    report = check_anchor(walked, ROWS, forged)
    assert (report.problem.seq, report.problem.kind) == (2, "anchor_mismatch")  # type: ignore[union-attr]
    assert report.problem.detail == (  # type: ignore[union-attr]
        f"{ANCHOR_SOURCE} names entry 2 as {HASHES[0]} but the ledger's entry 2 is {HASHES[1]}: the chain was "
        "rewritten at or before entry 2")


def test_a_walk_that_failed_keeps_its_problem_and_records_the_anchor() -> None:
    moved_back = walk_chain("alpha", ROWS, {**head_of(ROWS), "seq": 2, "entry_hash": HASHES[1]})
    report = check_anchor(moved_back, ROWS, at(4))
    assert report.problem == moved_back.problem and report.problem.kind == "moved_back"  # type: ignore[union-attr]
    assert (report.anchor, report.anchor_state) == (at(4).value, "unchecked")


def test_the_head_alone_against_its_anchor() -> None:
    entry = entry_from_row(ROWS[3])
    ok = head_report("alpha", entry, at(4))
    assert (ok.ok, ok.anchor_state, ok.walked, ok.entries, ok.head_seq, ok.head_hash) == (
        True, "matches", False, 1, 4, HASHES[3])
    assert ok.describe() == (f"ledger of model 'alpha': chain not re-walked (anchor only), head is entry 4 "
                             f"({HASHES[3]}), anchored")
    assert head_report("alpha", entry, at(3)).anchor_state == "behind"
    assert head_report("alpha", entry, AnchorReading(None)).anchor_state == "missing"
    nothing = head_report("alpha", None, AnchorReading(None))
    assert (nothing.ok, nothing.anchor_state, nothing.entries, nothing.head_seq, nothing.head_hash) == (
        True, "none", 0, 0, None)
    cut = head_report("alpha", entry_from_row(ROWS[1]), at(4))
    assert (cut.ok, cut.anchor_state, cut.problem.seq) == (False, "cut_tail", 3)  # type: ignore[union-attr]


def test_serving_refuses_a_head_its_anchor_contradicts_naming_audit_verify() -> None:
    refuse_unanchored_head("alpha", entry_from_row(ROWS[3]), at(4))
    refuse_unanchored_head("alpha", entry_from_row(ROWS[3]), at(3))  # an unfinished move: served
    refuse_unanchored_head("alpha", entry_from_row(ROWS[3]), AnchorReading(None))
    refuse_unanchored_head("alpha", None, AnchorReading(None))
    with pytest.raises(LedgerTampered) as caught:
        refuse_unanchored_head("alpha", entry_from_row(ROWS[1]), at(4))
    assert str(caught.value) == (
        "[LEDGER_TAMPERED] the champion ledger of model 'alpha' disagrees with its anchor (cut_tail): "
        f"{head_problem(2, HASHES[1], at(4)).detail}; do not serve from it: run "  # type: ignore[union-attr]
        "`ml-platform audit verify alpha` and restore the ledger tables from a backup")
    assert (caught.value.model, caught.value.seq, caught.value.problem) == ("alpha", 3, "cut_tail")
    with pytest.raises(LedgerTampered, match=r"\(cut_tail\)"):
        refuse_unanchored_head("alpha", None, at(1))
    with pytest.raises(LedgerTampered, match=r"\(anchor_mismatch\)"):
        refuse_unanchored_head("alpha", entry_from_row(ROWS[2]), AnchorReading(f"3:{HASHES[0]}"))
