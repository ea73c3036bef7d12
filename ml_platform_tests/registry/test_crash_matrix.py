"""The crash matrix of registration: SIGKILL at every named point, then any MLflow client sees nothing or all.

A driver process (:mod:`ml_platform_tests.crash.driver`) forks one child per trial, which registers a
small ridge model (:mod:`ml_platform_tests.registry.crash_workload`) and dies with ``SIGKILL`` at the
trial's point: every point the registry names, the moment MLflow has flushed (not committed) the
INSERTs of the registered model and of the version with its tags, and during the upload of the K-th
artefact file (after it, or half-way through it). After each kill:

* a plain ``MlflowClient`` lists no new version from the killed registration unless the kill came
  after the version was created, and every version it lists is complete: all the platform's tags,
  ``ready``, loadable with ``mlflow.pyfunc.load_model("models:/NAME/N")`` and scoring exactly like the
  model, its contract verified by the registry;
* ``ml-platform registry repair --check`` exits 1 (0 only after the run was ended), ``registry repair``
  exits 0, and a second ``--check`` reports consistent: no RUNNING run and no empty registered model left.

``make test`` kills at every point once, on SQLite and on PostgreSQL (:data:`SCHEDULE`); ``make stress``
adds random trials drawn from a seed that is printed (``ML_PLATFORM_CRASH_SEED`` replays or varies it).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient

from ml_platform.cli import main
from ml_platform.crashpoints import REGISTRATION_POINTS
from ml_platform.registry.registration import version_tags
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.crash.driver import CrashDriver, crash_seed, parse_point
from ml_platform_tests.registry.conftest import feature_frame, make_contract, make_model
from ml_platform_tests.registry.crash_workload import HOOKED_POINTS

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash driver forks")

DEFAULT_SEED = 8_0405
#: ``make stress``'s trials on each backend in all: :data:`SCHEDULE`'s, then random ones.
TRIALS = {"sqlite": 24, "postgresql": 12}
#: Points after which the killed registration's version exists (complete).
AFTER_THE_VERSION = {"register.version_created", "register.run_finished"}
VERSION_TAG_KEYS = set(version_tags(make_contract("x", make_model()), "sha256:" + "0" * 64)) | {"ml_platform.status"}
NEW = "new"  # a first registration of a model no trial used before
#: ``make test``'s trials on each backend: every point once, as ``(point, model, registrations before)``.
#: The kills inside the first registration of a model (the INSERT of the registered model flushed, the
#: model created but no version yet) hit a new model with no earlier registration.
SCHEDULE = (
    ("register.run_created", "crash_a", 1),
    ("register.params_logged", "crash_b", 0),
    ("register.artifacts_uploaded", NEW, 0),
    ("register.model_ready", NEW, 0),
    ("register.version_created", "crash_a", 0),
    ("register.run_finished", "crash_b", 1),
    ("mlflow.model_flushed", NEW, 0),
    ("mlflow.version_flushed", "crash_a", 1),
    ("artifacts.copy#1", "crash_b", 0),
    ("artifacts.half#3", NEW, 1),
)
EVERY_POINT = {*REGISTRATION_POINTS, *HOOKED_POINTS}


def fixed_trials() -> list[dict[str, Any]]:
    return [{"name": f"crash_new_{index}" if name == NEW else name, "point": point, "before": before,
             "shift": round(0.01 * index - 0.05, 6)} for index, (point, name, before) in enumerate(SCHEDULE)]


def random_trials(seed: int, count: int) -> list[dict[str, Any]]:
    """``count`` random points (not the first-registration-only ones), models and registrations before."""
    rng = random.Random(seed)
    points = [rng.choice([*REGISTRATION_POINTS, "mlflow.version_flushed", f"artifacts.copy#{rng.randint(1, 9)}",
                          f"artifacts.half#{rng.randint(1, 9)}"]) for _ in range(count)]
    trials = []
    for index, point in enumerate(points):
        name = f"crash_random_{index}" if rng.random() < 0.3 else rng.choice(["crash_a", "crash_b"])
        trials.append({"name": name, "point": point, "before": rng.randint(0, 1),
                       "shift": round(rng.uniform(-0.2, 0.2), 6)})
    return trials


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[CrashDriver, ModelRegistry]]:
    if request.param == "postgresql":
        uri = request.getfixturevalue("postgres_db").sqlalchemy_url
    else:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = str(tmp_path / "artifacts")
    registry = ModelRegistry(uri, artifact_location=artifacts)
    registry.list_models()  # create the schema once, before the first fork
    # a killed writer leaves its staging directory behind: in the test's own tmp_path, never in /tmp
    with CrashDriver("ml_platform_tests.registry.crash_workload", uri, artifacts, tmpdir=tmp_path / "tmp",
                     log=tmp_path / "children.log") as opened:
        yield opened, registry


def _cli(registry: ModelRegistry, *args: str) -> Any:
    return CliRunner().invoke(main, ["registry", "repair", *args, "--tracking-uri", registry.tracking_uri])


@pytest.fixture
def mlflow_uris(driver: tuple[CrashDriver, ModelRegistry], monkeypatch: pytest.MonkeyPatch) -> None:
    """``mlflow.pyfunc.load_model("models:/...")`` resolves through MLflow's URIs: point them at the store.

    Through the environment, which ``monkeypatch`` restores: ``mlflow.set_tracking_uri`` would set it too
    and leave it set (a restore with ``set_tracking_uri`` exports the default URI to every later test).
    """
    _, registry = driver
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", registry.tracking_uri)
    assert mlflow.get_registry_uri() == registry.tracking_uri, "a URI set in this process overrides the environment"


def _versions(client: MlflowClient, name: str) -> dict[str, Any]:
    return {str(v.version): v for v in client.search_model_versions(f"name='{name}'")}


def _assert_complete(registry: ModelRegistry, client: MlflowClient, name: str, version: Any) -> None:
    number = str(version.version)
    missing = VERSION_TAG_KEYS - set(version.tags)
    assert not missing, f"model {name} version {number} lacks {missing}"
    assert version.tags["ml_platform.status"] == "ready"
    contract = registry.load_contract(name, number)
    model = registry.load_model(name, number)
    assert contract.model_version == number and contract.model_sha256 == model.sha256
    served = mlflow.pyfunc.load_model(f"models:/{name}/{number}")
    scores = served.predict(feature_frame().to_pandas())["score"].tolist()
    assert scores == model.predict(feature_frame())["score"].to_list()


def kill_registrations(crash: CrashDriver, registry: ModelRegistry, trials: list[dict[str, Any]]) -> set[str]:
    """Kill each trial's registration and check what every client sees, and repair; returns the points hit."""
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    points_hit = set()
    for index, trial in enumerate(trials):
        name = trial["name"]
        existed = name in {m.name for m in client.search_registered_models()}
        before = _versions(client, name) if existed else {}
        outcome = crash.trial(**trial)
        context = f"trial {index} {trial} -> {outcome}"
        assert outcome.killed, f"the registration was not killed: {context}"
        points_hit.add(parse_point(trial["point"])[0])

        # Any MLflow client, before any repair: nothing new from the killed registration, or a complete version.
        names = {m.name for m in client.search_registered_models()}
        after = _versions(client, name) if name in names else {}
        new = sorted(set(after) - set(before), key=int)
        expected = trial["before"] + (1 if trial["point"] in AFTER_THE_VERSION else 0)
        assert len(new) == expected, f"{len(new)} new versions, expected {expected}: {context}"
        for number in new:
            _assert_complete(registry, client, name, after[number])

        check = _cli(registry, "--check")
        left = trial["point"] != "register.run_finished"  # everywhere else, at least the run is left RUNNING
        assert check.exit_code == (1 if left else 0), f"{check.output} {context}"
        if trial["point"] == "register.model_ready" and trial["before"] == 0 and not existed:
            assert "a registered model with no versions" in check.output, context
        repaired = _cli(registry)
        assert repaired.exit_code == 0, f"{repaired.output} {context}"
        again = _cli(registry, "--check")
        assert again.exit_code == 0 and "consistent" in again.output, f"{again.output} {context}"

        running = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                     filter_string="attributes.status = 'RUNNING'")
        assert not running, context
        for model in client.search_registered_models():
            versions = _versions(client, model.name)
            assert versions, f"empty registered model {model.name} left: {context}"
            for version in versions.values():
                assert version.tags.get("ml_platform.status") == "ready", context
    # Everything still registered is complete and serves, after all the kills and repairs.
    for model in client.search_registered_models():
        for version in _versions(client, model.name).values():
            _assert_complete(registry, client, model.name, version)
    return points_hit


