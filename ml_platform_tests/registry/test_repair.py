"""``ModelRegistry.repair`` and ``ml-platform registry repair``: what interrupted registrations left, found and fixed.

Each test gets a registry of its own (a copy of an empty MLflow database made once per session),
because repair looks at the whole store. The half-registered versions of earlier releases are made
the way those releases made them: the version created with ``ml_platform.status=registering`` after
the artefacts, the contract (naming the version) uploaded after it, the run left RUNNING.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml_platform.cli import main
from ml_platform.errors import ConfigurationError, ModelNotFound
from ml_platform.registry import entities
from ml_platform.registry.artifacts import stage_run_artifacts
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.process import _boot_id, process_alive, process_identity
from ml_platform.registry.registration import run_tags
from ml_platform.registry.repair import repair_registry
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.registry.conftest import CODE_SNAPSHOT, make_contract, make_model, mlflow_client

NOW = dt.timedelta(0)


@pytest.fixture
def registry(migrated_mlflow: Callable[..., Path], tmp_path: Path) -> ModelRegistry:
    """A registry of its own on a copy of the session's migrated MLflow template."""
    return ModelRegistry(f"sqlite:///{migrated_mlflow()}", artifact_location=str(tmp_path / "artifacts"))


def register(registry: ModelRegistry, name: str, shift: float = 0.0) -> str:
    model = make_model(shift)
    return registry.register(model_name=name, model=model, contract=make_contract(name, model), params={},
                             metrics={}, code_snapshot=CODE_SNAPSHOT).version


def legacy_registration(registry: ModelRegistry, name: str, *, status: str = entities.VersionStatus.REGISTERING,
                        contract_uploaded: bool = True, shift: float = 0.3) -> tuple[str, str, DeployContract]:
    """What an earlier release left when killed after creating the version: ``(run_id, version, contract)``."""
    client = mlflow_client(registry)
    model = make_model(shift)
    contract = make_contract(name, model)
    run = client.create_run(registry.experiment_id("ml_platform"), tags=run_tags(name, contract))
    with tempfile.TemporaryDirectory() as staging:
        stage_run_artifacts(Path(staging), model, contract, CODE_SNAPSHOT)
        (Path(staging) / entities.CONTRACT_ARTIFACT).unlink()  # uploaded after the version, once its number was known
        client.log_artifacts(run.info.run_id, staging)
    try:
        client.create_registered_model(name)
    except MlflowException:
        pass
    version = str(client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id,
                                              tags={entities.STATUS_TAG: status}).version)
    if contract_uploaded:
        with tempfile.TemporaryDirectory() as staging:
            path = Path(staging) / "contract.json"
            path.write_bytes(contract.with_version(version).to_json().encode("ascii"))
            client.log_artifact(run.info.run_id, str(path), "contract")
    return run.info.run_id, version, contract


def cli(registry: ModelRegistry, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["registry", "repair", *args, "--tracking-uri", registry.tracking_uri])
    return result.exit_code, result.output


def run_status(registry: ModelRegistry, run_id: str) -> str:
    return mlflow_client(registry).get_run(run_id).info.status


def test_a_consistent_registry_checks_clean(registry: ModelRegistry) -> None:
    register(registry, "clean")
    register(registry, "clean", 0.1)
    expected = f"registry {registry.tracking_uri}: consistent (1 registered model(s) examined)\n"
    assert cli(registry, "--check") == (0, expected)
    assert cli(registry)[0] == 0
    report = repair_registry(registry, check_only=True)
    assert report.consistent and report.findings == () and report.models == 1


def test_a_legacy_half_registered_version_is_finished_from_its_verified_artefacts(registry: ModelRegistry) -> None:
    register(registry, "legacy")
    run_id, version, contract = legacy_registration(registry, "legacy")
    assert version == "2"
    code, out = cli(registry, "--check", "--stale-after", "0")
    assert code == 1
    assert "model 'legacy' version 2: its registration never finished (ml_platform.status='registering') -> finish" in out
    assert f"run {run_id} of model 'legacy': left RUNNING" in out and "-> end FINISHED" in out
    assert mlflow_client(registry).get_model_version("legacy", "2").tags[entities.STATUS_TAG] == "registering"  # --check
    assert run_status(registry, run_id) == "RUNNING"

    report = repair_registry(registry, stale_after=NOW)
    assert [(f.subject, f.action.split(":")[0], f.done) for f in report.findings] == [
        ("model 'legacy' version 2", "finish", True), (f"run {run_id} of model 'legacy'", "end FINISHED", True)]
    assert registry.load_contract("legacy", "2") == contract.with_version("2")
    assert registry.load_model("legacy", "2") == make_model(0.3)
    tags = mlflow_client(registry).get_model_version("legacy", "2").tags
    assert tags[entities.STATUS_TAG] == "ready" and "registry repair: finished" in tags[entities.REPAIR_TAG]
    assert run_status(registry, run_id) == "FINISHED"
    assert cli(registry, "--check")[0] == 0


def test_a_legacy_version_without_its_contract_is_removed_with_the_empty_model_it_created(
    registry: ModelRegistry,
) -> None:
    run_id, _, _ = legacy_registration(registry, "lost", contract_uploaded=False)
    report = repair_registry(registry, stale_after=NOW)
    assert [f.subject for f in report.findings] == ["model 'lost' version 1", f"run {run_id} of model 'lost'",
                                                     "model 'lost'"]
    assert "remove: an artefact is missing" in report.findings[0].action
    assert report.findings[2].problem == "no versions left once its unfinished ones are removed"
    assert "lost" not in [m.name for m in registry.list_models()]
    run = mlflow_client(registry).get_run(run_id)
    assert (run.info.status, run.data.tags[entities.STATUS_TAG]) == ("KILLED", "failed")
    assert "registry repair: ended KILLED" in run.data.tags[entities.REPAIR_TAG]
    assert repair_registry(registry, check_only=True).consistent


