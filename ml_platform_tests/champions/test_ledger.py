"""The ledger on SQLite and PostgreSQL: append/head/history, compare-and-set, refusals, schema, tampering."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.pool import NullPool

from ml_platform.champions import GENESIS_HASH, SCHEMA_VERSION, ChampionLedger, LedgerEntry, MoveKind
from ml_platform.errors import (
    ConfigurationError,
    LedgerConflict,
    LedgerMoveRefused,
    LedgerSchemaError,
    LedgerTampered,
)
from ml_platform_tests.champions.conftest import raw_sql

REPORT = {"report_ref": "mlflow-artifacts:/1/r/artifacts/promotion/report.json", "report_sha256": "sha256:" + "1" * 64}
RATIONALE = {"rationale_ref": "mlflow-artifacts:/1/r/artifacts/promotion/rationale.md",
             "rationale_sha256": "sha256:" + "2" * 64}


def promote(ledger: ChampionLedger, model: str, version: str, expected: int, **extra: object) -> LedgerEntry:
    return ledger.append(model, expected_head_seq=expected, kind=MoveKind.PROMOTION, to_version=version,
                         actor="alice", approver="bob", reason=f"promote {version}", **REPORT, **extra)


def count_rows(url: str, model: str) -> int:
    return raw_sql(url, "SELECT count(*) FROM ml_platform_ledger_entries WHERE model = :m", m=model)[0][0]


def test_append_head_history(ledger: ChampionLedger, ledger_url: str) -> None:
    assert ledger.head("alpha") is None
    assert ledger.history("alpha") == ()
    assert ledger.verify("alpha").ok and ledger.verify("alpha").entries == 0

    first = promote(ledger, "alpha", "1", 0)
    assert (first.seq, first.from_version, first.to_version, first.prev_hash) == (1, None, "1", GENESIS_HASH)
    second = promote(ledger, "alpha", "2", 1, **RATIONALE, override=True)
    back = ledger.append("alpha", expected_head_seq=2, kind="rollback", to_version=1, actor="oncall",
                         reason="live IC collapsed\nsince the open")
    assert (back.seq, back.kind, back.from_version, back.to_version, back.approver) == (3, "rollback", "2", "1", None)
    assert second.prev_hash == first.entry_hash and back.prev_hash == second.entry_hash
    assert second.override and second.rationale_sha256 == RATIONALE["rationale_sha256"]
    assert first.recorded_at <= second.recorded_at <= back.recorded_at

    assert ledger.head("alpha") == back
    assert ledger.history("alpha") == (first, second, back)
    report = ledger.verify("alpha")
    assert (report.ok, report.entries, report.head_seq, report.head_hash) == (True, 3, 3, back.entry_hash)
    promote(ledger, "beta", "7", 0)
    assert ledger.models() == ("alpha", "beta")

    with ChampionLedger(ledger_url) as other:  # a second process's view: same tables, no re-migration
        assert other.head("alpha") == back
        assert other.history("beta")[0].to_version == "7"
    assert raw_sql(ledger_url, "SELECT version FROM ml_platform_ledger_schema") == [(SCHEMA_VERSION,)]
    tables = set(inspect(create_engine(ledger_url, poolclass=NullPool)).get_table_names())
    assert {"ml_platform_ledger_entries", "ml_platform_ledger_heads", "ml_platform_ledger_schema"} <= tables
    assert "alembic_version" not in tables


def test_stale_compare_and_set_is_refused_and_writes_nothing(ledger: ChampionLedger, ledger_url: str) -> None:
    head = promote(ledger, "alpha", "1", 0)
    for stale in (0, 2, 7):
        with pytest.raises(LedgerConflict, match="its head is entry 1, not") as caught:
            promote(ledger, "alpha", "2", stale)
        assert (caught.value.code, caught.value.expected_seq, caught.value.actual_seq) == ("LEDGER_CONFLICT", stale, 1)
    assert ledger.head("alpha") == head
    assert count_rows(ledger_url, "alpha") == 1
    ledger.verify("alpha")


def test_concurrent_first_appends_one_wins(ledger: ChampionLedger, ledger_url: str) -> None:
    barrier, outcomes = threading.Barrier(8), []

    def first(version: int) -> None:
        barrier.wait()
        try:
            outcomes.append(promote(ledger, "fresh", str(version), 0))
        except LedgerConflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=first, args=(v,)) for v in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    won = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(won) == 1 and len(outcomes) == 8
    assert ledger.head("fresh") == won[0] and count_rows(ledger_url, "fresh") == 1


def test_moves_that_make_no_sense_are_refused(ledger: ChampionLedger, ledger_url: str) -> None:
    with pytest.raises(LedgerMoveRefused, match="no champion of record to roll back from"):
        ledger.move("alpha", kind="rollback", to_version="1", actor="oncall", reason="bad day")
    promote(ledger, "alpha", "1", 0)
    promote(ledger, "alpha", "2", 1)
    with pytest.raises(LedgerMoveRefused, match="already the champion"):
        promote(ledger, "alpha", "2", 2)
    with pytest.raises(LedgerMoveRefused, match="version 5 of 'alpha' was never its champion"):
        ledger.move("alpha", kind="rollback", to_version=5, actor="oncall", reason="bad day")
    bad_arguments = [
        ({"model": "no/slash"}, "invalid model name"),
        ({"kind": "demotion"}, "kind must be one of"),
        ({"to_version": "v3"}, "invalid model version"),
        ({"actor": "  "}, "actor must be a non-empty string"),
        ({"actor": "a\nb"}, "control character"),
        ({"reason": ""}, "reason must be a non-empty string"),
        ({"approver": ""}, "approver must be a non-empty string"),
        ({"report_ref": "x"}, "give both or neither"),
        ({"report_ref": "x", "report_sha256": "sha256:ABC"}, "64 lower-case hex"),
        ({"override": True}, "needs kind='promotion' and a rationale_ref"),
        ({"override": 1}, "override must be True or False"),
        ({"expected_head_seq": -1}, "expected_head_seq must be"),
        ({"expected_head_seq": True}, "expected_head_seq must be"),
    ]
    for change, message in bad_arguments:
        arguments = {"model": "alpha", "expected_head_seq": 2, "kind": "promotion", "to_version": "3",
                     "actor": "alice", "reason": "better", **change}
        with pytest.raises(ConfigurationError, match=message):
            ledger.append(arguments.pop("model"), **arguments)  # type: ignore[arg-type]
    assert count_rows(ledger_url, "alpha") == 2
    assert ledger.head("alpha").to_version == "2"  # type: ignore[union-attr]
    ledger.move("alpha", kind="rollback", to_version=1, actor="oncall", reason="bad day")
    assert ledger.verify("alpha").head_seq == 3


def five_entries(ledger: ChampionLedger) -> list[LedgerEntry]:
    entries = [promote(ledger, "alpha", str(v), v - 1) for v in range(1, 5)]
    entries.append(ledger.move("alpha", kind="rollback", to_version="2", actor="oncall", reason="bad day"))
    return entries


TAMPERING = {
    "edited": (["UPDATE ml_platform_ledger_entries SET reason = 'nothing to see' WHERE model = 'alpha' AND seq = 3"],
               3, "altered"),
    "deleted": (["DELETE FROM ml_platform_ledger_entries WHERE model = 'alpha' AND seq = 3"], 3, "missing"),
    "reordered": (["UPDATE ml_platform_ledger_entries SET seq = 1000 WHERE model = 'alpha' AND seq = 2",
                   "UPDATE ml_platform_ledger_entries SET seq = 2 WHERE model = 'alpha' AND seq = 3",
                   "UPDATE ml_platform_ledger_entries SET seq = 3 WHERE model = 'alpha' AND seq = 1000"],
                  2, "reordered"),
    "time_edited": ([("UPDATE ml_platform_ledger_entries SET recorded_at = '2020-01-01T00:00:00.000000Z' "
                      "WHERE model = 'alpha' AND seq = 4")], 4, "altered"),
    "time_unreadable": ([("UPDATE ml_platform_ledger_entries SET recorded_at = 'yesterday' "
                          "WHERE model = 'alpha' AND seq = 2")], 2, "altered"),
    "head_moved_back": ([("UPDATE ml_platform_ledger_heads SET seq = 4, entry_hash = (SELECT entry_hash FROM "
                          "ml_platform_ledger_entries WHERE model = 'alpha' AND seq = 4) WHERE model = 'alpha'")],
                        4, "moved_back"),
    "link_edited": (["UPDATE ml_platform_ledger_entries SET prev_hash = 'sha256:" + "9" * 64
                       + "' WHERE model = 'alpha' AND seq = 4"], 4, "altered"),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_verify_names_the_first_bad_entry(ledger: ChampionLedger, ledger_url: str, tampering: str) -> None:
    five_entries(ledger)
    promote(ledger, "beta", "1", 0)
    statements, seq, kind = TAMPERING[tampering]
    for statement in statements:
        raw_sql(ledger_url, statement)
    with pytest.raises(LedgerTampered, match=f"TAMPERED at entry {seq} \\({kind}\\)") as caught:
        ledger.verify("alpha")
    assert (caught.value.code, caught.value.model, caught.value.seq, caught.value.problem) == (
        "LEDGER_TAMPERED", "alpha", seq, kind)
    report = ledger.verify("alpha", strict=False)
    assert not report.ok and (report.problem.seq, report.problem.kind) == (seq, kind)  # type: ignore[union-attr]
    assert ledger.verify("beta").ok  # another model's chain is untouched


def test_an_edited_head_entry_is_refused_by_the_one_read(ledger: ChampionLedger, ledger_url: str) -> None:
    five_entries(ledger)
    raw_sql(ledger_url, "UPDATE ml_platform_ledger_entries SET to_version = '4' WHERE model = 'alpha' AND seq = 5")
    with pytest.raises(LedgerTampered, match="head entry 5 of model 'alpha' is tampered.*audit verify alpha"):
        ledger.head("alpha")


def test_a_database_migrated_by_a_newer_release_is_refused(ledger_url: str) -> None:
    with ChampionLedger(ledger_url) as ledger:
        ledger.head("alpha")
    raw_sql(ledger_url, "INSERT INTO ml_platform_ledger_schema (version, description, applied_at) "
                        "VALUES (99, 'future', '2030-01-01T00:00:00.000000Z')")
    with ChampionLedger(ledger_url) as newer, pytest.raises(LedgerSchemaError, match="version 99.*upgrade ml_platform"):
        newer.head("alpha")


def test_ledger_tables_live_beside_mlflows_in_one_sqlite_file(migrated_mlflow: Callable[..., Path]) -> None:
    from mlflow import MlflowClient

    url = f"sqlite:///{migrated_mlflow()}"  # MLflow's tables first (migrated once per session), then the ledger's
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    client.create_registered_model("alpha")
    with ChampionLedger(url) as ledger:
        promote(ledger, "alpha", "1", 0)
    fresh = MlflowClient(tracking_uri=url, registry_uri=url)  # MLflow still accepts its (shared) database
    assert [m.name for m in fresh.search_registered_models()] == ["alpha"]
    with ChampionLedger(url) as ledger:
        assert ledger.head("alpha").to_version == "1"  # type: ignore[union-attr]


def test_was_champion_and_the_engine_for_reads_beside_the_ledger(ledger: ChampionLedger) -> None:
    assert not ledger.was_champion("wc", "1")
    ledger.move("wc", kind="promotion", to_version="1", actor="alice", reason="first")
    ledger.move("wc", kind="promotion", to_version="2", actor="alice", reason="second")
    assert ledger.was_champion("wc", "1") and ledger.was_champion("wc", 2) and not ledger.was_champion("wc", "3")
    assert not ledger.was_champion("other", "1")
    from sqlalchemy import text

    with ledger.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ml_platform_ledger_entries WHERE model = 'wc'")).scalar() == 2
