"""The example's features on SQLite, materialized once per session and shared by the modules that go on from them.

This repository is cloned at its HEAD (commit A) and the clone is left with uncommitted changes (a comment
in the feature code, which the code hash ignores, and an untracked file: a model trained from it records
the diff); then every feature node of the example over the bundled real sample is materialized over
:data:`FEATURES` (the union of the windows ``test_lifecycle.py`` and ``test_reproduce.py`` use), from the
clone, into a home folder: the Dagster instance under ``home/dagster``, the store and MLflow under
``home/.ml_platform``. That costs minutes; each module goes on from a copy (:meth:`ExampleFeatures.copy`:
its own home and, for a module that commits, its own clone).

The modules that use it share one pytest-xdist worker (``xdist_group(EXAMPLE_GROUP)``), so the session
fixture runs once.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from quant_alpha.features import FEATURE_NODES
from quant_alpha.market.schema import KEYS

from ml_platform import DataWindow, FeatureGraph, FrameKeys, Settings
from ml_platform_tests.lifecycles.homes import CopiedHome, copy_home
from quant_alpha_tests.lifecycle_fixtures import Deployment

__all__ = ["EXAMPLE_GROUP", "FEATURES", "REPO", "ExampleCopy", "ExampleFeatures", "clone_graph", "example_features"]

EXAMPLE_GROUP = "example_lifecycle"
#: test_reproduce.py's features start on 2011-07-01, test_lifecycle.py's end on 2011-12-30
FEATURES = DataWindow.parse("2011-07-01..2011-12-30")
REPO = Path(__file__).resolve().parents[3]


def clone_graph(clone: Path) -> FeatureGraph:
    """The example's graph (the real sample) recording ``clone``'s commit, lock and uncommitted changes."""
    return FeatureGraph(FEATURE_NODES, keys=FrameKeys(*KEYS[:1], KEYS[1:]), project_packages=("quant_alpha",),
                        project_root=clone / "examples" / "quant_alpha")


@dataclass(frozen=True)
class ExampleCopy(CopiedHome):
    """A module's own copy: a home to write to and, when asked for, a clone to commit in."""

    home: Path
    clone: Path


@dataclass(frozen=True)
class ExampleFeatures:
    """The shared original: read it, never write to it (take a :meth:`copy` to go on from it)."""

    clone: Path
    home: Path
    window: DataWindow

    def copy(self, target: Path, *, clone: bool = False) -> ExampleCopy:
        """The home copied to ``target/home``; with ``clone``, the clone (uncommitted changes, .git) too."""
        own = self.clone
        if clone:
            own = target / "repo"
            shutil.copytree(self.clone, own, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        return ExampleCopy(copy_home(self.home, target / "home"), own)


@pytest.fixture(scope="session")
def example_features(tmp_path_factory: pytest.TempPathFactory) -> ExampleFeatures:
    """A clone of this repository with uncommitted changes; the example's features over :data:`FEATURES`."""
    root = tmp_path_factory.mktemp("example_features")
    clone = root / "repo"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=300)
    features = clone / "examples" / "quant_alpha" / "quant_alpha" / "features.py"
    # uncommitted at training time: a comment (the code hash ignores it) and an untracked file
    features.write_text(features.read_text().replace("def momentum(", "# trained from a dirty tree\ndef momentum(", 1))
    (clone / "NOTES.md").write_text("work in progress\n")
    home = root / "home"
    (home / "dagster").mkdir(parents=True)
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        Deployment.create(Settings.local(home / ".ml_platform"), instance, clone_graph(clone)).life.features(FEATURES)
    return ExampleFeatures(clone, home, FEATURES)