def test_a_failed_version_is_removed_and_earlier_versions_kept(registry: ModelRegistry) -> None:
    register(registry, "failing")
    legacy_registration(registry, "failing", status=entities.VersionStatus.FAILED)
    report = repair_registry(registry, stale_after=NOW)
    assert report.findings[0].subject == "model 'failing' version 2"
    assert "remove: the registration recorded its failure" in report.findings[0].action
    with pytest.raises(ModelNotFound, match="has no version 2"):
        registry.load_contract("failing", "2")
    assert [s.versions for s in registry.list_models()] == [("1",)]


def test_a_version_without_the_platforms_tags_is_finished_if_made_from_a_platform_run(registry: ModelRegistry) -> None:
    register(registry, "plain")
    client = mlflow_client(registry)
    platform_run = client.get_model_version("plain", "1").run_id
    client.create_model_version("plain", f"runs:/{platform_run}/model", run_id=platform_run)  # mlflow.register_model
    foreign_run = client.create_run(registry.experiment_id("ml_platform")).info.run_id
    client.set_terminated(foreign_run, "FINISHED")
    client.create_model_version("plain", f"runs:/{foreign_run}/model", run_id=foreign_run)
    report = repair_registry(registry)
    assert [(f.subject, f.problem) for f in report.findings] == [
        ("model 'plain' version 2", "it carries none of the platform's tags")]
    foreign = "model 'plain' version 3: none of the platform's tags, and not made from a platform training run"
    assert report.left_alone == (foreign,)
    assert registry.load_contract("plain", "2").model_version == "2"
    assert repair_registry(registry, check_only=True).consistent  # what is not the platform's is noticed, not inconsistent


def _dead_identity() -> str:
    """The identity of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return json.dumps({"host": socket.gethostname(), "pid": process.pid, "boot": _boot_id(), "start": 1})


def test_running_runs_are_ended_only_when_their_registration_is_gone(registry: ModelRegistry) -> None:
    client = mlflow_client(registry)
    experiment = registry.experiment_id("ml_platform")

    def run(identity: str | None) -> str:
        tags = {entities.MODEL_NAME_TAG: "runs"}
        if identity is not None:
            tags[entities.REGISTRATION_PROCESS_TAG] = identity
        return client.create_run(experiment, tags=tags).info.run_id

    live = run(process_identity())
    dead = run(_dead_identity())
    elsewhere = run(json.dumps({"host": "another-host", "pid": 1, "boot": None, "start": None}))
    legacy = run(None)
    report = repair_registry(registry)
    assert [f.subject for f in report.findings] == [f"run {dead} of model 'runs'"]
    assert report.findings[0].action == "end KILLED"
    unknown = ": it started less than the stale-after time ago and its process cannot be checked from here"
    assert sorted(report.in_progress) == sorted([f"run {live} of model 'runs': its process is still running",
                                                 f"run {elsewhere} of model 'runs'{unknown}",
                                                 f"run {legacy} of model 'runs'{unknown}"])
    assert [run_status(registry, r) for r in (live, dead, elsewhere, legacy)] == ["RUNNING", "KILLED", "RUNNING",
                                                                               "RUNNING"]
    assert cli(registry, "--check")[0] == 0  # registrations in progress are not inconsistencies
    repair_registry(registry, stale_after=NOW)
    assert [run_status(registry, r) for r in (live, elsewhere, legacy)] == ["RUNNING", "KILLED", "KILLED"]
    client.set_terminated(live, "FINISHED")


def test_an_empty_model_the_platform_created_is_removed_and_a_foreign_one_left(registry: ModelRegistry) -> None:
    client = mlflow_client(registry)
    client.create_registered_model("empty_ours", tags={entities.CREATED_BY_TAG: "ml_platform"})
    client.create_registered_model("empty_foreign")
    code, out = cli(registry, "--check", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["consistent"] is False and report["check_only"] is True
    assert report["findings"] == [{"subject": "model 'empty_ours'", "problem": "a registered model with no versions, "
                                   "left by an interrupted first registration", "action": "remove model",
                                   "done": False}]
    assert report["left_alone"] == ["model 'empty_foreign': no versions, and no platform training run names it"]
    code, out = cli(registry)
    assert code == 0 and "repaired 1 inconsistency(ies)" in out
    assert sorted(m.name for m in MlflowClient(registry.tracking_uri, registry.tracking_uri).search_registered_models()) \
        == ["empty_foreign"]
    assert cli(registry, "--check")[0] == 0


def test_repair_refuses_a_bad_stale_after(registry: ModelRegistry) -> None:
    with pytest.raises(ConfigurationError, match="stale_after must be a non-negative"):
        repair_registry(registry, stale_after=dt.timedelta(seconds=-1))


def test_process_liveness() -> None:
    mine = json.loads(process_identity())
    assert process_alive(process_identity()) is True
    assert process_alive(_dead_identity()) is False
    if mine["start"] is not None:  # Linux: a reused pid (another start time) is another process
        assert process_alive(json.dumps({**mine, "start": mine["start"] + 1})) is False
    assert process_alive(json.dumps({**mine, "host": "elsewhere"})) is None
    assert process_alive("not json") is None and process_alive(None) is None
