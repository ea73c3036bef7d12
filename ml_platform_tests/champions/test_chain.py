"""Re-walking a chain, pure: rows as a tamperer leaves them, and the first bad entry named with its kind.

The ledger tests tamper a real database; these build the stored rows directly (their hashes computed by
the v1 scheme), so every kind of problem and every edge of the head check is reached one at a time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ml_platform.champions.chain import ChainProblem, ChainReport, entry_from_row, walk_chain
from ml_platform.champions.entry import (
    GENESIS_HASH,
    LEDGER_SCHEME,
    check_sha256,
    check_text,
    compute_entry_hash,
    format_time,
    parse_time,
)
from ml_platform.errors import ConfigurationError, LedgerTampered

T0 = dt.datetime(2026, 1, 5, 9, 30, tzinfo=dt.UTC)


def chain(model: str, versions: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Stored rows of ``model``'s chain: one per (kind, to_version), each hashed over the one before."""
    rows: list[dict[str, Any]] = []
    prev_hash, prev_to = GENESIS_HASH, None
    for seq, (kind, version) in enumerate(versions, start=1):
        fields = {"scheme": LEDGER_SCHEME, "model": model, "seq": seq, "kind": kind, "from_version": prev_to,
                  "to_version": version, "actor": "alice", "approver": None, "reason": f"move {seq}",
                  "report_ref": None, "report_sha256": None, "rationale_ref": None, "rationale_sha256": None,
                  "override": False, "recorded_at": format_time(T0 + dt.timedelta(minutes=seq)),
                  "prev_hash": prev_hash}
        row = {**fields, "entry_hash": compute_entry_hash(fields)}
        rows.append(row)
        prev_hash, prev_to = row["entry_hash"], version
    return rows


def head_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": rows[-1]["model"], "seq": rows[-1]["seq"], "entry_hash": rows[-1]["entry_hash"]}


def rehash(row: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in row.items() if k != "entry_hash"}
    return {**row, "entry_hash": compute_entry_hash(fields)}


MOVES = [("promotion", "1"), ("promotion", "2"), ("promotion", "3"), ("rollback", "2")]


def problem(rows: list[dict[str, Any]], head: dict[str, Any] | None, model: str = "alpha") -> ChainProblem:
    report = walk_chain(model, rows, head)
    assert report.problem is not None, "the chain verified"
    return report.problem


def test_an_intact_chain_verifies_and_says_where_its_head_is() -> None:
    rows = chain("alpha", MOVES)
    report = walk_chain("alpha", rows, head_of(rows))
    assert report == ChainReport("alpha", 4, 4, rows[-1]["entry_hash"], None)
    assert report.ok and report.raise_if_tampered() is report
    assert report.describe() == (f"ledger of model 'alpha': 4 entries, chain verifies, head is entry 4 "
                                 f"({rows[-1]['entry_hash']})")
    empty = walk_chain("alpha", [], None)
    assert empty == ChainReport("alpha", 0, 0, None, None) and empty.ok


def test_a_tampered_report_raises_naming_model_entry_and_kind() -> None:
    rows = chain("alpha", MOVES)
    rows[1] = {**rows[1], "reason": "nothing to see"}
    report = walk_chain("alpha", rows, head_of(rows))
    assert not report.ok and report.problem is not None
    assert report.describe().startswith("ledger of model 'alpha' is TAMPERED at entry 2 (altered): its fields give ")
    with pytest.raises(LedgerTampered, match=r"TAMPERED at entry 2 \(altered\).*do not trust the champion of "
                                             r"record of 'alpha'.*restore it") as caught:
        report.raise_if_tampered()
    assert (caught.value.model, caught.value.seq, caught.value.problem) == ("alpha", 2, "altered")


def test_an_entry_deleted_at_the_start_middle_or_end_is_missing() -> None:
    rows = chain("alpha", MOVES)
    first = problem(rows[1:], head_of(rows))
    assert (first.seq, first.kind) == (1, "missing")
    assert first.detail == "entry 1 is missing: the chain goes from entry 0 to entry 2 (deleted)"
    middle = problem([rows[0], rows[2], rows[3]], head_of(rows))
    assert (middle.seq, middle.kind) == (2, "missing") and "from entry 1 to entry 3" in middle.detail
    last = problem(rows[:3], head_of(rows))  # the head still names entry 4
    assert (last.seq, last.kind) == (4, "missing")
    assert last.detail == ("the head names entry 4 but the chain ends at entry 3: entries 4..4 were deleted")
    everything = problem([], head_of(rows))
    assert (everything.seq, everything.kind) == (1, "missing") and "entries 1..4" in everything.detail


