"""A process whose working directory is not the project's (a Celery worker, a code server started elsewhere) reads
what it wrote under ``strict``: build_definitions gives the store the project root the feature assets declare, so
a read compares the stored environment with the one captured from the same project's ``uv.lock``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ml_platform import Settings, build_definitions
from ml_platform.deployment import with_project_root
from ml_platform.features.assets import build_feature_assets
from ml_platform.io.store import PinnedStore
from ml_platform_tests.features.graph_fixture import write_graph_package
from ml_platform_tests.features.test_assets import CALENDAR
from ml_platform_tests.features.test_key_namespace import _materialize


def test_a_strict_deployment_reads_its_features_from_another_working_directory(tmp_path, dagster_instance,
                                                                                 monkeypatch: pytest.MonkeyPatch):
    module = write_graph_package(tmp_path / "src")
    root = Path(module.GRAPH.project_root)
    (root / "uv.lock").write_text("version = 1\n")  # the project's lock, which every write records
    elsewhere = tmp_path / "worker-cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no uv.lock here nor above
    settings = Settings.local(tmp_path / "home", environment_policy="strict")
    assets = build_feature_assets(module.GRAPH, partitions_def=CALENDAR)
    assert with_project_root(settings, assets).project_root == str(root)
    given = dataclasses.replace(settings, project_root="/given")
    assert with_project_root(given, assets) is given  # a configured root (ML_PLATFORM_PROJECT_ROOT) is kept
    defs = build_definitions(settings, assets=assets)
    _materialize(defs, (), dagster_instance)  # the downstream nodes read base and a, b under strict
    store = PinnedStore(settings.storage)
    manifest = store.manifest("c", "2012-03-09")
    assert manifest.environment.uv_lock_hash is not None and manifest.upstream
