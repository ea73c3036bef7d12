"""ChampionService, reconcile and version facts at their edges, on the session's real MLflow SQLite registry.

What ``test_service.py`` shows end to end, pinned one decision at a time: the settings' ranges, each
rollback refusal's reason, the alias written from the head, a failed alias write logged and left for
reconcile, a conflict re-decided until its deadline, the crash points a move passes, every reconcile
finding, and where version facts are read from.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_platform.champions import ChampionLedger
from ml_platform.champions import service as service_module
from ml_platform.champions.facts import VersionFacts, VersionFactsReader
from ml_platform.champions.reconcile import ReconcileFinding, ReconcileReport
from ml_platform.champions.service import ChampionService, previous_champion
from ml_platform.errors import ConfigurationError, LedgerConflict, RegistryError, RollbackRefused
from ml_platform.registry.entities import LEDGER_HEAD_TAG, STATUS_TAG, RegisteredVersion
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.registry.conftest import (
    CODE_SNAPSHOT,
    FEATURES,
    GRAPH_HASH,
    make_contract,
    make_model,
    mlflow_client,
)


def register(registry: ModelRegistry, name: str, shift: float) -> RegisteredVersion:
    model = make_model(shift)
    return registry.register(model_name=name, model=model, contract=make_contract(name, model),
                             params={"alpha": 1.0, "features": list(FEATURES)}, metrics={"sharpe": 1.0},
                             code_snapshot=CODE_SNAPSHOT)


@pytest.fixture(scope="module")
def model(registry: ModelRegistry) -> str:
    """A model with three registered versions (each test promotes it on its own ledger)."""
    name = f"edges_{uuid.uuid4().hex[:8]}"
    for shift in (0.0, 0.1, 0.2):
        register(registry, name, shift)
    return name


@pytest.fixture
def service(registry: ModelRegistry, tmp_path: Path) -> Iterator[ChampionService]:
    """The service on the registry and a fresh ledger of its own (MLflow's rows live in another file)."""
    ledger = ChampionLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ChampionService(registry, ledger, alias_timeout_seconds=5.0) as opened:
        yield opened
    ledger.close()


def promote(service: ChampionService, name: str, *versions: str) -> None:
    for version in versions:
        service.promote(name, version, actor="alice", approver="bob", reason=f"promote {version}")


class _E:
    def __init__(self, kind: str, to_version: str) -> None:
        self.kind, self.to_version = kind, to_version


def test_previous_champion_is_the_stack_below_the_top() -> None:
    p, r = "promotion", "rollback"
    cases = [
        ([_E(p, "1"), _E(p, "2"), _E(r, "1"), _E(p, "3")], "1"),  # after a rollback, a promotion pushes again
        ([_E(p, "1"), _E(p, "2"), _E(p, "3"), _E(r, "1")], None),  # a rollback pops everything above its target
        ([_E(p, "1"), _E(r, "5"), _E(p, "2")], "5"),  # a rollback to an unknown version pushes it
        ([_E(p, "1"), _E(p, "2"), _E(p, "3"), _E(p, "1")], "3"),  # a re-promotion moves the version to the top
    ]
    for entries, expected in cases:
        assert previous_champion(entries) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("setting", "message"), [
    ({"alias_timeout_seconds": 0}, r"alias_timeout_seconds must be a number of seconds in \(0, 3600\], got 0"),
    ({"alias_timeout_seconds": 3601}, "alias_timeout_seconds must be a number of seconds in"),
    ({"alias_timeout_seconds": True}, "alias_timeout_seconds must be a number of seconds in"),
    ({"conflict_timeout_seconds": -1.0}, "conflict_timeout_seconds must be a number of seconds in"),
    ({"conflict_timeout_seconds": "5"}, "conflict_timeout_seconds must be a number of seconds in"),
    ({"alias_retries": -1}, "alias_retries must be an integer from 0 to 10, got -1"),
    ({"alias_retries": 11}, "alias_retries must be an integer from 0 to 10"),
    ({"alias_retries": 1.0}, "alias_retries must be an integer from 0 to 10"),
    ({"alias_retries": False}, "alias_retries must be an integer from 0 to 10"),
])
def test_the_service_settings_have_their_ranges(registry: ModelRegistry, tmp_path: Path,
                                                setting: dict, message: str) -> None:
    ledger = ChampionLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with pytest.raises(ConfigurationError, match=message):
        ChampionService(registry, ledger, **setting)


