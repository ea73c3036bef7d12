"""A model trained in an image without ``.git``: the image's commit reaches the contract, a dirty image is refused."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ml_platform import DataWindow, FeatureGraph, Lifecycle, ModelRegistry, Settings
from ml_platform.environment import BuildProvenance
from ml_platform_tests.harness.mlflow_template import seed_tracking_uri
from ml_platform_tests.monitoring.project import (
    KEYS,
    MODEL,
    PREFIX,
    bars,
    desk_definitions,
    fwd_ret,
    inputs,
    rows,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "7c" * 32

pytestmark = pytest.mark.slow  # materializes features and trains a model


@dataclasses.dataclass(frozen=True)
class Image:
    root: Path
    home: Path
    instance: dg.DagsterInstance


@pytest.fixture
def image(tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Image]:
    """A project root that is no git checkout (nor inside one), as in an image, with a Dagster instance."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "app"
    root.mkdir()
    home = tmp_path / ".ml_platform"
    seed_tracking_uri(mlflow_template, Settings.local(home).tracking_uri)
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield Image(root, home, instance)


def _train(image: Image, provenance: BuildProvenance) -> tuple[Settings, dg.ExecuteInProcessResult]:
    settings = dataclasses.replace(Settings.local(image.home), provenance=provenance)
    graph = FeatureGraph([bars, inputs, fwd_ret, rows], keys=KEYS, project_root=image.root)
    life = Lifecycle(desk_definitions(settings, lambda: dt.datetime(2023, 4, 3, tzinfo=dt.UTC), graph=graph), graph,
                     image.instance, key_prefix=PREFIX)
    life.features(DataWindow.parse("2023-01-02..2023-03-31"))
    life.training_set(DataWindow.parse("2023-01-02..2023-03-24"))
    return settings, life.train(trained_by="ci", validation_fraction=0.4)


def test_the_image_commit_and_digest_reach_the_registered_version(image: Image) -> None:
    settings, trained = _train(image, BuildProvenance(COMMIT, False, DIGEST))
    version = trained.asset_materializations_for_node(f"{PREFIX}__trained_model")[-1].metadata[
        "ml_platform/model_version"].value
    registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
    contract = registry.load_contract(MODEL, str(version))
    assert (contract.git_commit, contract.git_dirty) == (COMMIT, False)
    tags = registry.client.get_model_version(MODEL, str(version)).tags
    assert tags["ml_platform.git_commit"] == COMMIT and tags["ml_platform.image_digest"] == DIGEST


def test_a_model_is_not_trained_in_an_image_built_dirty(image: Image) -> None:
    with pytest.raises(Exception, match="PROVENANCE_ERROR.*uncommitted changes .*could never be reproduced"):
        _train(image, BuildProvenance(COMMIT, True, DIGEST))
