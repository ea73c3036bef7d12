"""A project scaffolded by ``ml-platform init`` is reproduced bit-exactly: nothing in reproduction is the example's.

The project lives in a git repository of its own with its own ``uv.lock`` (ml_platform from this
checkout, every other package at this repository's locked version). Production runs in the project's
own virtual environment: features, training set, model, champion and live signals. The project then
moves on (an ancestor feature's window changed, committed), and the registered version is reproduced
from the newer checkout by a daemon backfill of its recorded partitions in the recorded environment.

The reproduction runs **beside production**: a real webserver and daemon stand in for production's Dagster,
serving the project's own code location and a reproductions workspace file; the old commit is added there as
a second code location with its keys under ``repro/<commit>``, its backfill is production's, and the location
is taken out afterwards. (The example project's reproductions cover the isolated deployment.)
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ml_platform import ModelRegistry, PinnedStore, Settings
from ml_platform.reproduce.beside import BesideProduction, ReproductionWorkspace
from ml_platform.reproduce.dagster_services import (
    CodeLocation,
    DagsterServices,
    IsolatedDeployment,
    location_entry,
)
from ml_platform.reproduce.service import REPRODUCES_TAG, reproduce_version
from ml_platform.reproduce.signals import served_signals
from ml_platform.workspace import workspace_target
from ml_platform_tests.lifecycles.scaffolded import GIT, PACKAGE, ScaffoldedProject, project_env, run

pytestmark = [pytest.mark.slow, pytest.mark.daemon]

DRIVER = Path(__file__).with_name("scaffold_production.py")
MODEL = f"{PACKAGE}_ridge"
TRAIN, LIVE = "2023-01-02..2023-06-30", "2023-07-03..2023-07-14"
_GIT, _run = GIT, run


@pytest.mark.timeout(1800)
def test_a_scaffolded_project_is_reproduced_bit_exactly_after_its_feature_code_moved_on(
        scaffolded_project_locked: ScaffoldedProject, tmp_path: Path) -> None:
    # the session's scaffolded project (ml-platform init, its own lock, its venv synced, committed as A): this
    # test is the only one that moves it on
    project = scaffolded_project_locked.root
    assert scaffolded_project_locked.init_exit_code == 0, scaffolded_project_locked.init_output
    env = project_env()
    commit = _run([*_GIT, "rev-parse", "HEAD"], project).strip()
    assert commit == scaffolded_project_locked.commit and _run([*_GIT, "status", "--porcelain"], project) == ""

    home = tmp_path / "production"
    version = _run([str(project / ".venv" / "bin" / "python"), str(DRIVER), PACKAGE, str(home), TRAIN, LIVE],
                   project, env).strip().splitlines()[-1]
    settings = Settings.local(home)
    registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
    store = PinnedStore(settings.storage)
    served = served_signals(store, MODEL, version)
    assert len(served) == 10, served  # the live window's business days

    # B: an ancestor feature's window changes (momentum and everything below it hash differently)
    features = project / PACKAGE / "features.py"
    source = features.read_text()
    assert "MOMENTUM_BARS = 20" in source
    features.write_text(source.replace("MOMENTUM_BARS = 20", "MOMENTUM_BARS = 30"))
    _run([*_GIT, "commit", "--quiet", "--all", "-m", "B: momentum over 30 bars"], project)
    heads = {(m.asset_key, m.partition): m.data_hash for m in store.manifests()}

    # production's Dagster: its own code location (the project, in its own venv) and the reproductions file
    module, _, attribute = workspace_target(project / "workspace.yaml").partition(":")
    own = CodeLocation(PACKAGE, module, attribute, project, project / ".venv" / "bin" / "python")
    reproductions = tmp_path / "prod-dagster" / "reproductions.yaml"
    reproductions.parent.mkdir()
    reproductions.write_text("load_from: []\n")
    deployment = IsolatedDeployment(tmp_path / "prod-dagster", own, env={"ML_PLATFORM_HOME": str(home)})
    with DagsterServices(deployment, also_load=(reproductions,), workspace_refresh=20.0) as production:
        outcome = reproduce_version(MODEL, version, workdir=tmp_path / "work", registry=registry, store=store,
                                    repo=project,
                                    beside=BesideProduction(production.url, reproductions, daemon_refresh_seconds=20))
        assert ReproductionWorkspace(reproductions).names() == []  # the old commit's location taken out again
        assert location_entry(production.graphql, PACKAGE)["loadStatus"] == "LOADED"
    cert = outcome.certificate
    assert cert.bit_exact, cert.summary()
    counts = cert.counts()
    assert counts["model"] == (1, 1) and counts["training_set"] == (1, 1) and counts["environment"] == (1, 1)
    assert counts["partition"][0] == counts["partition"][1] > 500, counts
    assert counts["signals"] == (10, 10), counts
    assert outcome.backfill_id is not None and cert.facts["passes"] == 1
    namespace = ("repro", commit[:12])
    assert cert.facts["key_prefix"] == "/".join(namespace)
    assert cert.facts["code_location"] == f"repro_{commit[:12]}"
    assert str(cert.facts["deployment"]).startswith("beside production's code location")
    assert {(m.asset_key, m.partition): m.data_hash for m in store.manifests()} == heads  # production untouched
    # production's instance holds the backfill, its runs from the old commit's location, and namespaced keys only
    with dg.DagsterInstance.from_config(str(deployment.dagster_home)) as instance:
        backfill = instance.get_backfill(outcome.backfill_id)
        assert backfill is not None and backfill.tags[REPRODUCES_TAG] == f"{MODEL}:{version}"
        runs = instance.get_runs(dg.RunsFilter(tags={REPRODUCES_TAG: f"{MODEL}:{version}"}))
        assert runs and {r.remote_job_origin.location_name for r in runs} == {f"repro_{commit[:12]}"}
        materialized = instance.get_asset_keys()
        assert materialized and all(tuple(k.path[:2]) == namespace for k in materialized), materialized
