"""ModelRegistry against a real MLflow (SQLite + local artefacts): registration, reading, integrity."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import mlflow
import polars as pl
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml_platform.champions.catalog import champion_of_record
from ml_platform.environment import capture_environment
from ml_platform.errors import ConfigurationError, IntegrityError, ModelNotFound, RegistryError
from ml_platform.keys import FrameKeys
from ml_platform.models import (
    SKLEARN_FORMAT,
    LinearSignalModel,
    SklearnSignalModel,
    protocol,
    register_model_format,
)
from ml_platform.registry import DeployContract, FeatureField, FeatureSchema
from ml_platform.registry.entities import RegisteredVersion
from ml_platform.registry.store import ModelRegistry
from ml_platform.testing import champion_shortcut
from ml_platform_tests.registry.conftest import (
    CODE_SNAPSHOT,
    DATA_HASH,
    GRAPH_HASH,
    KEYS,
    artifact_file,
    feature_frame,
    feature_schema,
    make_contract,
    make_model,
    make_sklearn_model,
    mlflow_client,
)

Register = Callable[..., RegisteredVersion]


def test_registration_logs_run_params_metrics_and_provenance_tags(registry: ModelRegistry, register: Register) -> None:
    registered = register("store_run")
    run = mlflow_client(registry).get_run(registered.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["alpha"] == "1.0"
    assert json.loads(run.data.params["features"]) == ["mom_5d", "mom_21d", "vol_21d"]
    assert run.data.metrics == {"sharpe": 1.25, "ic_mean": 0.031}
    tags = run.data.tags
    assert tags["mlflow.user"] == "alice@research"
    assert json.loads(tags["ml_platform.seeds"]) == {"split": 7, "train": 1234}
    assert tags["ml_platform.seed.train"] == "1234"
    assert tags["ml_platform.environment_hash"] == capture_environment().hash
    assert tags["ml_platform.training_window"] == "2019-01-02..2019-12-31"
    assert tags["ml_platform.validation_window"] == "2020-01-02..2020-03-31"
    assert tags["ml_platform.training_set_data_hash"] == DATA_HASH
    assert tags["ml_platform.git_commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert tags["ml_platform.git_dirty"] == "false"


def test_registration_writes_contract_environment_and_code_artefacts(
    registry: ModelRegistry, register: Register
) -> None:
    registered = register("store_artefacts")
    contract_bytes = artifact_file(registry, registered.run_id, "contract/contract.json").read_bytes()
    # Uploaded before the version existed: the artefact names no version; the registry fills it in.
    assert json.loads(contract_bytes)["model_version"] is None
    assert DeployContract.from_json(contract_bytes).with_version("1") == registered.contract
    assert contract_bytes == make_contract("store_artefacts", make_model()).to_json().encode("ascii")
    assert registered.contract.model_version == registered.version == "1"
    assert registered.model_uri == "models:/store_artefacts/1"

    lock = json.loads(artifact_file(registry, registered.run_id, "environment/environment_lock.json").read_text())
    assert lock == capture_environment().to_dict()

    index = json.loads(artifact_file(registry, registered.run_id, "code/index.json").read_text())
    assert sorted(index) == sorted(CODE_SNAPSHOT)
    for key, source in CODE_SNAPSHOT.items():
        stored = artifact_file(registry, registered.run_id, index[key]["file"]).read_text()
        assert stored == source
        assert index[key]["source_sha256"] == "sha256:" + hashlib.sha256(source.encode()).hexdigest()
    assert index["features/mom_5d"]["code_hash"] == "sha256:" + "1" * 64
    assert "code_hash" not in index["features/vol_21d"]
    assert artifact_file(registry, registered.run_id, "model/MLmodel").is_file()


def test_version_tags_carry_the_contract_hashes(registry: ModelRegistry, register: Register) -> None:
    registered = register("store_tags")
    tags = mlflow_client(registry).get_model_version("store_tags", registered.version).tags
    assert tags["ml_platform.status"] == "ready"
    assert tags["ml_platform.feature_graph_hash"] == GRAPH_HASH
    assert tags["ml_platform.model_sha256"] == make_model().sha256
    stored = artifact_file(registry, registered.run_id, "contract/contract.json").read_bytes()
    assert tags["ml_platform.contract_sha256"] == "sha256:" + hashlib.sha256(stored).hexdigest()
    assert tags["ml_platform.model_format"] == "ml_platform.ridge/v2"
    assert tags["ml_platform.environment_hash"] == capture_environment().hash
    assert tags["ml_platform.training_window"] == "2019-01-02..2019-12-31"
    assert tags["ml_platform.validation_window"] == "2020-01-02..2020-03-31"
    assert tags["ml_platform.trained_by"] == "alice@research"


def test_contract_and_model_load_back_verified(registry: ModelRegistry, register: Register) -> None:
    first = register("store_load")
    second = register("store_load", shift=0.1)
    assert second.version == "2"
    assert registry.load_contract("store_load", 1) == first.contract
    assert registry.load_contract("store_load", "2") == second.contract
    assert registry.load_model("store_load", "1") == make_model()
    assert registry.load_model("store_load", "2") == make_model(0.1)


def test_champion_alias(registry: ModelRegistry, register: Register) -> None:
    register("store_champion")
    register("store_champion", shift=0.2)
    assert champion_of_record(registry, "store_champion") is None
    champion_shortcut(registry, "store_champion", "1")
    assert champion_of_record(registry, "store_champion") == "1"
    champion_shortcut(registry, "store_champion", 2)
    assert champion_of_record(registry, "store_champion") == "2"
    assert str(mlflow_client(registry).get_model_version_by_alias("store_champion", "champion").version) == "2"


def test_list_and_show(registry: ModelRegistry, register: Register) -> None:
    register("store_list")
    register("store_list", shift=0.3)
    champion_shortcut(registry, "store_list", "2")
    summary = next(s for s in registry.list_models() if s.name == "store_list")
    assert (summary.versions, summary.unusable_versions, summary.champion) == (("1", "2"), (), "2")
    details = registry.show("store_list")
    assert [(d.version, d.status, d.is_champion, d.problem) for d in details] == [
        ("1", "ready", False, None), ("2", "ready", True, None)]
    assert details[1].contract == registry.load_contract("store_list", "2")
    assert [d.version for d in registry.show("store_list", "1")] == ["1"]


def test_unknown_model_and_version(registry: ModelRegistry, register: Register) -> None:
    register("store_known")
    with pytest.raises(ModelNotFound, match=r"no registered model 'nope'; known models: \[.*'store_known'"):
        champion_of_record(registry, "nope")
    with pytest.raises(ModelNotFound, match="no registered model 'nope'"):
        registry.load_contract("nope", 1)
    with pytest.raises(ModelNotFound, match="model 'store_known' has no version 9"):
        registry.load_model("store_known", 9)
    with pytest.raises(ConfigurationError, match="invalid model version"):
        registry.load_contract("store_known", "latest")
    with pytest.raises(ConfigurationError, match="invalid model name"):
        champion_of_record(registry, "bad/name")


def test_overwritten_contract_artefact_is_refused_naming_model_and_version(
    registry: ModelRegistry, register: Register
) -> None:
    registered = register("store_tampered")
    path = artifact_file(registry, registered.run_id, "contract/contract.json")
    edited = json.loads(path.read_text())
    edited["trained_by"] = "mallory"
    path.write_text(json.dumps(edited, sort_keys=True, separators=(",", ":")))
    with pytest.raises(IntegrityError, match=r"contract of model 'store_tampered' version 1 hashes to sha256:.* but"):
        registry.load_contract("store_tampered", "1")
    with pytest.raises(IntegrityError):
        champion_shortcut(registry, "store_tampered", "1")
    (details,) = registry.show("store_tampered", "1")
    assert details.contract is None and "altered or corrupted" in (details.problem or "")


def test_corrupt_contract_with_a_matching_hash_is_refused_as_corrupt(
    registry: ModelRegistry, register: Register
) -> None:
    registered = register("store_corrupt")
    path = artifact_file(registry, registered.run_id, "contract/contract.json")
    path.write_bytes(b"{not json")
    digest = "sha256:" + hashlib.sha256(b"{not json").hexdigest()
    mlflow_client(registry).set_model_version_tag("store_corrupt", "1", "ml_platform.contract_sha256", digest)
    with pytest.raises(RegistryError, match="contract of model 'store_corrupt' version 1 is corrupt: not JSON"):
        registry.load_contract("store_corrupt", "1")


def test_deleted_contract_artefact_is_refused(registry: ModelRegistry, register: Register) -> None:
    registered = register("store_lost")
    artifact_file(registry, registered.run_id, "contract/contract.json").unlink()
    with pytest.raises(IntegrityError, match="contract of model 'store_lost' version 1 is missing from the artefacts"):
        registry.load_contract("store_lost", "1")


def test_overwritten_model_bytes_are_refused(registry: ModelRegistry, register: Register) -> None:
    registered = register("store_bad_bytes")
    path = artifact_file(registry, registered.run_id, "model/artifacts/signal_model.bin")
    path.write_bytes(make_model(0.5).to_bytes())
    with pytest.raises(IntegrityError, match="model bytes of model 'store_bad_bytes' version 1 hash to"):
        registry.load_model("store_bad_bytes", "1")


def test_a_failed_version_creation_leaves_no_version_and_a_failed_run(
    registry: ModelRegistry, register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    register("store_failure")

    def unavailable(*args: object, **kwargs: object) -> None:
        raise MlflowException("registry unavailable")

    monkeypatch.setattr(MlflowClient, "create_model_version", unavailable)  # after every artefact is uploaded
    model = make_model(0.4)
    with pytest.raises(RegistryError, match="create a version of model 'store_failure': registry unavailable"):
        registry.register(model_name="store_failure", model=model, contract=make_contract("store_failure", model),
                          params={}, metrics={}, code_snapshot=CODE_SNAPSHOT)
    monkeypatch.undo()
    summary = next(s for s in registry.list_models() if s.name == "store_failure")
    assert (summary.versions, summary.unusable_versions) == (("1",), ())
    assert [v.version for v in mlflow_client(registry).search_model_versions("name='store_failure'")] == [1]
    failed_runs = mlflow_client(registry).search_runs(
        [mlflow_client(registry).get_experiment_by_name("ml_platform").experiment_id],
        filter_string="tags.`ml_platform.status` = 'failed' and tags.`ml_platform.model_name` = 'store_failure'")
    assert [r.info.status for r in failed_runs] == ["FAILED"]


def test_the_version_is_created_with_every_tag_in_one_call(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for method in ("create_model_version", "set_model_version_tag", "log_artifact", "log_artifacts", "set_terminated"):
        original = getattr(MlflowClient, method)

        def spy(self: MlflowClient, *args: object, _original=original, _method=method, **kwargs: object) -> object:
            calls.append(_method)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(MlflowClient, method, spy)
    model = make_model(0.7)
    registered = registry.register(model_name="store_one_call", model=model,
                                   contract=make_contract("store_one_call", model), params={}, metrics={},
                                   code_snapshot=CODE_SNAPSHOT)
    assert calls == ["log_artifacts", "create_model_version", "set_terminated"]
    tags = mlflow_client(registry).get_model_version("store_one_call", registered.version).tags
    assert tags["ml_platform.status"] == "ready" and tags["ml_platform.model_sha256"] == model.sha256


def test_a_run_left_running_after_the_version_exists_keeps_the_complete_version(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise MlflowException("tracking store unavailable")

    monkeypatch.setattr(MlflowClient, "set_terminated", unavailable)
    model = make_model(0.8)
    registered = registry.register(model_name="store_run_left", model=model,
                                   contract=make_contract("store_run_left", model), params={}, metrics={},
                                   code_snapshot=CODE_SNAPSHOT)
    monkeypatch.undo()
    assert "its run" in caplog.text and "stays RUNNING" in caplog.text
    assert registry.load_model("store_run_left", registered.version) == model
    assert mlflow_client(registry).get_run(registered.run_id).info.status == "RUNNING"


def test_failed_first_registration_removes_the_empty_model(registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise MlflowException("registry unavailable")

    monkeypatch.setattr(MlflowClient, "create_model_version", unavailable)
    model = make_model()
    with pytest.raises(RegistryError):
        registry.register(model_name="store_first_failure", model=model,
                          contract=make_contract("store_first_failure", model), params={}, metrics={},
                          code_snapshot=CODE_SNAPSHOT)
    monkeypatch.undo()
    assert "store_first_failure" not in [s.name for s in registry.list_models()]


def test_a_version_cut_off_mid_registration_is_refused_by_every_reader(
    registry: ModelRegistry, register: Register
) -> None:
    good = register("store_cut_off")
    client = mlflow_client(registry)  # what a killed process leaves: a version still marked registering
    client.create_model_version("store_cut_off", f"runs:/{good.run_id}/model", run_id=good.run_id,
                                tags={"ml_platform.status": "registering"})
    with pytest.raises(RegistryError, match="version 2 is not usable: its registration never finished"):
        registry.load_contract("store_cut_off", "2")
    with pytest.raises(RegistryError, match="never finished"):
        registry.load_model("store_cut_off", "2")
    with pytest.raises(RegistryError, match="never finished"):
        champion_shortcut(registry, "store_cut_off", "2")
    summary = next(s for s in registry.list_models() if s.name == "store_cut_off")
    assert (summary.versions, summary.unusable_versions) == (("1",), ("2",))
    assert registry.show("store_cut_off", "2")[0].status == "incomplete"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_name": "other"}, "the contract is for model 'other', not 'store_refused'"),
        ({"contract_version": "4"}, "the registry assigns versions"),
        ({"model_sha256": "sha256:" + "0" * 64}, "the contract promises model bytes"),
        ({"metrics": {"sharpe": "high"}}, "metric 'sharpe' must be a real number"),
        ({"code_snapshot": {}}, "code_snapshot must map"),
        ({"code_hashes": {"features/unknown": {"code_hash": "x"}}}, "not in code_snapshot"),
        ({"name": "bad name"}, "invalid model name"),
    ],
)
def test_malformed_registrations_are_refused_before_anything_is_written(
    registry: ModelRegistry, change: dict[str, object], message: str
) -> None:
    model = make_model()
    overrides: dict[str, object] = {}
    contract_name = str(change.get("model_name", "store_refused"))
    if "contract_version" in change:
        overrides["model_version"] = change["contract_version"]
    if "model_sha256" in change:
        overrides["model_sha256"] = change["model_sha256"]
    name = str(change.get("name", "store_refused"))
    with pytest.raises(ConfigurationError, match=message):
        registry.register(
            model_name=name, model=model, contract=make_contract(contract_name, model, **overrides),
            params={}, metrics=change.get("metrics", {}),  # type: ignore[arg-type]
            code_snapshot=change.get("code_snapshot", CODE_SNAPSHOT),  # type: ignore[arg-type]
            code_hashes=change.get("code_hashes"),  # type: ignore[arg-type]
        )
    assert "store_refused" not in [s.name for s in registry.list_models()]


def test_feature_type_without_an_mlflow_equivalent_is_refused_before_a_run_starts(registry: ModelRegistry) -> None:
    model = make_model()
    schema = FeatureSchema((*feature_schema().fields, FeatureField("holding", "duration[ns]")))
    runs_before = _run_count(registry)
    with pytest.raises(RegistryError, match="'holding' has type duration"):
        registry.register(model_name="store_duration", model=model,
                          contract=make_contract("store_duration", model, feature_schema=schema),
                          params={}, metrics={}, code_snapshot=CODE_SNAPSHOT)
    assert _run_count(registry) == runs_before


def _run_count(registry: ModelRegistry) -> int:
    client = mlflow_client(registry)
    return len(client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=50_000))


# -- any model family -------------------------------------------------------------------------------


def test_a_scikit_learn_model_registers_and_loads_back_bit_exact(registry: ModelRegistry, register: Register) -> None:
    model = make_sklearn_model()
    registered = register("store_sklearn", model=model)
    assert registered.contract.model_format == SKLEARN_FORMAT == model.format_id
    tags = mlflow_client(registry).get_model_version("store_sklearn", registered.version).tags
    assert (tags["ml_platform.model_format"], tags["ml_platform.model_sha256"]) == (SKLEARN_FORMAT, model.sha256)
    run_tags = mlflow_client(registry).get_run(registered.run_id).data.tags
    assert run_tags["ml_platform.model_format"] == SKLEARN_FORMAT
    assert artifact_file(registry, registered.run_id, "model/artifacts/signal_model.bin").read_bytes() == model.to_bytes()
    loaded = registry.load_model("store_sklearn", registered.version)
    assert isinstance(loaded, SklearnSignalModel) and loaded.to_bytes() == model.to_bytes()
    assert loaded.predict(feature_frame())["score"].to_list() == model.predict(feature_frame())["score"].to_list()


def test_ridge_and_forest_versions_of_one_model_each_load_by_their_format(
    registry: ModelRegistry, register: Register
) -> None:
    register("store_mixed")
    register("store_mixed", model=make_sklearn_model())
    assert type(registry.load_model("store_mixed", "1")) is LinearSignalModel
    assert type(registry.load_model("store_mixed", "2")) is SklearnSignalModel


def test_an_unknown_or_missing_recorded_format_is_refused(registry: ModelRegistry, register: Register) -> None:
    register("store_format")
    client = mlflow_client(registry)
    client.set_model_version_tag("store_format", "1", "ml_platform.model_format", "acme.gbm/v3")
    with pytest.raises(RegistryError, match=r"cannot load model 'store_format' version 1: .*unknown model format "
                                            r"'acme.gbm/v3'; known formats: \['ml_platform.ridge/v2', "
                                            r"'ml_platform.sklearn/v1'"):
        registry.load_model("store_format", "1")
    client.set_model_version_tag("store_format", "1", "ml_platform.model_format", SKLEARN_FORMAT)
    with pytest.raises(IntegrityError, match="match their hash but do not decode as 'ml_platform.sklearn/v1'"):
        registry.load_model("store_format", "1")
    client.delete_model_version_tag("store_format", "1", "ml_platform.model_format")
    with pytest.raises(RegistryError, match="records no model format .* registered by an older ml_platform"):
        registry.load_model("store_format", "1")


@dataclasses.dataclass(frozen=True)
class ConstantModel:
    """A family outside ml_platform: every row scores ``value``; canonical JSON bytes."""

    format_id: ClassVar[str] = "tests.registry_constant/v1"
    value: float
    keys: FrameKeys = KEYS
    feature_columns: tuple[str, ...] = ("mom_5d",)

    def predict(self, features: pl.DataFrame) -> pl.DataFrame:
        frame = features.select(*self.keys.columns).sort(self.keys.columns)
        return frame.with_columns(score=pl.lit(self.value, dtype=pl.Float64))

    def to_bytes(self) -> bytes:
        return json.dumps({"value": self.value.hex()}).encode()

    @property
    def sha256(self) -> str:
        return "sha256:" + hashlib.sha256(self.to_bytes()).hexdigest()

    @classmethod
    def from_bytes(cls, data: bytes) -> ConstantModel:
        return cls(float.fromhex(json.loads(data)["value"]))


def test_a_registered_outside_family_goes_through_the_registry_and_pyfunc(
    registry: ModelRegistry, register: Register, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "_REGISTERED", {})
    model = ConstantModel(0.125)
    with pytest.raises(ConfigurationError, match="bytes do not load back through its format 'tests.registry_constant/v1'"):
        register("store_outside", model=model)  # not registered yet: the registry could never serve it
    register_model_format(ConstantModel.format_id, ConstantModel.from_bytes)
    registered = register("store_outside", model=model)
    assert registry.load_model("store_outside", registered.version) == model
    served = mlflow.pyfunc.load_model(registry.pyfunc_uri("store_outside", registered.version))
    assert served.predict(feature_frame().to_pandas())["score"].tolist() == [0.125] * feature_frame().height


def test_registration_refuses_a_contract_of_another_format_or_keys_or_a_non_model(registry: ModelRegistry) -> None:
    model = make_model()
    forest = make_sklearn_model()
    cases = [
        (model, make_contract("store_mismatch", model, model_format=SKLEARN_FORMAT),
         "the contract promises a model of format 'ml_platform.sklearn/v1' but the model is 'ml_platform.ridge/v2'"),
        (forest, make_contract("store_mismatch", forest, model_sha256=model.sha256), "the contract promises model bytes"),
        (model, make_contract("store_mismatch", model, keys=FrameKeys("date", ("mom_5d",))),
         r"the contract's keys \(date, mom_5d\) differ from the model's \(date, instrument\)"),
        (forest.estimator, make_contract("store_mismatch", model), "model must implement the SignalModel protocol"),
    ]
    for candidate, contract, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            registry.register(model_name="store_mismatch", model=candidate, contract=contract, params={}, metrics={},
                              code_snapshot=CODE_SNAPSHOT)
    assert "store_mismatch" not in [s.name for s in registry.list_models()]


def test_importing_the_registry_sets_nothing_and_connecting_turns_telemetry_off(
        tmp_path: Path, migrated_mlflow: Callable[..., Path]) -> None:
    migrated_mlflow(tmp_path / "m.db")  # connecting is what is tested, not MLflow's migration
    code = (
        "import os\n"
        "import ml_platform.registry, ml_platform.registry.store, ml_platform.registry.pyfunc\n"
        "before = os.environ.get('MLFLOW_DISABLE_TELEMETRY'), os.environ.get('MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR')\n"
        f"registry = ml_platform.registry.store.ModelRegistry('sqlite:///{tmp_path / 'm.db'}')\n"
        "registry.list_models()\n"
        "after = os.environ.get('MLFLOW_DISABLE_TELEMETRY'), os.environ.get('MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR')\n"
        "print(before, after)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "(None, None) ('true', 'false')"
    kept = subprocess.run([sys.executable, "-c", code], env={**env, "MLFLOW_DISABLE_TELEMETRY": "false"},
                          capture_output=True, text=True, check=True)
    assert kept.stdout.strip() == "('false', None) ('false', 'false')"  # a choice the process made is kept


def _register_dirty(registry: ModelRegistry, name: str, git_diff: object) -> RegisteredVersion:
    model = make_model()
    return registry.register(model_name=name, model=model, contract=make_contract(name, model, git_dirty=True),
                             params={}, metrics={}, code_snapshot=CODE_SNAPSHOT,
                             git_diff=git_diff)  # type: ignore[arg-type]


def test_a_dirty_tree_registers_its_diff_and_loads_it_back_verified(registry: ModelRegistry) -> None:
    patch = b"diff --git a/f.py b/f.py\n--- a/f.py\n+++ b/f.py\n@@ -1 +1 @@\n-A = 1\n+A = 2\n"
    registered = _register_dirty(registry, "store_dirty", patch)
    sha = "sha256:" + hashlib.sha256(patch).hexdigest()
    version = mlflow_client(registry).get_model_version("store_dirty", registered.version)
    assert version.tags["ml_platform.git_diff_sha256"] == sha
    assert mlflow_client(registry).get_run(registered.run_id).data.tags["ml_platform.git_diff_sha256"] == sha
    assert artifact_file(registry, registered.run_id, "code/git.diff").read_bytes() == patch
    assert registry.load_git_diff("store_dirty", registered.version) == patch

    artifact_file(registry, registered.run_id, "code/git.diff").write_bytes(patch.replace(b"A = 2", b"A = 3"))
    with pytest.raises(IntegrityError, match="diff of the uncommitted changes of model 'store_dirty' version 1 "
                                             "hashes to .* altered after registration"):
        registry.load_git_diff("store_dirty", registered.version)


def test_a_clean_version_has_no_diff(registry: ModelRegistry, register: Register) -> None:
    registered = register("store_clean_diff")
    assert registry.load_git_diff("store_clean_diff", registered.version) is None
    assert not artifact_file(registry, registered.run_id, "code/git.diff").exists()


@pytest.mark.parametrize(("git_diff", "message"), [
    (None, "records a dirty checkout at 0123456789ab.* no diff of its uncommitted changes was given"),
    (b"", "records a dirty checkout"),
    ("diff --git", "git_diff must be the patch's bytes, got str"),
])
def test_a_dirty_contract_without_its_diff_is_refused_before_anything_is_written(
    registry: ModelRegistry, git_diff: object, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _register_dirty(registry, "store_dirty_refused", git_diff)
    assert "store_dirty_refused" not in [s.name for s in registry.list_models()]


def test_a_diff_with_a_clean_contract_is_refused(registry: ModelRegistry) -> None:
    model = make_model()
    with pytest.raises(ConfigurationError, match="contract records a clean checkout"):
        registry.register(model_name="store_clean_refused", model=model,
                          contract=make_contract("store_clean_refused", model), params={}, metrics={},
                          code_snapshot=CODE_SNAPSHOT, git_diff=b"diff")


def test_the_image_digest_is_tagged_beside_the_git_commit(registry: ModelRegistry, register: Register) -> None:
    digest = "sha256:" + "ab" * 32
    model = make_model()
    registered = registry.register(model_name="store_image", model=model, contract=make_contract("store_image", model),
                                   params={}, metrics={}, code_snapshot=CODE_SNAPSHOT, image_digest=digest)
    version = mlflow_client(registry).get_model_version("store_image", registered.version)
    assert version.tags["ml_platform.image_digest"] == digest and "ml_platform.git_commit" in version.tags
    assert mlflow_client(registry).get_run(registered.run_id).data.tags["ml_platform.image_digest"] == digest
    plain = register("store_no_image")
    assert "ml_platform.image_digest" not in mlflow_client(registry).get_model_version(
        "store_no_image", plain.version).tags
    with pytest.raises(ConfigurationError, match="ML_PLATFORM_IMAGE_DIGEST='latest'"):
        registry.register(model_name="store_bad_image", model=model, contract=make_contract("store_bad_image", model),
                          params={}, metrics={}, code_snapshot=CODE_SNAPSHOT, image_digest="latest")
    assert "store_bad_image" not in [s.name for s in registry.list_models()]
