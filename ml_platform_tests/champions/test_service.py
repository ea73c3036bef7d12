"""ChampionService: promotion and rollback through the ledger, the alias mirrored after, reconcile.

Runs on the session's SQLite registry and on a PostgreSQL one (a module-scoped database on the
session server; skipped without PostgreSQL, failed under ``CI=true``).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from ml_platform.champions import ChampionLedger, catalog
from ml_platform.champions.catalog import champion_of_record
from ml_platform.champions.location import ledger_url_of, open_ledger
from ml_platform.champions.service import ChampionService, previous_champion
from ml_platform.champions.serving import load_champion
from ml_platform.cli import main
from ml_platform.errors import ConfigurationError, LedgerMoveRefused, RollbackRefused
from ml_platform.registry import LiveFeatureStream
from ml_platform.registry.entities import RegisteredVersion
from ml_platform.registry.store import ModelRegistry
from ml_platform.testing import champion_shortcut
from ml_platform.testing.postgres import PostgresServer, unique_database_name
from ml_platform_tests.registry.conftest import (
    CODE_SNAPSHOT,
    FEATURES,
    GRAPH_HASH,
    OTHER_GRAPH_HASH,
    feature_schema,
    make_contract,
    make_model,
    mlflow_client,
)

Register = Callable[..., RegisteredVersion]


def _registrar(registry: ModelRegistry) -> Register:
    def _register(name: str, shift: float = 0.0) -> RegisteredVersion:
        model = make_model(shift)
        return registry.register(model_name=name, model=model, contract=make_contract(name, model),
                                 params={"alpha": 1.0, "features": list(FEATURES)}, metrics={"sharpe": 1.0},
                                 code_snapshot=CODE_SNAPSHOT)
    return _register


@pytest.fixture(scope="module")
def pg_registry(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRegistry]:
    database = postgres.create_database(unique_database_name("champions"))
    try:
        yield ModelRegistry(database.sqlalchemy_url, artifact_location=str(tmp_path_factory.mktemp("pg_artifacts")))
    finally:
        postgres.drop_database(database.name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def env(request: pytest.FixtureRequest, registry: ModelRegistry) -> tuple[ModelRegistry, Register]:
    chosen = registry if request.param == "sqlite" else request.getfixturevalue("pg_registry")
    return chosen, _registrar(chosen)


@pytest.fixture
def service(env: tuple[ModelRegistry, Register]) -> Iterator[ChampionService]:
    registry, _ = env
    opened = ChampionService.open(registry, alias_timeout_seconds=2.0)
    try:
        yield opened
    finally:
        opened.close()


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _three(env: tuple[ModelRegistry, Register], prefix: str) -> str:
    _, register = env
    name = _name(prefix)
    for shift in (0.0, 0.1, 0.2):
        register(name, shift)
    return name


def _promote(service: ChampionService, name: str, *versions: str) -> None:
    for version in versions:
        service.promote(name, version, actor="alice", approver="bob", reason=f"promote {version}")


def _cli(registry: ModelRegistry, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--tracking-uri", registry.tracking_uri])
    return result.exit_code, result.output


# -- the stack of earlier champions -----------------------------------------------------------------------


class _E:
    def __init__(self, kind: str, to_version: str) -> None:
        self.kind, self.to_version = kind, to_version


def test_previous_champion_replays_the_ledger_as_a_stack() -> None:
    p, r = "promotion", "rollback"
    assert previous_champion([]) is None
    assert previous_champion([_E(p, "1")]) is None  # type: ignore[list-item]
    assert previous_champion([_E(p, "1"), _E(p, "2"), _E(p, "3")]) == "2"  # type: ignore[list-item]
    assert previous_champion([_E(p, "1"), _E(p, "2"), _E(p, "3"), _E(r, "2")]) == "1"  # type: ignore[list-item]
    assert previous_champion([_E(p, "1"), _E(p, "2"), _E(r, "1")]) is None  # type: ignore[list-item]
    assert previous_champion([_E(p, "1"), _E(p, "2"), _E(p, "1")]) == "2"  # type: ignore[list-item]


# -- promote and roll back ------------------------------------------------------------------------------


def test_promote_records_the_ledger_and_mirrors_the_alias(env: Any, service: ChampionService) -> None:
    registry, _ = env
    name = _three(env, "promote")
    entry = service.promote(name, "1", actor="alice", approver="bob", reason="first")
    assert (entry.seq, entry.kind, entry.from_version, entry.to_version) == (1, "promotion", None, "1")
    assert service.champion(name) == champion_of_record(registry, name) == registry.champion_alias(name) == "1"
    head = service.ledger.head(name)
    second = service.promote(name, "2", actor="alice", approver="bob", reason="second", expected_head_seq=head.seq)
    assert (second.from_version, second.to_version) == ("1", "2")
    with pytest.raises(LedgerMoveRefused):
        service.promote(name, "2", actor="alice", approver="bob", reason="again")
    assert [e.to_version for e in service.history(name)] == ["1", "2"]
    assert service.verify(name).ok


def test_rollback_to_the_previous_and_to_a_named_champion(env: Any, service: ChampionService) -> None:
    registry, _ = env
    name = _three(env, "rollback")
    _promote(service, name, "1", "2", "3")
    back = service.rollback(name, reason="v3 misbehaves", actor="carol")
    assert (back.kind, back.from_version, back.to_version) == ("rollback", "3", "2")
    assert champion_of_record(registry, name) == registry.champion_alias(name) == "2"
    assert service.rollback(name, reason="v2 too", actor="carol").to_version == "1"
    with pytest.raises(RollbackRefused, match="no earlier champion"):
        service.rollback(name, reason="nothing left", actor="carol")
    named = service.rollback(name, to="3", reason="v3 was fine after all", actor="carol")
    assert (named.from_version, named.to_version) == ("1", "3")
    assert registry.champion_alias(name) == "3"
    live = LiveFeatureStream(GRAPH_HASH, feature_schema())
    assert load_champion(registry, name, live, policy="off").version == "3"
    assert service.verify(name).ok and len(service.history(name)) == 6


def test_rollback_refuses_never_champion_deleted_and_mismatched_targets(env: Any, service: ChampionService) -> None:
    registry, register = env
    name = _three(env, "refuse")
    register(name, 0.3)  # version 4
    _promote(service, name, "1", "2", "3")
    before = service.history(name)

    with pytest.raises(RollbackRefused, match="version 4 .* was never its champion"):
        service.rollback(name, to="4", reason="r", actor="carol")
    with pytest.raises(RollbackRefused, match=f"needs the feature graph {GRAPH_HASH}.*live feature graph is "
                                              f"{OTHER_GRAPH_HASH}"):
        service.rollback(name, reason="r", actor="carol", live_feature_graph_hash=OTHER_GRAPH_HASH)
    with pytest.raises(RollbackRefused, match="already the champion"):
        service.rollback(name, to="3", reason="r", actor="carol")
    mlflow_client(registry).delete_model_version(name, "2")
    with pytest.raises(RollbackRefused, match="version 2 .* was deleted"):
        service.rollback(name, reason="r", actor="carol")
    with pytest.raises(RollbackRefused, match="version 2 .* was deleted"):
        service.rollback(name, to="2", reason="r", actor="carol")

    assert service.history(name) == before
    assert champion_of_record(registry, name) == registry.champion_alias(name) == "3"
    # the graph check passes for the right graph, and the deleted version is skipped only by naming another one
    assert service.rollback(name, to="1", reason="r", actor="carol", live_feature_graph_hash=GRAPH_HASH).to_version == "1"


def test_rollback_succeeds_while_the_mlflow_client_is_down_and_reconcile_repairs_the_alias(
    env: Any, service: ChampionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, _ = env
    name = _three(env, "down")
    _promote(service, name, "1", "2")
    client = registry.client
    calls: list[str] = []

    def unreachable(*args: object, **kwargs: object) -> None:
        calls.append("called")
        raise ConnectionError("tracking server unreachable")

    for method in ("set_registered_model_alias", "get_model_version", "get_registered_model",
                   "search_model_versions", "download_artifacts"):
        monkeypatch.setattr(client, method, unreachable)
    entry = service.rollback(name, reason="incident 42", actor="oncall")
    assert entry.to_version == "1"
    assert len(calls) == 1 + service.alias_retries  # only the anchor write touched MLflow, and failed
    assert service.champion(name) == "1"
    monkeypatch.undo()
    assert registry.champion_alias(name) == "2"  # the mirror is stale and the anchor behind ...
    assert service.verify(name).anchor_state == "behind"  # an unfinished move, not tampering
    report = service.reconcile(name, check_only=True)
    assert [f.problem for f in report.findings] == ["alias_drift", "anchor_behind"] and not report.consistent
    report = service.reconcile(name)
    assert report.consistent and all(f.repaired for f in report.findings)
    assert registry.champion_alias(name) == "1"  # ... until reconcile
    assert service.verify(name).anchor_state == "matches"
    assert service.reconcile(name, check_only=True).findings == ()


def test_a_hanging_alias_write_is_bounded(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    registry, _ = env
    name = _three(env, "hang")
    service = ChampionService.open(registry, alias_timeout_seconds=0.2, alias_retries=1)
    release = threading.Event()
    started: list[str] = []
    finished: list[str] = []

    def hang(*args: object, **kwargs: object) -> None:  # an alias write that hangs until released (or 120 s)
        started.append(threading.current_thread().name)
        release.wait(120)
        finished.append(threading.current_thread().name)

    try:
        _promote(service, name, "1", "2")
        monkeypatch.setattr(registry.client, "set_registered_model_alias", hang)
        assert service.rollback(name, reason="r", actor="oncall").to_version == "1"
        assert finished == []  # it returned while every alias write it started was still hanging
        assert service.champion(name) == "1"
        release.set()
        service.close()  # waits for the writes in flight
        assert len(started) == len(finished) == 1 + service.alias_retries  # one write per bounded attempt
    finally:
        release.set()
        monkeypatch.undo()
        service.close()
        registry.write_champion_alias(name, "1")


# -- serving and the shortcut ------------------------------------------------------------------------------


def test_serving_resolves_the_ledger_head_not_the_alias(env: Any, service: ChampionService) -> None:
    registry, _ = env
    name = _three(env, "serve")
    champion_shortcut(registry, name, "1")
    champion_shortcut(registry, name, "1")  # idempotent: no second entry
    (entry,) = service.history(name)
    assert entry.actor.startswith("champion shortcut") and "without the promotion gates" in entry.reason
    mlflow_client(registry).set_registered_model_alias(name, "champion", "2")  # moved by hand in the UI
    live = LiveFeatureStream(GRAPH_HASH, feature_schema())
    assert load_champion(registry, name, live, policy="off").version == "1"
    assert [s.champion for s in catalog.list_models(registry) if s.name == name] == ["1"]  # the record
    assert [d.version for d in catalog.show_versions(registry, name) if d.is_champion] == ["1"]
    assert [s.champion for s in registry.list_models() if s.name == name] == ["2"]  # MLflow's mirror, as found
    report = service.reconcile(check_only=True)
    assert any(f.model == name and f.problem == "alias_drift" for f in report.findings)
    code, output = _cli(registry, "registry", "reconcile", name, "--check")
    assert code == 1 and "alias_drift" in output, output
    code, output = _cli(registry, "registry", "reconcile", name)
    assert code == 0 and "alias set to 1" in output, output
    assert registry.champion_alias(name) == "1"
    assert [s.champion for s in registry.list_models() if s.name == name] == ["1"]


def test_a_deleted_head_version_is_reported_never_moved(env: Any, service: ChampionService) -> None:
    registry, _ = env
    name = _three(env, "gone")
    _promote(service, name, "1", "2")
    mlflow_client(registry).delete_model_version(name, "2")
    report = service.reconcile(name)
    assert [f.problem for f in report.findings] == ["head_version_deleted"] and not report.consistent
    assert service.champion(name) == "2" and len(service.history(name)) == 2


def test_the_ledger_of_an_http_registry_needs_an_explicit_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ML_PLATFORM_LEDGER_URL", raising=False)
    with pytest.raises(ConfigurationError, match="ledger_url=.*ML_PLATFORM_LEDGER_URL"):
        open_ledger(ModelRegistry("http://127.0.0.1:9"))
    assert ledger_url_of(ModelRegistry("http://127.0.0.1:9", ledger_url="sqlite:///x.db")) == "sqlite:///x.db"


# -- the CLI -----------------------------------------------------------------------------------------------


def test_cli_rollback_history_and_audit_verify(env: Any, service: ChampionService) -> None:
    registry, _ = env
    name = _three(env, "cli")
    _promote(service, name, "1", "2")
    code, output = _cli(registry, "rollback", name, "--reason", "bad fills", "--actor", "dave")
    assert code == 0 and "champion 2 -> 1" in output, output
    code, output = _cli(registry, "rollback", name, "--to", "3", "--reason", "x")
    assert code == 1 and "never its champion" in output, output
    code, output = _cli(registry, "rollback", name, "--reason", "")
    assert code == 2, output
    code, output = _cli(registry, "history", name, "--json")
    assert code == 0, output
    import json

    rows = json.loads(output)
    assert [(r["seq"], r["kind"], r["to_version"], r["actor"]) for r in rows][-1] == (3, "rollback", "1", "dave")
    assert all(r["reproduction"] is None for r in rows)

    # a reproduction certificate stored beside version 1 is shown under its ledger entries
    from ml_platform.reproduce.certificate import certificate_of
    from ml_platform.reproduce.compare import ComparisonKind, compare_bytes
    from ml_platform.reproduce.publish import store_certificate

    proof = certificate_of([compare_bytes(ComparisonKind.MODEL, "model sha256", "sha256:a", "sha256:a")],
                           model=name, version="1", commit="abc")
    stored = store_certificate(registry, proof, stamp="20270101T000000Z")
    code, output = _cli(registry, "history", name)
    assert code == 0 and f"version 1 reproduced: bit-exact, certificate {stored.json_ref} {stored.sha256}" in output, output
    assert "version 2 reproduced" not in output
    code, output = _cli(registry, "history", name, "--json")
    assert json.loads(output)[-1]["reproduction"] == {"certificate": f"{stored.json_ref} {stored.sha256}", "bit_exact": True}
    code, output = _cli(registry, "audit", "verify", name)
    assert code == 0 and "chain verifies" in output, output

    url = service.ledger.url
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE ml_platform_ledger_entries SET reason = 'nothing to see' "
                              "WHERE model = :m AND seq = 2"), {"m": name})
    finally:
        engine.dispose()
    code, output = _cli(registry, "audit", "verify", name)
    assert code == 1 and "TAMPERED at entry 2 (altered)" in output, output
    report = service.reconcile(name, check_only=True)
    assert [f.problem for f in report.findings] == ["chain_broken"]


# -- a storm ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("threads", "calls"), [(4, 10), pytest.param(16, 50, marks=pytest.mark.stress)])
def test_a_storm_of_promotions_and_rollbacks_keeps_one_chain(env: Any, threads: int, calls: int) -> None:
    registry, register = env
    name = _three(env, "storm")
    register(name, 0.3)
    # correctness under contention, not latency: on a loaded 2-core machine a SQLite writer may wait longer
    # than the default 5 s for the lock (that refusal is tested on its own), so this ledger waits up to 60 s
    url = ledger_url_of(registry)
    assert url is not None
    service = ChampionService(registry, ChampionLedger(url, busy_timeout_seconds=60.0), alias_timeout_seconds=2.0)
    try:
        _storm(registry, service, name, threads, calls)
    finally:
        service.close()


def _storm(registry: ModelRegistry, service: ChampionService, name: str, threads: int, calls: int) -> None:
    _promote(service, name, "1", "2")
    done: list[tuple[str, int]] = []
    refused: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(t: int) -> None:
        rng = random.Random(t)
        for c in range(calls):
            reason = f"storm t{t} c{c}"
            try:
                kind = rng.choice(("promote", "rollback", "rollback_to"))
                if kind == "promote":
                    entry = service.promote(name, rng.choice("1234"), actor=f"t{t}", approver="bob", reason=reason)
                elif kind == "rollback":
                    entry = service.rollback(name, reason=reason, actor=f"t{t}")
                else:
                    entry = service.rollback(name, to=rng.choice("1234"), reason=reason, actor=f"t{t}")
                with lock:
                    done.append((reason, entry.seq))
            except (RollbackRefused, LedgerMoveRefused):
                with lock:
                    refused.append(reason)
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                with lock:
                    errors.append(exc)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors[:3]
    assert len(done) + len(refused) == threads * calls
    assert len(done) > threads * calls // 4, (len(done), len(refused))

    report = service.verify(name)
    entries = service.history(name)
    assert report.ok and report.entries == len(entries) == 2 + len(done)
    reasons = [e.reason for e in entries[2:]]
    assert sorted(reasons) == sorted(r for r, _ in done)  # every successful call exactly once, nothing else
    assert sorted(seq for _, seq in done) == list(range(3, 3 + len(done)))
    service.reconcile(name)
    assert registry.champion_alias(name) == entries[-1].to_version == service.champion(name)
    assert service.reconcile(name, check_only=True).consistent


def test_the_ledger_of_a_sqlite_registry_lives_in_its_file(registry: ModelRegistry, tmp_path: Path) -> None:
    assert open_ledger(registry).url == registry.tracking_uri
    assert isinstance(open_ledger(registry), ChampionLedger)
