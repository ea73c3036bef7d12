"""The training set's manifest hash on the MLflow version: an anchor ``ml-platform verify`` cross-checks."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from ml_platform.cli import main
from ml_platform.errors import ConfigurationError
from ml_platform.io.manifest import Manifest, WriteFacts, manifest_digest
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus, verify_training_set
from ml_platform.registry.entities import TRAINING_SET_MANIFEST_HASH_TAG
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.harness.mlflow_template import copy_mlflow_template
from ml_platform_tests.registry.conftest import CODE_SNAPSHOT, FEATURES, make_contract, make_model

TRAINING = "models/train_rows"
NAME = "anchored"


@pytest.fixture
def own_registry(tmp_path: Path, mlflow_template: Path) -> ModelRegistry:
    """A registry of this test alone, so verify sees no other test's versions."""
    database = copy_mlflow_template(mlflow_template, tmp_path / "mlflow.db")
    return ModelRegistry(f"sqlite:///{database}", artifact_location=str(tmp_path / "artifacts"))


def register(registry: ModelRegistry, training: Manifest, anchor: str | None) -> str:
    model = make_model(0.0)
    registered = registry.register(
        model_name=NAME, model=model, contract=make_contract(NAME, model, training_set_data_hash=training.data_hash),
        params={"features": list(FEATURES)}, metrics={"sharpe": 1.0}, code_snapshot=CODE_SNAPSHOT,
        training_set_manifest_hash=anchor)
    return registered.version


def training_frame(shift: float) -> pl.DataFrame:
    return pl.DataFrame({"x": [1.0 + shift, 2.0, 3.0], "label": [0.1, 0.2, 0.3]})


def cli(store: PinnedStore, registry: ModelRegistry) -> list[str]:
    return ["verify", "--base-dir", store.base, "--tracking-uri", registry.tracking_uri, "--no-dagster"]


def test_the_version_tags_the_training_sets_manifest_hash_and_verify_rehashes_it(
        tmp_path: Path, own_registry: ModelRegistry) -> None:
    store = PinnedStore(tmp_path / "storage")
    training = store.write(TRAINING, None, training_frame(0.0), WriteFacts(seeds={"default": 1}))
    version = register(own_registry, training, training.manifest_hash)
    tags = own_registry.model_version(NAME, version).tags
    assert tags[TRAINING_SET_MANIFEST_HASH_TAG] == training.manifest_hash
    row = verify_training_set(store, f"{NAME} v{version}", training.data_hash, training.manifest_hash)
    assert (row.key, row.status, row.rows) == (f"registry:{NAME} v{version}", VerifyStatus.OK, 3)
    assert training.manifest_hash in row.detail
    result = CliRunner().invoke(main, cli(store, own_registry))
    assert result.exit_code == 0, result.output
    assert f"registry:{NAME} v{version}" in result.output


def test_a_consistently_forged_training_set_manifest_is_caught_by_the_version_tag(
        tmp_path: Path, own_registry: ModelRegistry) -> None:
    """Head and history rewritten together with a recomputed hash: only the registry's tag disagrees."""
    store = PinnedStore(tmp_path / "storage")
    training = store.write(TRAINING, None, training_frame(0.0), WriteFacts(seeds={"default": 1}))
    version = register(own_registry, training, training.manifest_hash)
    [(entry, _, _)] = store.history_entries(TRAINING, None)
    for path in (Path(store.manifest_path(TRAINING, None)), Path(store.base, entry)):
        record = json.loads(path.read_text())
        record["seeds"] = {"default": 2}
        record["manifest_hash"] = manifest_digest(record)
        path.write_text(json.dumps(record, indent=2, sort_keys=True))
    args = [*cli(store, own_registry), "--no-registry"]
    assert CliRunner().invoke(main, args).exit_code == 0  # the store alone cannot tell
    result = CliRunner().invoke(main, cli(store, own_registry))
    assert result.exit_code == 1, result.output
    assert f"TAMPERED  registry:{NAME} v{version}" in result.output
    assert f"tagged this version's training set with manifest hash {training.manifest_hash}" in result.output


def test_a_registered_training_set_reached_only_through_history_is_rehashed(
        tmp_path: Path, own_registry: ModelRegistry) -> None:
    store = PinnedStore(tmp_path / "storage")
    training = store.write(TRAINING, None, training_frame(0.0))
    version = register(own_registry, training, training.manifest_hash)
    store.write(TRAINING, None, training_frame(1.0))  # the head moves on: the registered set is history only
    path = Path(store.data_path(training))
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    row = verify_training_set(store, f"{NAME} v{version}", training.data_hash, training.manifest_hash)
    assert row.status is VerifyStatus.CORRUPT and "does not hold the bytes its manifest records" in row.detail
    result = CliRunner().invoke(main, cli(store, own_registry))
    assert result.exit_code == 1 and f"CORRUPT  registry:{NAME} v{version}" in result.output, result.output
    path.unlink()
    lost = verify_training_set(store, f"{NAME} v{version}", training.data_hash, None)
    assert lost.status is VerifyStatus.MISSING_OBJECT and "can no longer be reproduced" in lost.detail


def test_a_version_without_the_tag_is_checked_against_any_stored_manifest_of_its_data(tmp_path: Path) -> None:
    store = PinnedStore(tmp_path / "storage")
    training = store.write(TRAINING, None, training_frame(0.0))
    assert verify_training_set(store, "old v1", training.data_hash, None).status is VerifyStatus.OK
    head = Path(store.manifest_path(TRAINING, None))
    [(entry, _, _)] = store.history_entries(TRAINING, None)
    Path(store.base, entry).write_text(head.read_text().replace('"rows": 3', '"rows": 2'))
    tampered = verify_training_set(store, "old v1", training.data_hash, None)
    assert tampered.status is VerifyStatus.TAMPERED and "its fields hash to" in tampered.detail


def test_a_malformed_manifest_hash_is_refused_before_anything_is_registered(
        tmp_path: Path, own_registry: ModelRegistry) -> None:
    store = PinnedStore(tmp_path / "storage")
    training = store.write(TRAINING, None, training_frame(0.0))
    with pytest.raises(ConfigurationError, match=r"training_set_manifest_hash must be a manifest hash .*got 'x'"):
        register(own_registry, training, "x")
    assert own_registry.list_models() == []
