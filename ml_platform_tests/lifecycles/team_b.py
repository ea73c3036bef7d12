"""The team_b test project's features, materialized once per session and shared by the modules that drive it.

``ml_platform_tests/projects/team_b`` is copied into a git repository of its own and committed (commit A),
then every feature node is materialized over :data:`FEATURES` (the union of the windows that
``test_team_project.py`` and ``trace/test_trace.py`` use) into a home folder: the Dagster instance under
``home/dagster``, the store and MLflow under ``home/.ml_platform``. That costs minutes; a module that goes on
from there (trains, serves, edits and commits the feature code) takes :meth:`TeamBFeatures.copy`: its own
checkout (same commit A) and its own home (see :func:`~ml_platform_tests.lifecycles.homes.copy_home`).

The modules that use it share one pytest-xdist worker (``xdist_group(TEAM_B_GROUP)``), so the session fixture
runs once.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ml_platform import DataWindow, Lifecycle, Settings
from ml_platform_tests.lifecycles.homes import CopiedHome, copy_home

__all__ = ["FEATURES", "PROJECT", "TEAM_B_GROUP", "WHO", "TeamBCopy", "TeamBFeatures", "forget_team_b", "git",
           "imported_team_b", "team_b_features"]

PROJECT = Path(__file__).resolve().parents[1] / "projects" / "team_b"
#: test_team_project.py's features window; test_trace.py's (2021-02-01..2021-06-30) lies inside it
FEATURES = DataWindow.parse("2021-02-01..2022-02-28")
TEAM_B_GROUP = "team_b"
WHO = ("-c", "user.name=Team B", "-c", "user.email=b@example.com")


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def forget_team_b() -> None:
    for name in [m for m in sys.modules if m == "team_b" or m.startswith("team_b.")]:
        del sys.modules[name]


@contextmanager
def imported_team_b(checkout: Path) -> Iterator[None]:
    """``team_b`` importable from ``checkout`` (and only from there) inside the block."""
    forget_team_b()
    sys.path.insert(0, str(checkout))
    try:
        yield
    finally:
        sys.path.remove(str(checkout))
        forget_team_b()


@dataclass(frozen=True)
class TeamBCopy(CopiedHome):
    """A module's own copy: a checkout at commit A to edit and commit in, and a home to write to."""

    checkout: Path
    commit: str
    home: Path


@dataclass(frozen=True)
class TeamBFeatures:
    """The shared original: read it, never write to it (take a :meth:`copy` to go on from it)."""

    checkout: Path
    commit: str
    home: Path
    window: DataWindow

    def copy(self, target: Path) -> TeamBCopy:
        """The checkout (its git repository included) and the home, copied under ``target``."""
        checkout = target / "checkout"
        shutil.copytree(self.checkout, checkout, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        return TeamBCopy(checkout, self.commit, copy_home(self.home, target / "home"))


@pytest.fixture(scope="session")
def team_b_features(tmp_path_factory: pytest.TempPathFactory) -> TeamBFeatures:
    """team_b committed in a repository of its own, every feature materialized over :data:`FEATURES`."""
    root = tmp_path_factory.mktemp("team_b_features")
    checkout = root / "checkout"
    shutil.copytree(PROJECT, checkout, ignore=shutil.ignore_patterns("__pycache__"))
    git(checkout, "init", "-q")
    git(checkout, *WHO, "add", "-A")
    git(checkout, *WHO, "commit", "-q", "-m", "team_b")
    home = root / "home"
    (home / "dagster").mkdir(parents=True)
    with imported_team_b(checkout), dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        from team_b.definitions import PREFIX, team_definitions
        from team_b.features import build_graph

        graph = build_graph()
        settings = Settings.local(home / ".ml_platform")
        Lifecycle(team_definitions(settings, graph), graph, instance, key_prefix=PREFIX).features(FEATURES)
    return TeamBFeatures(checkout, git(checkout, "rev-parse", "HEAD"), home, FEATURES)