def test_two_swapped_entries_are_reordered_and_a_renumbered_one_too() -> None:
    rows = chain("alpha", MOVES)
    swapped = [rows[0], {**rows[2], "seq": 2}, {**rows[1], "seq": 3}, rows[3]]
    found = problem(swapped, head_of(rows))
    assert (found.seq, found.kind) == (2, "reordered")
    assert found.detail == ("the row at position 2 was written as entry 3: entries were swapped or renumbered")
    shifted = [{**row, "seq": row["seq"] - 1} for row in rows[1:]]
    moved = problem(shifted, {**head_of(rows), "seq": 3})
    assert (moved.seq, moved.kind) == (1, "reordered") and "written as entry 2" in moved.detail


def test_a_row_numbered_past_the_head_is_still_recognized_as_reordered() -> None:
    rows = chain("alpha", MOVES)
    # entry 4 stored at position 1 and entry 1 at position 4: position 1 carries the hash of entry 4
    swapped = [{**rows[3], "seq": 1}, rows[1], rows[2], {**rows[0], "seq": 4}]
    found = problem(swapped, {**head_of(rows), "seq": 1})
    assert (found.seq, found.kind) == (1, "reordered") and "written as entry 4" in found.detail


def test_an_edited_field_is_altered_and_an_unreadable_one_too() -> None:
    rows = chain("alpha", MOVES)
    for change in ({"to_version": "9"}, {"actor": "mallory"}, {"override": True}, {"kind": "rollback"},
                   {"recorded_at": "2020-01-01T00:00:00.000000Z"}, {"approver": "bob"}):
        edited = [rows[0], {**rows[1], **change}, *rows[2:]]
        found = problem(edited, head_of(rows))
        assert (found.seq, found.kind) == (2, "altered"), change
        assert found.detail.startswith("its fields give sha256:") and found.detail.endswith(
            f"but it was written with {rows[1]['entry_hash']}: it was edited after it was written")
    for change in ({"recorded_at": "yesterday"}, {"seq": "2"}, {"override": 2}, {"override": "yes"},
                   {"scheme": "ml_platform.ledger/v9"}):
        unreadable = [rows[0], {**rows[1], **change}, *rows[2:]]
        found = problem(unreadable, head_of(rows))
        if change == {"seq": "2"}:  # a text seq is not the entry expected at position 2
            assert (found.seq, found.kind) == (2, "missing")
            continue
        assert (found.seq, found.kind) == (2, "altered"), change
        assert found.detail.startswith("its fields cannot be read back (") and found.detail.endswith(
            "): it was edited")


def test_a_rehashed_row_that_breaks_the_links_or_the_moves_is_found() -> None:
    rows = chain("alpha", MOVES)
    other_model = [rows[0], rehash({**rows[1], "model": "beta"}), *rows[2:]]
    found = problem(other_model, head_of(rows))
    assert (found.seq, found.kind, found.detail) == (2, "altered", "it names model 'beta'")
    relinked = [rows[0], rehash({**rows[1], "prev_hash": "sha256:" + "9" * 64}), *rows[2:]]
    found = problem(relinked, head_of(rows))
    assert (found.seq, found.kind) == (2, "broken_link")
    assert found.detail == (f"it follows sha256:{'9' * 64} but the entry before it is {rows[0]['entry_hash']}: the "
                            "entry before it was replaced, or entries were reordered")
    first_relinked = [rehash({**rows[0], "prev_hash": "sha256:" + "1" * 64}), *rows[1:]]
    assert problem(first_relinked, head_of(rows)).kind == "broken_link"
    jumped = [rows[0], rehash({**rows[1], "from_version": "7"}), *rows[2:]]
    found = problem(jumped, head_of(rows))
    assert (found.seq, found.kind) == (2, "inconsistent")
    assert found.detail == "it moves from version '7' but the champion before it was '1'"
    first_from = [rehash({**rows[0], "from_version": "0"}), *rows[1:]]
    found = problem(first_from, head_of(rows))
    assert (found.seq, found.kind) == (1, "inconsistent") and "the champion before it was None" in found.detail