def test_a_registration_killed_at_any_point_leaves_nothing_or_a_complete_version(
    driver: tuple[CrashDriver, ModelRegistry], mlflow_uris: None
) -> None:
    crash, registry = driver
    trials = fixed_trials()
    print(f"crash schedule on {registry.store}:")
    for index, trial in enumerate(trials):
        print(f"  {index:2d} {trial}")
    assert kill_registrations(crash, registry, trials) == EVERY_POINT


def test_the_schedule_kills_at_every_catalogued_and_hooked_point() -> None:
    scheduled = [parse_point(point)[0] for point, _, _ in SCHEDULE]
    assert sorted(scheduled) == sorted(EVERY_POINT)
    first = {point: before == 0 and name == NEW for point, name, before in SCHEDULE}
    assert first["mlflow.model_flushed"] and first["register.model_ready"]  # only a first registration passes it


@pytest.mark.stress
def test_registrations_killed_at_random_points_leave_nothing_or_a_complete_version(
    driver: tuple[CrashDriver, ModelRegistry], mlflow_uris: None
) -> None:
    crash, registry = driver
    seed = crash_seed(DEFAULT_SEED)
    backend = "sqlite" if registry.tracking_uri.startswith("sqlite") else "postgresql"
    trials = random_trials(seed, TRIALS[backend] - len(SCHEDULE))
    print(f"random crash schedule on {registry.store} (seed {seed}, ML_PLATFORM_CRASH_SEED to change):")
    for index, trial in enumerate(trials):
        print(f"  {index:2d} {trial}")
    kill_registrations(crash, registry, trials)
