"""The ledger's edges on SQLite: its settings, every refusal's wording and code, a locked database, a head
row tampered in each way the one-read head check must catch, and what a move records.

The tests in ``test_ledger.py`` run on both backends; these pin what the SQLite file alone can show.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path

import pytest

from ml_platform.champions import ChampionLedger, MoveKind
from ml_platform.champions.ledger import (
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    DEFAULT_MOVE_ATTEMPTS,
    _is_unique_violation,
)
from ml_platform.errors import (
    ConfigurationError,
    LedgerConflict,
    LedgerError,
    LedgerMoveRefused,
    LedgerTampered,
    LedgerUnavailable,
)
from ml_platform_tests.champions.conftest import raw_sql
from ml_platform_tests.harness.secrets import chain_text

REPORT = {"report_ref": "mlflow-artifacts:/1/r/report.json", "report_sha256": "sha256:" + "1" * 64}
RATIONALE = {"rationale_ref": "mlflow-artifacts:/1/r/rationale.md", "rationale_sha256": "sha256:" + "2" * 64}
PARIS = dt.timezone(dt.timedelta(hours=1))


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger' / 'mlflow.db'}"


@pytest.fixture
def ledger(url: str) -> ChampionLedger:
    with ChampionLedger(url, production=False) as opened:
        yield opened


def move(ledger: ChampionLedger, version: str, kind: str = "promotion", **extra: object):  # type: ignore[no-untyped-def]
    return ledger.move("alpha", kind=kind, to_version=version, actor="alice", reason=f"{kind} {version}", **extra)


# -- settings ------------------------------------------------------------------------------------


def test_the_defaults() -> None:
    assert (DEFAULT_BUSY_TIMEOUT_SECONDS, DEFAULT_MOVE_ATTEMPTS) == (5.0, 5)


@pytest.mark.parametrize(("url", "message"), [
    ("", "the ledger URL must be a non-empty SQLAlchemy URL"),
    ("   ", "the ledger URL must be a non-empty SQLAlchemy URL"),
    (None, "the ledger URL must be a non-empty SQLAlchemy URL"),
    ("not a url", "the ledger URL 'not a url' is not a SQLAlchemy URL"),
    ("mysql://u:secret@db/x", r"the ledger stores into SQLite or PostgreSQL, not 'mysql' \(mysql://u:\*\*\*@db/x\)"),
    ("sqlite://", "an in-memory SQLite ledger would vanish"),
    ("sqlite:///:memory:", "an in-memory SQLite ledger would vanish"),
])
def test_a_ledger_url_it_cannot_keep_is_refused(url: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ChampionLedger(url)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://ml:hunter2@db:notaport/registry",  # SQLAlchemy's own error quotes the port part
    "postgresql+psycopg://ml:p@ss:hunter2@db/registry",  # a raw @: the rest of the password is taken as the host
    "mysql://ml:hunter2@db/x?password=hunter2",
    "not a url password=hunter2",
])
def test_a_refused_ledger_url_is_named_without_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ChampionLedger(url)
    assert "hunter2" not in chain_text(caught.value)


@pytest.mark.parametrize("seconds", [0, -1, 3600.5, True, "5", None])
def test_the_busy_timeout_is_a_number_of_seconds_up_to_an_hour(url: str, seconds: object) -> None:
    with pytest.raises(ConfigurationError, match=r"busy_timeout_seconds must be a number of seconds in \(0, 3600\]"):
        ChampionLedger(url, busy_timeout_seconds=seconds)  # type: ignore[arg-type]


def test_a_ledger_names_its_store_without_the_password(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ChampionLedger(url, busy_timeout_seconds=3600)
    assert ledger.busy_timeout_seconds == 3600.0 and isinstance(ledger.busy_timeout_seconds, float)
    assert ledger.store == url and repr(ledger) == f"ChampionLedger({url!r})" and ledger.url == url
    pg = ChampionLedger("postgresql+psycopg://alice:secret@db:5432/registry", busy_timeout_seconds=0.5)
    assert pg.store == "postgresql+psycopg://alice:***@db:5432/registry" and "secret" not in repr(pg)
    monkeypatch.setenv("ML_PLATFORM_DEPLOYMENT", "production")
    assert ChampionLedger(url).production and not ChampionLedger(url, production=False).production
    monkeypatch.setenv("ML_PLATFORM_DEPLOYMENT", "local")
    assert not ChampionLedger(url).production and ChampionLedger(url, production=1).production  # type: ignore[arg-type]


def test_the_ledger_creates_the_folder_of_its_file_and_reconnects_after_close(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'mlflow.db'}"
    ledger = ChampionLedger(url)
    assert ledger.head("alpha") is None and (tmp_path / "a" / "b" / "mlflow.db").is_file()
    ledger.close()
    ledger.close()  # closing twice is harmless
    assert ledger.models() == ()


# -- what a move records ---------------------------------------------------------------------------


def test_a_move_records_the_caller_fields_and_the_time_in_utc(url: str) -> None:
    times = iter([dt.datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=PARIS),
                  dt.datetime(2026, 3, 1, 11, 0, tzinfo=PARIS)])
    with ChampionLedger(url, clock=lambda: next(times)) as ledger:
        first = ledger.append("alpha", expected_head_seq=0, kind="promotion", to_version=3, actor="job run 1f",
                              reason="better\nsharpe", approver="bob", **REPORT, **RATIONALE, override=True)
        assert (first.model, first.seq, first.kind, first.from_version, first.to_version) == (
            "alpha", 1, "promotion", None, "3")
        assert (first.actor, first.approver, first.reason, first.override) == ("job run 1f", "bob", "better\nsharpe",
                                                                               True)
        assert (first.report_ref, first.report_sha256) == (REPORT["report_ref"], REPORT["report_sha256"])
        assert (first.rationale_ref, first.rationale_sha256) == (RATIONALE["rationale_ref"],
                                                                 RATIONALE["rationale_sha256"])
        assert first.recorded_at == dt.datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=dt.UTC)
        assert first.recorded_at.tzinfo is dt.UTC and first.expected_hash == first.entry_hash
        second = ledger.move("alpha", kind="promotion", to_version="4", actor="alice", reason="next",
                             approver="carol")
        assert (second.seq, second.from_version, second.prev_hash, second.approver) == (2, "3", first.entry_hash,
                                                                                        "carol")
        assert ledger.head("alpha") == second and ledger.history("alpha") == (first, second)
        stored = raw_sql(url, "SELECT recorded_at, override FROM ml_platform_ledger_entries ORDER BY seq")
        assert stored == [("2026-03-01T09:00:00.123456Z", 1), ("2026-03-01T10:00:00.000000Z", 0)]


def test_a_recorded_move_is_logged(ledger: ChampionLedger, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="ml_platform.champions.ledger"):
        entry = move(ledger, "1")
        move(ledger, "2")
    assert f"ledger: promotion of 'alpha' None -> 1 recorded as entry 1 ({entry.entry_hash})" in caplog.text
    assert "ledger: promotion of 'alpha' 1 -> 2 recorded as entry 2 (sha256:" in caplog.text


# -- refusals ----------------------------------------------------------------------------------------


def test_a_stale_head_is_a_conflict_naming_both_heads(ledger: ChampionLedger, url: str) -> None:
    move(ledger, "1")
    with pytest.raises(LedgerConflict, match=rf"ledger {url}: the champion of 'alpha' moved: its head is entry 1, "
                                             r"not 0 as expected; nothing was written\. Read the head again"):
        ledger.append("alpha", expected_head_seq=0, kind="promotion", to_version="2", actor="a", reason="r")
    with pytest.raises(LedgerConflict, match="its head is entry 0, not 3 as expected") as caught:
        ledger.append("beta", expected_head_seq=3, kind="promotion", to_version="2", actor="a", reason="r")
    assert (caught.value.model, caught.value.expected_seq, caught.value.actual_seq) == ("beta", 3, 0)
    assert ledger.head("beta") is None


def test_rollbacks_that_make_no_sense_are_refused_with_what_to_do(ledger: ChampionLedger) -> None:
    with pytest.raises(LedgerMoveRefused, match="model 'alpha' has no champion of record to roll back from; promote "
                                                "a version first"):
        move(ledger, "1", "rollback")
    move(ledger, "1")
    move(ledger, "2")
    with pytest.raises(LedgerMoveRefused, match="version 2 of 'alpha' is already the champion of record; nothing was "
                                                "written"):
        move(ledger, "2", "rollback")
    with pytest.raises(LedgerMoveRefused, match=r"version 7 of 'alpha' was never its champion, so it cannot be rolled "
                                                r"back to; .*\(see `ml-platform history alpha`\)"):
        move(ledger, "7", "rollback")
    move(ledger, "1", "rollback")  # an earlier champion
    assert ledger.head("alpha").to_version == "1"  # type: ignore[union-attr]
    move(ledger, "2", "rollback")  # and forward again to another earlier champion
    assert [e.kind for e in ledger.history("alpha")] == ["promotion", "promotion", "rollback", "rollback"]


@pytest.mark.parametrize(("change", "message"), [
    ({"max_attempts": 0}, "max_attempts must be an integer from 1 to 100, got 0"),
    ({"max_attempts": 101}, "max_attempts must be an integer from 1 to 100, got 101"),
    ({"max_attempts": True}, "max_attempts must be an integer from 1 to 100"),
    ({"max_attempts": 2.0}, "max_attempts must be an integer from 1 to 100"),
    ({"expected_head_seq": 0}, r"move\(\) got unknown arguments \['expected_head_seq'\]"),
    ({"approver": ""}, "approver must be a non-empty string"),
    ({"rationale_ref": "x"}, "rationale_ref and rationale_sha256 go together"),
    ({"rationale_ref": "x", "rationale_sha256": "sha256:" + "Z" * 64}, "rationale_sha256 must be 'sha256:'"),
    ({"report_ref": "a\nb", "report_sha256": "sha256:" + "1" * 64}, "report_ref contains the control character"),
    ({"report_ref": "x" * 2049, "report_sha256": "sha256:" + "1" * 64}, "report_ref is 2049 characters long"),
    ({"override": True, **RATIONALE, "kind": "rollback"}, "needs kind='promotion' and a rationale_ref"),
])
def test_a_malformed_move_is_refused_before_anything_is_read(ledger: ChampionLedger, change: dict, message: str) -> None:
    arguments = {"kind": "promotion", "to_version": "1", "actor": "alice", "reason": "r", **change}
    with pytest.raises(ConfigurationError, match=message):
        ledger.move("alpha", **arguments)
    assert ledger.head("alpha") is None


def test_the_caller_fields_have_their_length_limits(ledger: ChampionLedger) -> None:
    entry = ledger.move("alpha", kind="promotion", to_version="1", actor="a" * 256, reason="r" * 10_000,
                        approver="b" * 256, report_ref="x" * 2048, report_sha256="sha256:" + "1" * 64)
    assert len(entry.actor) == 256 and len(entry.reason) == 10_000 and len(entry.report_ref or "") == 2048
    for field, value in (("actor", "a" * 257), ("reason", "r" * 10_001), ("approver", "b" * 257)):
        with pytest.raises(ConfigurationError, match=f"{field} is .* characters long"):
            ledger.move("alpha", **{"kind": "promotion", "to_version": "2", "actor": "a", "reason": "r",
                                    field: value})
    with pytest.raises(ConfigurationError, match="actor contains the control character"):
        ledger.move("alpha", kind="promotion", to_version="2", actor="a\tb", reason="r")
    assert ledger.move("alpha", kind="promotion", to_version="2", actor="a", reason="tab\there").reason == "tab\there"


def test_in_production_a_promotion_needs_its_report_and_rationale_a_rollback_does_not(url: str) -> None:
    with ChampionLedger(url, production=True) as ledger:
        with pytest.raises(LedgerMoveRefused, match=rf"ledger {url}: in production \(ML_PLATFORM_DEPLOYMENT=production\) "
                                                    r"a promotion of 'alpha' needs its numeric report and written "
                                                    r"rationale, and this one has no report_ref, report_sha256, "
                                                    r"rationale_ref, rationale_sha256: promote through the promotion "
                                                    r"job"):
            move(ledger, "1")
        with pytest.raises(LedgerMoveRefused, match="this one has no rationale_ref, rationale_sha256: "):
            move(ledger, "1", **REPORT)
        with pytest.raises(LedgerMoveRefused, match="this one has no report_ref, report_sha256: "):
            ledger.append("alpha", expected_head_seq=0, kind="promotion", to_version="1", actor="a", reason="r",
                          **RATIONALE)
        move(ledger, "1", **REPORT, **RATIONALE)
        move(ledger, "2", **REPORT, **RATIONALE)
        assert move(ledger, "1", "rollback").to_version == "1"


# -- a locked or broken database -----------------------------------------------------------------------


def test_a_write_blocked_by_another_writer_is_unavailable_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    with ChampionLedger(f"sqlite:///{path}", busy_timeout_seconds=0.2) as ledger:
        move(ledger, "1")
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(LedgerUnavailable, match=r"while trying to record the promotion of 'alpha' to version 2: "
                                                        r"still locked by another writer after 0\.2 s; nothing was "
                                                        r"written, retry") as caught:
                move(ledger, "2")
            assert isinstance(caught.value.__cause__, Exception)
            assert ledger.head("alpha").to_version == "1"  # type: ignore[union-attr]  # reads are not blocked
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert move(ledger, "2").seq == 2


def test_a_database_that_is_not_a_database_fails_as_a_ledger_error(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    path.write_bytes(b"this is not a SQLite file at all, just text " * 100)
    with pytest.raises(LedgerError, match=r"failed to create or migrate the ledger's tables|create or migrate"):
        ChampionLedger(f"sqlite:///{path}").head("alpha")


def test_a_unique_violation_is_a_race_and_a_check_failure_is_not() -> None:
    from sqlalchemy.exc import IntegrityError

    class UniqueViolation(Exception):
        pass

    def wrapped(orig: Exception) -> IntegrityError:
        return IntegrityError("INSERT ...", {}, orig)

    assert _is_unique_violation(wrapped(UniqueViolation("duplicate key")))
    assert _is_unique_violation(wrapped(sqlite3.IntegrityError("UNIQUE constraint failed: t.a")))
    assert not _is_unique_violation(wrapped(sqlite3.IntegrityError("CHECK constraint failed: seq")))
    assert not _is_unique_violation(wrapped(sqlite3.IntegrityError("FOREIGN KEY constraint failed")))


def test_a_fork_forbidden_by_the_schema_is_a_conflict_not_a_crash(ledger: ChampionLedger, url: str) -> None:
    first = move(ledger, "1")
    # another writer forked the chain behind the ledger's back: entry 2 already exists without a head move
    raw_sql(url, "INSERT INTO ml_platform_ledger_entries (model, seq, kind, from_version, to_version, actor, "
                 "approver, reason, report_ref, report_sha256, rationale_ref, rationale_sha256, override, "
                 "recorded_at, prev_hash, entry_hash, scheme) SELECT model, 2, kind, '1', '9', actor, approver, "
                 "reason, report_ref, report_sha256, rationale_ref, rationale_sha256, override, recorded_at, "
                 "entry_hash, 'sha256:" + "7" * 64 + "', scheme FROM ml_platform_ledger_entries WHERE seq = 1")
    with pytest.raises(LedgerConflict, match="another move of 'alpha' was recorded at the same time; nothing was "
                                             "written") as caught:
        ledger.append("alpha", expected_head_seq=1, kind="promotion", to_version="2", actor="a", reason="r")
    assert caught.value.expected_seq == 1
    with pytest.raises(LedgerTampered, match="the chain goes on to entry 2: the head row was moved back, or an "
                                             "entry was written past it") as forked:
        ledger.head("alpha")  # the head still names entry 1, but entry 2 is not its to serve from
    assert (forked.value.seq, forked.value.problem) == (first.seq, "moved_back")
    with pytest.raises(LedgerConflict, match=r"kept moving under this promotion to version 3 \(2 attempts lost the "
                                             r"race\); nothing was written by it") as moved:
        ledger.move("alpha", kind="promotion", to_version="3", actor="a", reason="r", max_attempts=2)
    assert moved.value.model == "alpha" and isinstance(moved.value.__cause__, LedgerConflict)


# -- the head check in one read ----------------------------------------------------------------------------


def tampered_head(ledger: ChampionLedger, url: str, statement: str, match: str) -> LedgerTampered:
    for version in ("1", "2", "3"):
        move(ledger, version)
    raw_sql(url, statement)
    with pytest.raises(LedgerTampered, match=match) as caught:
        ledger.head("alpha")
    return caught.value


def test_a_head_naming_a_deleted_entry_is_tampered(ledger: ChampionLedger, url: str) -> None:
    error = tampered_head(ledger, url, "DELETE FROM ml_platform_ledger_entries WHERE seq = 3",
                          rf"ledger {url}: the head entry 3 of model 'alpha' is tampered: the head names entry 3, "
                          r"which is missing \(deleted\); do not serve from it, run `ml-platform audit verify alpha`")
    assert (error.model, error.seq, error.problem) == ("alpha", 3, "head")
    with pytest.raises(LedgerTampered, match="names entry 3, which is missing; run `ml-platform audit verify alpha`"):
        move(ledger, "4")


def test_a_head_row_naming_another_hash_is_tampered(ledger: ChampionLedger, url: str) -> None:
    tampered_head(ledger, url, "UPDATE ml_platform_ledger_heads SET entry_hash = 'sha256:" + "5" * 64 + "'",
                  "the head entry 3 of model 'alpha' is tampered: the head row names another hash: the head row was "
                  "altered")


def test_a_head_row_moved_back_is_refused_by_the_one_read_and_caught_by_verify_and_the_next_move(
        ledger: ChampionLedger, url: str) -> None:
    # consistent in itself, but the one read sees the newer entry: refused, naming `audit verify`
    tampered = tampered_head(ledger, url, "UPDATE ml_platform_ledger_heads SET seq = 2, entry_hash = (SELECT "
                                          "entry_hash FROM ml_platform_ledger_entries WHERE seq = 2)",
                             rf"ledger {url}: the head entry 2 of model 'alpha' is tampered: the chain goes on to entry "
                             r"3: the head row was moved back, or an entry was written past it; do not serve from it, "
                             r"run `ml-platform audit verify alpha`")
    assert (tampered.model, tampered.seq, tampered.problem) == ("alpha", 2, "moved_back")
    assert ledger.verify("alpha", strict=False).problem.kind == "moved_back"  # type: ignore[union-attr]
    with pytest.raises(LedgerConflict, match="another move of 'alpha' was recorded at the same time"):
        ledger.append("alpha", expected_head_seq=2, kind="promotion", to_version="4", actor="a", reason="r")
    # its entry 3 exists already: the primary key refuses the fork, and move() retries and gives up
    with pytest.raises(LedgerConflict, match=r"\(5 attempts lost the race\)"):
        move(ledger, "4")


def test_an_unreadable_head_entry_is_tampered(ledger: ChampionLedger, url: str) -> None:
    tampered_head(ledger, url, "UPDATE ml_platform_ledger_entries SET recorded_at = 'noon' WHERE seq = 3",
                  r"the head entry 3 of model 'alpha' is tampered: it cannot be read back \(not a ledger time")
    with pytest.raises(LedgerTampered, match=r"entry 3 of model 'alpha' cannot be read back \(not a ledger time") as e:
        ledger.history("alpha")
    assert (e.value.seq, e.value.problem) == (3, "altered")


def test_an_edited_head_entry_is_tampered(ledger: ChampionLedger, url: str) -> None:
    tampered_head(ledger, url, "UPDATE ml_platform_ledger_entries SET actor = 'mallory' WHERE seq = 3",
                  "the head entry 3 of model 'alpha' is tampered: its fields do not give its hash: it was edited")


def test_was_champion_and_models_read_only_their_model(ledger: ChampionLedger) -> None:
    move(ledger, "1")
    ledger.move("beta", kind="promotion", to_version="5", actor="a", reason="r")
    assert ledger.was_champion("alpha", 1) and not ledger.was_champion("alpha", 5)
    assert ledger.models() == ("alpha", "beta")
    with pytest.raises(ConfigurationError):
        ledger.was_champion("alpha", "v1")
    with pytest.raises(ConfigurationError):
        ledger.history("no/slash")
    assert MoveKind.ROLLBACK == "rollback"