def test_the_settings_range_ends_are_accepted(registry: ModelRegistry, tmp_path: Path) -> None:
    ledger = ChampionLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ChampionService(registry, ledger, alias_timeout_seconds=3600, alias_retries=10,
                         conflict_timeout_seconds=0.001) as edge:
        assert (edge.alias_timeout_seconds, edge.alias_retries, edge.conflict_timeout_seconds) == (3600.0, 10, 0.001)
        assert repr(edge) == f"ChampionService({registry!r}, {ledger!r})"
    with ChampionService(registry, ledger, alias_retries=0) as none:
        assert none.alias_retries == 0 and none.alias_timeout_seconds == 2.0 and none.conflict_timeout_seconds == 30.0


def test_a_rollback_needs_a_champion_and_a_ready_target(service: ChampionService, model: str,
                                                         registry: ModelRegistry) -> None:
    with pytest.raises(RollbackRefused, match=f"model {model!r} has no champion of record to roll back from; promote "
                                              "a version first"):
        service.rollback(model, reason="r", actor="oncall")
    promote(service, model, "1")
    with pytest.raises(RollbackRefused, match=f"model {model!r} has no earlier champion to roll back to: version 1 "
                                              rf"is the only one left on its ledger \(see `ml-platform history {model}`\)"):
        service.rollback(model, reason="r", actor="oncall")
    promote(service, model, "2", "3")
    client = mlflow_client(registry)
    client.set_model_version_tag(model, "2", STATUS_TAG, "failed")
    try:
        for target in (None, "2"):
            with pytest.raises(RollbackRefused, match=rf"version 2 of {model!r} is not ready \({STATUS_TAG}='failed'\); "
                                                      "it cannot serve; nothing moved"):
                service.rollback(model, to=target, reason="r", actor="oncall")
    finally:
        client.set_model_version_tag(model, "2", STATUS_TAG, "ready")
    entry = service.rollback(model, reason="r", actor="oncall", live_feature_graph_hash=GRAPH_HASH)
    assert (entry.kind, entry.from_version, entry.to_version, entry.actor, entry.reason) == (
        "rollback", "3", "2", "oncall", "r")
    with pytest.raises(ConfigurationError):
        service.rollback(model, reason="", actor="oncall")
    with pytest.raises(ConfigurationError):
        service.rollback(model, reason="r", actor="on\ncall")


