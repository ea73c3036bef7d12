"""The tamper suite of the anchored ledger: a cut tail and a moved-back head, each named and refused.

On the session's real MLflow SQLite registry with the ledger in its file. A tamperer with write access
to the ledger's tables deletes the newest entry and moves the head row back (a cut tail: the chain alone
verifies), or only moves the head row back. ``ml-platform audit verify`` (and ``--anchor-only``) exits 1
naming it, serving refuses naming ``audit verify``, reconcile leaves the anchor alone. An anchor left
behind or unset by an unfinished move is not tampering: served, and re-anchored by reconcile.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from ml_platform.champions.anchor import format_anchor
from ml_platform.champions.catalog import champion_of_record
from ml_platform.champions.service import ChampionService
from ml_platform.champions.serving import load_champion
from ml_platform.cli import main
from ml_platform.errors import LedgerTampered
from ml_platform.registry import LiveFeatureStream
from ml_platform.registry.entities import LEDGER_HEAD_TAG
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.champions.conftest import raw_sql
from ml_platform_tests.registry.conftest import (
    CODE_SNAPSHOT,
    FEATURES,
    GRAPH_HASH,
    feature_schema,
    make_contract,
    make_model,
    mlflow_client,
)

LIVE = LiveFeatureStream(GRAPH_HASH, feature_schema())


@pytest.fixture
def service(registry: ModelRegistry) -> Iterator[ChampionService]:
    with ChampionService.open(registry, alias_timeout_seconds=5.0) as opened:
        yield opened


@pytest.fixture
def model(registry: ModelRegistry, service: ChampionService) -> str:
    """A model with versions 1..3 promoted in turn: its ledger has entries 1..3, anchored at entry 3."""
    name = f"tamper_{uuid.uuid4().hex[:8]}"
    for shift in (0.0, 0.1, 0.2):
        model = make_model(shift)
        registry.register(model_name=name, model=model, contract=make_contract(name, model),
                          params={"alpha": 1.0, "features": list(FEATURES)}, metrics={"sharpe": 1.0},
                          code_snapshot=CODE_SNAPSHOT)
    for version in ("1", "2", "3"):
        service.promote(name, version, actor="alice", approver="bob", reason=f"promote {version}")
    return name


def audit(registry: ModelRegistry, model: str, *options: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["audit", "verify", model, *options, "--json",
                                       "--tracking-uri", registry.tracking_uri])
    return result.exit_code, json.loads(result.output)


def audit_text(registry: ModelRegistry, model: str, *options: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", "verify", model, *options, "--tracking-uri", registry.tracking_uri])
    return result.exit_code, result.output


def cut_tail(service: ChampionService, model: str) -> None:
    """Delete the newest entry and move the head row back onto the one before: the chain alone verifies."""
    url = service.ledger.url
    raw_sql(url, "UPDATE ml_platform_ledger_heads SET seq = 2, entry_hash = (SELECT entry_hash FROM "
                 "ml_platform_ledger_entries WHERE model = :m AND seq = 2) WHERE model = :m", m=model)
    raw_sql(url, "DELETE FROM ml_platform_ledger_entries WHERE model = :m AND seq = 3", m=model)


def move_head_back(service: ChampionService, model: str) -> None:
    raw_sql(service.ledger.url, "UPDATE ml_platform_ledger_heads SET seq = 2, entry_hash = (SELECT entry_hash FROM "
                                "ml_platform_ledger_entries WHERE model = :m AND seq = 2) WHERE model = :m", m=model)


def test_every_move_anchors_its_entry_hash_on_the_registered_model(registry: ModelRegistry, service: ChampionService,
                                                                   model: str) -> None:
    head = service.ledger.head(model)
    assert head is not None and head.seq == 3
    assert registry.model_tags(model)[LEDGER_HEAD_TAG] == format_anchor(head) == f"3:{head.entry_hash}"
    entry = service.rollback(model, reason="bad fills", actor="oncall")
    assert registry.model_tags(model)[LEDGER_HEAD_TAG] == f"4:{entry.entry_hash}"
    code, report = audit(registry, model)
    assert code == 0 and (report["ok"], report["anchor_state"], report["anchor"]) == (
        True, "matches", f"4:{entry.entry_hash}")
    code, report = audit(registry, model, "--anchor-only")
    assert code == 0 and (report["ok"], report["anchor_state"], report["walked"]) == (True, "matches", False)
    assert load_champion(registry, model, LIVE, policy="off").version == "2"


def test_a_cut_tail_is_named_by_audit_verify_and_refused_at_serving(registry: ModelRegistry,
                                                                    service: ChampionService, model: str) -> None:
    anchor = registry.model_tags(model)[LEDGER_HEAD_TAG]
    cut_tail(service, model)
    assert service.ledger.verify(model).ok  # the chain alone cannot see its own tail cut off
    assert service.ledger.head(model).to_version == "2"  # type: ignore[union-attr]

    code, output = audit_text(registry, model)
    assert code == 1, output
    assert f"ledger of model {model!r} is TAMPERED at entry 3 (cut_tail): " in output
    assert "names entry 3" in output and "entries 3..3 were cut off the tail and the head row moved back" in output
    code, report = audit(registry, model, "--anchor-only")
    assert code == 1 and (report["problem"]["kind"], report["problem"]["seq"]) == ("cut_tail", 3), report

    with pytest.raises(LedgerTampered, match=rf"the champion ledger of model '{model}' disagrees with its anchor "
                                             rf"\(cut_tail\).*run `ml-platform audit verify {model}`") as caught:
        load_champion(registry, model, LIVE, policy="off")
    assert (caught.value.seq, caught.value.problem) == (3, "cut_tail")
    with pytest.raises(LedgerTampered, match="cut_tail"):
        champion_of_record(registry, model)

    finding, = service.reconcile(model).findings
    assert (finding.problem, finding.repaired) == ("chain_broken", False) and "(cut_tail)" in finding.detail
    assert registry.model_tags(model)[LEDGER_HEAD_TAG] == anchor  # the evidence is left alone


def test_a_head_moved_back_is_named_by_audit_verify_and_refused_at_serving(registry: ModelRegistry,
                                                                           service: ChampionService,
                                                                           model: str) -> None:
    move_head_back(service, model)
    code, output = audit_text(registry, model)
    assert code == 1, output
    assert f"ledger of model {model!r} is TAMPERED at entry 2 (moved_back): the head names entry 2 but the chain " \
           "goes on to entry 3" in output
    code, report = audit(registry, model, "--anchor-only")
    assert code == 1 and (report["problem"]["kind"], report["problem"]["seq"]) == ("moved_back", 2), report
    with pytest.raises(LedgerTampered, match=rf"the head row was moved back.*run `ml-platform audit verify {model}`"):
        load_champion(registry, model, LIVE, policy="off")


def test_a_head_rewritten_under_its_anchor_is_named(registry: ModelRegistry, service: ChampionService,
                                                    model: str) -> None:
    mlflow_client(registry).set_registered_model_tag(model, LEDGER_HEAD_TAG, "3:sha256:" + "e" * 64)
    code, report = audit(registry, model)
    assert code == 1 and report["problem"]["kind"] == "anchor_mismatch", report
    with pytest.raises(LedgerTampered, match="anchor_mismatch"):
        load_champion(registry, model, LIVE, policy="off")
    mlflow_client(registry).set_registered_model_tag(model, LEDGER_HEAD_TAG, "three")
    code, report = audit(registry, model, "--anchor-only")
    assert code == 1 and report["problem"]["kind"] == "anchor_unreadable", report


@pytest.mark.parametrize("left", ["behind", "missing"])
def test_an_anchor_an_unfinished_move_left_behind_is_served_and_reconciled(
        registry: ModelRegistry, service: ChampionService, model: str, left: str) -> None:
    entries = service.history(model)
    client = mlflow_client(registry)
    if left == "behind":  # what a crash between the ledger commit and the anchor write leaves
        client.set_registered_model_tag(model, LEDGER_HEAD_TAG, format_anchor(entries[1]))
    else:  # a first move that crashed there, or a ledger written before anchors
        client.delete_registered_model_tag(model, LEDGER_HEAD_TAG)
    code, output = audit_text(registry, model)
    assert code == 0 and "chain verifies" in output and "`ml-platform registry reconcile`" in output, output
    code, report = audit(registry, model, "--anchor-only")
    assert code == 0 and report["anchor_state"] == left, report
    assert load_champion(registry, model, LIVE, policy="off").version == "3"

    checked = service.reconcile(model, check_only=True)
    assert [(f.problem, f.repaired) for f in checked.findings] == [(f"anchor_{left}", False)]
    assert checked.findings[0].action == f"would set the anchor to {format_anchor(entries[2])}"
    repaired = service.reconcile(model)
    assert [(f.problem, f.repaired) for f in repaired.findings] == [(f"anchor_{left}", True)]
    assert registry.model_tags(model)[LEDGER_HEAD_TAG] == format_anchor(entries[2])
    assert service.verify(model).anchor_state == "matches"
    assert service.reconcile(model, check_only=True).findings == ()
