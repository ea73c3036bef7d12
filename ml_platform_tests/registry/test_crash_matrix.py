"""The crash matrix of registration: SIGKILL at every named point, then any MLflow client sees nothing or all.

A driver process (:mod:`ml_platform_tests.registry.crash_driver`) forks one child per trial, which
registers a small ridge model and kills itself with ``SIGKILL`` at the trial's point: every point the
registry names, the moment MLflow has flushed (not committed) the INSERTs of the registered model
and of the version with its tags, and during the upload of the K-th artefact file (after it, or
half-way through it). The schedule is drawn from a seeded generator and printed; set
``ML_PLATFORM_CRASH_SEED`` to replay or vary it. After each kill:

* a plain ``MlflowClient`` lists no new version from the killed registration unless the kill came
  after the version was created, and every version it lists is complete: all the platform's tags,
  ``ready``, loadable with ``mlflow.pyfunc.load_model("models:/NAME/N")`` and scoring exactly like the
  model, its contract verified by the registry;
* ``ml-platform registry repair --check`` exits 1 (0 only after the run was ended), ``registry repair``
  exits 0, and a second ``--check`` reports consistent: no RUNNING run and no empty registered model left.

The matrix runs on SQLite (24 trials) and on PostgreSQL (12: every named point, fewer random ones).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
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
from ml_platform_tests.registry.conftest import feature_frame, make_contract, make_model

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash driver forks")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SEED = 8_0405
TRIALS = 24
#: Points after which the killed registration's version exists (complete).
AFTER_THE_VERSION = {"register.version_created", "register.run_finished"}
VERSION_TAG_KEYS = set(version_tags(make_contract("x", make_model()), "sha256:" + "0" * 64)) | {"ml_platform.status"}


def schedule(seed: int, trials: int = TRIALS) -> list[dict[str, Any]]:
    """Every named point at least once, then random ones, each with a model name and prior registrations.

    The kills inside the first registration of a model (the INSERT of the registered model flushed, and
    the model created but no version yet) always hit a new model with no earlier registration.
    """
    rng = random.Random(seed)
    fixed = [*REGISTRATION_POINTS, "mlflow.model_flushed", "mlflow.version_flushed", "artifacts.copy#1",
             "artifacts.half#3"]
    rng.shuffle(fixed)
    randoms = [rng.choice([*REGISTRATION_POINTS, "mlflow.version_flushed", f"artifacts.copy#{rng.randint(1, 9)}",
                           f"artifacts.half#{rng.randint(1, 9)}"]) for _ in range(trials - len(fixed))]
    trials = []
    first_only = {"mlflow.model_flushed", "register.model_ready"}
    for index, point in enumerate([*fixed, *randoms]):
        forced = point in first_only and index < len(fixed)
        fresh = forced or rng.random() < 0.3  # a first registration of a new model
        name = f"crash_new_{index}" if fresh else rng.choice(["crash_a", "crash_b"])
        before = 0 if forced else rng.randint(0, 1)
        trials.append({"name": name, "point": point, "before": before, "shift": round(rng.uniform(-0.2, 0.2), 6)})
    return trials


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], ModelRegistry]]:
    if request.param == "postgresql":
        uri = request.getfixturevalue("postgres_db").sqlalchemy_url
    else:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = str(tmp_path / "artifacts")
    registry = ModelRegistry(uri, artifact_location=artifacts)
    registry.list_models()  # create the schema once, before the first fork
    # a killed writer leaves its staging directory behind: in the test's own tmp_path, never in /tmp
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TMPDIR": str(tmp_path / "tmp")}
    process = subprocess.Popen([sys.executable, "-m", "ml_platform_tests.registry.crash_driver", uri, artifacts],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        yield process, registry
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=60)


def _run_trial(process: subprocess.Popen[str], trial: dict[str, Any]) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(trial) + "\n")
    process.stdin.flush()
    line = process.stdout.readline()
    assert line, "the crash driver died"
    return json.loads(line)


def _cli(registry: ModelRegistry, *args: str) -> Any:
    return CliRunner().invoke(main, ["registry", "repair", *args, "--tracking-uri", registry.tracking_uri])


@pytest.fixture
def mlflow_uris(driver: tuple[subprocess.Popen[str], ModelRegistry]) -> Iterator[None]:
    """``mlflow.pyfunc.load_model("models:/...")`` resolves through the global URIs: point them at the store."""
    _, registry = driver
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


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


def test_a_registration_killed_at_any_point_leaves_nothing_or_a_complete_version(
    driver: tuple[subprocess.Popen[str], ModelRegistry], mlflow_uris: None
) -> None:
    process, registry = driver
    seed = int(os.environ.get("ML_PLATFORM_CRASH_SEED", DEFAULT_SEED))
    sqlite = registry.tracking_uri.startswith("sqlite")
    trials = schedule(seed, TRIALS if sqlite else TRIALS // 2)  # PostgreSQL: every point, fewer random ones
    print(f"crash schedule on {registry.store} (seed {seed}, ML_PLATFORM_CRASH_SEED to change):")
    for index, trial in enumerate(trials):
        print(f"  {index:2d} {trial}")
    client = MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.tracking_uri)
    points_hit = set()
    for index, trial in enumerate(trials):
        name = trial["name"]
        before = _versions(client, name) if name in {m.name for m in client.search_registered_models()} else {}
        outcome = _run_trial(process, trial)
        context = f"trial {index} {trial} -> {outcome}"
        assert outcome["killed"], f"the registration was not killed: {context}"
        points_hit.add(trial["point"].partition("#")[0])

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
        if trial["point"] == "register.model_ready" and trial["before"] == 0 and name.startswith("crash_new_"):
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
    assert points_hit >= {*REGISTRATION_POINTS, "mlflow.model_flushed", "mlflow.version_flushed", "artifacts.copy",
                          "artifacts.half"}
    # Everything still registered is complete and serves, after all the kills and repairs.
    for model in client.search_registered_models():
        for version in _versions(client, model.name).values():
            _assert_complete(registry, client, model.name, version)