def test_a_target_whose_facts_cannot_be_read_is_refused(service: ChampionService, model: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    promote(service, model, "1", "2")

    def down(*args: object) -> VersionFacts:
        raise RegistryError("the tracking server is down")

    monkeypatch.setattr(service._facts, "read", down)
    with pytest.raises(RollbackRefused, match=f"cannot check version 1 of {model!r} before rolling back to it: "
                                              r"\[REGISTRY_ERROR\] the tracking server is down; nothing moved"):
        service.rollback(model, to="1", reason="r", actor="oncall")
    assert service.champion(model) == "2"


def test_the_alias_is_written_from_the_head_at_write_time(service: ChampionService, model: str,
                                                          registry: ModelRegistry) -> None:
    assert service.champion(model) is None
    promote(service, model, "1", "2")
    assert registry.champion_alias(model) == "2"
    assert service.mirror_alias(model, "1") is True  # a late write of an older move mirrors the newest head
    assert registry.champion_alias(model) == "2"
    head = service.ledger.head(model)
    assert head is not None and registry.model_tags(model)[LEDGER_HEAD_TAG] == f"2:{head.entry_hash}"  # anchored too


def test_a_failed_alias_write_is_logged_and_left_for_reconcile(service: ChampionService, model: str,
                                                               registry: ModelRegistry,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    promote(service, model, "1")
    attempts: list[str] = []

    def refuse(name: str, version: str) -> None:
        attempts.append(version)
        raise ConnectionError("tracking server unreachable")

    monkeypatch.setattr(registry, "write_champion_alias", refuse)
    with caplog.at_level(logging.WARNING, logger="ml_platform.champions.service"):
        assert service.mirror_alias(model, "1") is False
    assert attempts == ["1", "1"]  # the first try and alias_retries=1 more
    assert (f"model {model!r}: the ledger moved the champion to version 1 but the MLflow 'champion' alias could not "
            "be written (ConnectionError: tracking server unreachable); it is left for `ml-platform registry "
            "reconcile`") in caplog.text


def test_a_rollback_overtaken_by_a_concurrent_move_decides_again(service: ChampionService, model: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    promote(service, model, "1", "2", "3")
    append = service.ledger.append
    overtaken: list[int] = []

    def once_overtaken(*args: Any, **kwargs: Any) -> Any:
        if not overtaken:
            overtaken.append(kwargs["expected_head_seq"])
            promote(service, model, "1")  # a concurrent promotion lands first: 3 -> 1
            return append(*args, **kwargs)
        return append(*args, **kwargs)

    monkeypatch.setattr(service.ledger, "append", once_overtaken)
    entry = service.rollback(model, reason="r", actor="oncall")
    assert overtaken == [3] and (entry.seq, entry.from_version, entry.to_version) == (5, "1", "3")


def test_a_rollback_overtaken_past_its_deadline_gives_up(registry: ModelRegistry, model: str,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = ChampionLedger(f"sqlite:///{tmp_path / 'ledger.db'}")
    with ChampionService(registry, ledger, conflict_timeout_seconds=0.001) as service:
        promote(service, model, "1", "2")

        def always_overtaken(*args: Any, **kwargs: Any) -> Any:
            raise LedgerConflict("overtaken", model=model, expected_seq=2, actual_seq=3)

        monkeypatch.setattr(service.ledger, "append", always_overtaken)
        with pytest.raises(LedgerConflict, match="overtaken"):
            service.rollback(model, reason="r", actor="oncall")
    ledger.close()


def test_a_move_passes_its_crash_points_in_order(service: ChampionService, model: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    passed: list[str] = []
    monkeypatch.setattr(service_module, "crash_point", passed.append)
    promote(service, model, "1")
    assert passed == ["champion.contract_verified", "champion.ledger_committed", "champion.anchor_written",
                      "champion.alias_writing", "champion.alias_written"]
    promote(service, model, "2")
    passed.clear()
    service.rollback(model, reason="r", actor="oncall")
    assert passed == ["champion.anchor_written", "champion.alias_writing", "champion.alias_written"]


# -- reconcile ---------------------------------------------------------------------------------------------


def test_reconcile_repairs_a_missing_alias_and_reports_what_a_person_must_decide(
        service: ChampionService, model: str, registry: ModelRegistry) -> None:
    promote(service, model, "1")
    client = mlflow_client(registry)
    client.delete_registered_model_alias(model, "champion")
    found = service.reconcile(model, check_only=True)
    assert found == ReconcileReport((model,), (ReconcileFinding(
        model, "alias_missing", "the MLflow alias points at nothing but the ledger head (entry 1) is version 1",
        "would set the alias to 1"),), True)
    assert not found.consistent and registry.champion_alias(model) is None
    assert found.lines() == [(f"{model}: alias_missing: the MLflow alias points at nothing but the ledger head (entry 1) "
                             "is version 1 -> would set the alias to 1")]
    repaired = service.reconcile(model)
    assert repaired.findings == (ReconcileFinding(model, "alias_missing", found.findings[0].detail, "alias set to 1",
                                                  True),)
    assert repaired.consistent and registry.champion_alias(model) == "1"
    assert repaired.to_dict() == {"models": [model], "check_only": False, "consistent": True, "findings": [
        {"model": model, "problem": "alias_missing", "detail": found.findings[0].detail, "action": "alias set to 1",
         "repaired": True}]}
    clean = service.reconcile(model, check_only=True)
    assert clean.consistent and clean.lines() == [
        "champions consistent: 1 model(s), every alias equals its ledger head"]


def test_reconcile_reports_an_unready_head_and_still_repairs_its_alias(
        service: ChampionService, model: str, registry: ModelRegistry) -> None:
    promote(service, model, "1", "2")
    client = mlflow_client(registry)
    client.set_registered_model_alias(model, "champion", "1")
    client.set_model_version_tag(model, "2", STATUS_TAG, "failed")
    try:
        report = service.reconcile(model)
    finally:
        client.set_model_version_tag(model, "2", STATUS_TAG, "ready")
    assert [(f.problem, f.repaired) for f in report.findings] == [("head_version_unusable", False),
                                                                  ("alias_drift", True)]
    assert report.findings[0].detail == "the champion of record, version 2, is not ready ('failed')"
    assert report.findings[1].detail == ("the MLflow alias points at 1 but the ledger head (entry 2) is version 2")
    assert not report.consistent and registry.champion_alias(model) == "2"


def test_reconcile_leaves_an_alias_the_ledger_never_recorded(service: ChampionService,
                                                              registry: ModelRegistry) -> None:
    name = f"unrecorded_{uuid.uuid4().hex[:8]}"
    register(registry, name, 0.0)
    registry.write_champion_alias(name, "1")
    report = service.reconcile(name)
    assert report.findings == (ReconcileFinding(
        name, "alias_without_ledger", "the MLflow alias points at version 1 but the ledger records no champion",
        f"none: promote it to record it (ml_platform promote {name} 1)"),)
    assert registry.champion_alias(name) == "1" and service.champion(name) is None
    everything = service.reconcile(check_only=True)
    assert name in everything.models and list(everything.models) == sorted(everything.models)
    never = f"never_{uuid.uuid4().hex[:8]}"
    assert service.reconcile(never).findings == ()  # no alias, no ledger: nothing to say
    with pytest.raises(ConfigurationError):
        service.reconcile("no/slash")


def test_reconcile_of_a_tampered_chain_touches_nothing(service: ChampionService, model: str,
                                                       registry: ModelRegistry) -> None:
    from ml_platform_tests.champions.conftest import raw_sql

    promote(service, model, "1", "2")
    mlflow_client(registry).set_registered_model_alias(model, "champion", "1")
    raw_sql(service.ledger.url, "UPDATE ml_platform_ledger_entries SET actor = 'mallory' WHERE seq = 1")
    report = service.reconcile(model)
    finding, = report.findings
    assert (finding.problem, finding.repaired) == ("chain_broken", False)
    assert finding.detail.startswith(f"ledger of model {model!r} is TAMPERED at entry 1 (altered)")
    assert finding.action == "none: restore the ledger tables from a backup; the alias is left alone"
    assert registry.champion_alias(model) == "1"


def test_reconcile_re_anchors_what_an_unfinished_move_left_and_never_an_anchor_ahead(
        service: ChampionService, model: str, registry: ModelRegistry) -> None:
    promote(service, model, "1", "2")
    first, second = service.history(model)
    client = mlflow_client(registry)
    source = "the MLflow registered model tag 'ml_platform.ledger.head'"
    try:
        client.set_registered_model_tag(model, LEDGER_HEAD_TAG, f"1:{first.entry_hash}")  # the move's write was lost
        found = service.reconcile(model, check_only=True)
        assert found == ReconcileReport((model,), (ReconcileFinding(
            model, "anchor_behind", f"{source} names 1:{first.entry_hash} but the ledger head is entry 2",
            f"would set the anchor to 2:{second.entry_hash}"),), True)
        assert registry.model_tags(model)[LEDGER_HEAD_TAG] == f"1:{first.entry_hash}"  # check_only changed nothing
        repaired = service.reconcile(model)
        assert repaired.findings == (ReconcileFinding(model, "anchor_behind", found.findings[0].detail,
                                                      f"anchor set to 2:{second.entry_hash}", True),)
        assert repaired.consistent and registry.model_tags(model)[LEDGER_HEAD_TAG] == f"2:{second.entry_hash}"
        client.delete_registered_model_tag(model, LEDGER_HEAD_TAG)
        assert service.reconcile(model).findings == (ReconcileFinding(
            model, "anchor_missing", f"{source} is not set but the ledger head is entry 2",
            f"anchor set to 2:{second.entry_hash}", True),)
        client.set_registered_model_tag(model, LEDGER_HEAD_TAG, f"3:{second.entry_hash}")  # what a cut tail leaves
        finding, = service.reconcile(model).findings
        assert (finding.problem, finding.repaired) == ("chain_broken", False)
        assert finding.detail.startswith(f"ledger of model {model!r} is TAMPERED at entry 3 (cut_tail): ")
        assert registry.model_tags(model)[LEDGER_HEAD_TAG] == f"3:{second.entry_hash}"  # the evidence stays
    finally:
        client.set_registered_model_tag(model, LEDGER_HEAD_TAG, f"2:{second.entry_hash}")


def test_the_anchor_check_reads_the_head_and_its_anchor_and_reports_a_tampered_head(
        service: ChampionService, model: str, registry: ModelRegistry) -> None:
    from ml_platform_tests.champions.conftest import raw_sql

    promote(service, model, "1", "2")
    head = service.ledger.head(model)
    assert head is not None
    report = service.check_anchor(model)
    assert (report.ok, report.walked, report.head_seq, report.head_hash, report.anchor, report.anchor_state) == (
        True, False, 2, head.entry_hash, f"2:{head.entry_hash}", "matches")
    raw_sql(service.ledger.url, "UPDATE ml_platform_ledger_heads SET seq = 1, entry_hash = (SELECT entry_hash FROM "
                                "ml_platform_ledger_entries WHERE seq = 1)")
    moved = service.check_anchor(model)
    assert moved.problem is not None and (moved.ok, moved.walked, moved.head_seq, moved.head_hash) == (
        False, False, 1, None)
    assert (moved.problem.seq, moved.problem.kind, moved.anchor) == (1, "moved_back", f"2:{head.entry_hash}")
    assert moved.problem.detail.startswith(f"ledger {service.ledger.store}: the head entry 1 of model {model!r} is "
                                           "tampered: the chain goes on to entry 2")
    assert service.verify(model, strict=False).problem.kind == "moved_back"  # type: ignore[union-attr]


# -- version facts ------------------------------------------------------------------------------------------


def test_version_facts_come_from_mlflows_rows_when_the_ledger_database_holds_them(
        registry: ModelRegistry, model: str) -> None:
    ledger = ChampionLedger(f"sqlite:///{registry.sqlite_file}")
    reader = VersionFactsReader(ledger, registry)
    assert reader.read(model, "2") == VersionFacts(True, "ready", GRAPH_HASH, "database")
    assert reader.read(model, "9") == VersionFacts(False, None, None, "database")
    ledger.close()


def test_version_facts_come_from_the_mlflow_client_otherwise(service: ChampionService, model: str) -> None:
    assert service.version_facts(model, "2") == VersionFacts(True, "ready", GRAPH_HASH, "mlflow")
    assert service.version_facts(model, "9") == VersionFacts(False, None, None, "mlflow")


def test_the_service_opens_on_the_registrys_own_ledger_and_reads_through_it(registry: ModelRegistry,
                                                                             model: str) -> None:
    with ChampionService.open(registry, production=False, alias_retries=0) as opened:
        assert opened.ledger.url == f"sqlite:///{registry.sqlite_file}" and opened.alias_retries == 0
        assert not opened.ledger.production
        assert opened.history("never_promoted") == () and opened.verify("never_promoted").ok
        report = opened.verify("never_promoted", strict=False)
        assert report.entries == 0 and report.model == "never_promoted"


def test_a_promotion_on_the_head_its_gates_compared_against(service: ChampionService, model: str,
                                                            registry: ModelRegistry) -> None:
    first = service.promote(model, "1", actor="job run 1", approver="bob", reason="first", expected_head_seq=0)
    entry = service.promote(model, "2", actor="job run 2", approver="carol", reason="second\nline",
                            expected_head_seq=first.seq)
    assert (entry.seq, entry.kind, entry.from_version, entry.to_version) == (2, "promotion", "1", "2")
    assert (entry.actor, entry.approver, entry.reason) == ("job run 2", "carol", "second\nline")
    assert registry.champion_alias(model) == "2"
    with pytest.raises(LedgerConflict, match="its head is entry 2, not 1 as expected"):
        service.promote(model, "3", actor="job run 3", approver="bob", reason="stale", expected_head_seq=1)
    assert service.champion(model) == "2"


def test_a_rollback_checks_its_reason_and_actor_before_reading_anything(service: ChampionService,
                                                                        model: str) -> None:
    promote(service, model, "1", "2")
    for reason, message in ((None, "reason must be a non-empty string"), ("r" * 10_001, "reason is 10001 characters"),
                            ("a\x00b", "reason contains the control character")):
        with pytest.raises(ConfigurationError, match=message):
            service.rollback(model, reason=reason, actor="oncall")  # type: ignore[arg-type]
    for actor, message in (("", "actor must be a non-empty string"), ("a" * 257, "actor is 257 characters"),
                           ("on\tcall", "actor contains the control character")):
        with pytest.raises(ConfigurationError, match=message):
            service.rollback(model, reason="r", actor=actor)
    entry = service.rollback(model, reason="r" * 10_000 + "", actor="a" * 256)
    assert len(entry.reason) == 10_000 and len(entry.actor) == 256
    multiline = service.rollback(model, to="2", reason="line one\nline\ttwo", actor="oncall")
    assert multiline.reason == "line one\nline\ttwo"