def test_the_head_row_must_name_the_last_entry_by_number_and_hash() -> None:
    rows = chain("alpha", MOVES)
    missing = problem(rows, None)
    assert (missing.seq, missing.kind) == (4, "head")
    assert missing.detail == "the head row is missing while the chain ends at entry 4"
    back = problem(rows, {**head_of(rows), "seq": 3, "entry_hash": rows[2]["entry_hash"]})
    assert (back.seq, back.kind) == (3, "moved_back")
    assert back.detail == (f"the head names entry 3 but the chain goes on to entry 4 ({rows[3]['entry_hash']}): "
                           "the head row was moved back, hiding entries 4..4 from serving")
    first = problem(rows, {**head_of(rows), "seq": 1, "entry_hash": rows[0]["entry_hash"]})
    assert (first.seq, first.kind) == (1, "moved_back") and "hiding entries 2..4" in first.detail
    back_wrong_hash = problem(rows, {**head_of(rows), "seq": 3, "entry_hash": rows[1]["entry_hash"]})
    assert (back_wrong_hash.seq, back_wrong_hash.kind) == (3, "head")
    assert back_wrong_hash.detail == (f"the head names entry 3 ({rows[1]['entry_hash']}) but the chain ends at "
                                      f"entry 4 ({rows[3]['entry_hash']}): the head row was altered")
    wrong_hash = problem(rows, {**head_of(rows), "entry_hash": rows[2]["entry_hash"]})
    assert (wrong_hash.seq, wrong_hash.kind) == (4, "head")
    report = walk_chain("alpha", rows, {**head_of(rows), "seq": 0})
    assert (report.head_seq, report.problem.kind) == (0, "head")  # type: ignore[union-attr]


def test_a_row_read_back_from_sqlite_takes_its_integer_override() -> None:
    row = chain("alpha", [("promotion", "1")])[0]
    for stored, expected in ((0, False), (1, True), (False, False)):
        entry = entry_from_row({**row, "override": stored})
        assert entry.override is expected and isinstance(entry.override, bool)
    assert entry_from_row(row).expected_hash == row["entry_hash"]
    assert entry_from_row(row).recorded_at == T0 + dt.timedelta(minutes=1)
    for stored in (2, -1, "1", None):
        with pytest.raises(TypeError, match="is not of its type"):
            entry_from_row({**row, "override": stored})
    for seq in (True, 1.0, "1"):
        with pytest.raises(TypeError, match="is not of its type"):
            entry_from_row({**row, "seq": seq})


# -- the fields' own checks ------------------------------------------------------------------------


def test_a_sha256_is_the_prefix_and_64_lower_case_hex_digits() -> None:
    good = "sha256:" + "0123456789abcdef" * 4
    assert check_sha256("h", good) == good and check_sha256("h", None, optional=True) is None
    for bad in (None, "", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "sha256:" + "a" * 65, "a" * 64,
                "SHA256:" + "a" * 64, " sha256:" + "a" * 64, "sha256:" + "g" * 64, b"sha256:" + b"a" * 64):
        with pytest.raises(ConfigurationError, match=r"^\[CONFIGURATION_ERROR\] h must be 'sha256:' followed by 64 "
                                                     "lower-case hex digits, got "):
            check_sha256("h", bad)


def test_a_text_is_non_blank_bounded_and_free_of_control_characters() -> None:
    assert check_text("actor", "alice", max_length=5) == "alice"
    assert check_text("actor", None, max_length=5, optional=True) is None
    assert check_text("reason", "a\nb\r\n\tc", max_length=10, multiline=True) == "a\nb\r\n\tc"
    with pytest.raises(ConfigurationError, match="actor is 6 characters long; the ledger keeps at most 5"):
        check_text("actor", "alices", max_length=5)
    for blank in (None, "", " \n", 7):
        with pytest.raises(ConfigurationError, match="actor must be a non-empty string, got "):
            check_text("actor", blank, max_length=5)
    for one_line in ("a\nb", "a\rb", "a\tb"):
        with pytest.raises(ConfigurationError, match="actor contains the control character"):
            check_text("actor", one_line, max_length=5)
    for control in ("a\x00b", "a\x08", "\x0bx", "\x0cx", "a\x0e", "a\x1f", "a\x7f"):
        with pytest.raises(ConfigurationError, match="reason contains the control character"):
            check_text("reason", control, max_length=5, multiline=True)


def test_times_are_microsecond_utc_text_and_nothing_else_parses() -> None:
    assert format_time(dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)) == "2026-01-02T03:04:05.000006Z"
    assert parse_time("2026-01-02T03:04:05.000006Z") == dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    assert parse_time("2026-01-02T03:04:05.000006Z").tzinfo is dt.UTC
    for bad in (None, 20260102, "2026-01-02T03:04:05.000006Zx", "x2026-01-02T03:04:05.000006Z"):
        with pytest.raises(ValueError, match="not a ledger time"):
            parse_time(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        format_time("2026-01-02T03:04:05.000006Z")  # type: ignore[arg-type]
