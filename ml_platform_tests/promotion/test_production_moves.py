"""In production only the promotion and rollback jobs (and their CLI and Python calls) move a champion.

Under ``ML_PLATFORM_DEPLOYMENT=production`` the ledger refuses a promotion entry without the numeric
report and the written rationale that only the promotion job's gates make: the champion shortcut of
tests and demos, a direct ``ChampionService.promote`` and a raw ``ChampionLedger.move`` all move
nothing, while the promote_model job, the rollback_model job, ``ChampionService.rollback`` and
``ml-platform rollback`` still work.
"""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from ml_platform.champions.ledger import ChampionLedger
from ml_platform.champions.location import open_ledger
from ml_platform.champions.service import ChampionService
from ml_platform.cli import main
from ml_platform.errors import LedgerMoveRefused
from ml_platform.promotion.rollback_job import OP_NAME, build_rollback_job
from ml_platform.testing import champion_shortcut
from ml_platform_tests.promotion.conftest import MODEL, Project

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHA = "sha256:" + "a" * 64


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_PLATFORM_DEPLOYMENT", "production")


def _nothing_moved(project: Project) -> None:
    assert project.head() is None
    assert project.registry.champion_alias(MODEL) is None


def test_no_shortcut_past_the_gates_moves_a_champion_in_production(project: Project, production: None) -> None:
    v1 = project.register()
    with pytest.raises(LedgerMoveRefused, match=r"in production .* needs its numeric report and written rationale"):
        champion_shortcut(project.registry, MODEL, v1)
    _nothing_moved(project)
    with ChampionService.open(project.registry) as service, pytest.raises(LedgerMoveRefused, match="promotion job"):
        service.promote(MODEL, v1, actor="someone", approver="bob", reason="no gates ran")
    _nothing_moved(project)
    with open_ledger(project.registry) as ledger:
        assert ledger.production
        with pytest.raises(LedgerMoveRefused, match="report_ref, report_sha256, rationale_ref, rationale_sha256"):
            ledger.move(MODEL, kind="promotion", to_version=v1, actor="someone", reason="raw write")
        with pytest.raises(LedgerMoveRefused, match="rationale_ref, rationale_sha256"):  # half the evidence
            ledger.move(MODEL, kind="promotion", to_version=v1, actor="someone", reason="raw write",
                        report_ref="runs:/r/report.json", report_sha256=SHA)
    _nothing_moved(project)


def test_the_promotion_and_rollback_jobs_and_the_cli_still_move_it_in_production(
        project: Project, production: None, monkeypatch: pytest.MonkeyPatch) -> None:
    v1, v2 = project.register((0.01, 0.0)), project.register()
    assert project.run(v1).success
    assert project.run(v2, tail="Second promotion of the tuned coefficients.").success
    assert project.head().to_version == v2 and project.head().report_ref and project.head().rationale_ref

    rollback = build_rollback_job(project.graph, model_input="model_inputs", model_name=MODEL)
    defs = dg.Definitions.merge(project.defs, dg.Definitions(jobs=[rollback]))
    result = defs.resolve_job_def("rollback_model").execute_in_process(
        run_config={"ops": {OP_NAME: {"config": {"reason": "live IC collapsed"}}}}, instance=project.instance,
        raise_on_error=False)
    assert result.success and project.head().to_version == v1

    with ChampionService.open(project.registry) as service:  # the rollback's Python call
        entry = service.rollback(MODEL, to=v2, reason="back to the tuned one", actor="carol")
    assert (entry.kind, entry.to_version) == ("rollback", v2)

    for name, value in (("ML_PLATFORM_STORAGE", project.settings.storage),
                        ("ML_PLATFORM_MLFLOW_TRACKING_URI", project.settings.tracking_uri),
                        ("ML_PLATFORM_MLFLOW_ARTIFACTS", project.settings.artifact_location)):
        monkeypatch.setenv(name, value)  # what a production deployment sets
    cli = CliRunner().invoke(main, ["rollback", MODEL, "--reason", "the desk asked", "--actor", "dave"])
    assert cli.exit_code == 0, cli.output
    assert project.head().to_version == v1 and project.registry.champion_alias(MODEL) == v1


def test_a_local_deployment_keeps_the_labelled_shortcut(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_PLATFORM_DEPLOYMENT", "production")
    v1 = project.register()
    entry = champion_shortcut(project.registry, MODEL, v1, production=False)  # e.g. a reproduction's own registry
    assert entry is not None and entry.actor.startswith("champion shortcut") and "without the promotion gates" in (
        entry.reason)
    monkeypatch.setenv("ML_PLATFORM_DEPLOYMENT", "local")
    assert champion_shortcut(project.registry, MODEL, v1) is None  # already champion: nothing new recorded
    assert not ChampionLedger(project.registry.tracking_uri).production
    assert ChampionLedger(project.registry.tracking_uri, production=True).production
