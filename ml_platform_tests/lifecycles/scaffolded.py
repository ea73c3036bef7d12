"""A project scaffolded by ``ml-platform init``, built once per session (per xdist worker) for the tests that run it.

``scaffolded_project``: ``ml-platform init`` writes ``desk-alpha`` (package ``desk_alpha``), committed as is into
a git repository of its own (:attr:`ScaffoldedProject.scaffolded`). ``scaffolded_project_locked`` goes on from
it: the project gets a ``uv.lock`` of its own (ml_platform from this checkout, every other package at this
repository's locked version), its virtual environment is synced from that lock (``uv sync --frozen``) and
both are committed: commit A (:attr:`ScaffoldedProject.commit`), where production trains.

``test_scaffold.py`` runs the project's own tests in a clone of the scaffolded commit (order-independent: it
never sees a later commit); ``reproduce/test_scaffolded_project.py`` runs production in the project's
environment, then moves the project on (commits B) and reproduces A. The lock and the environment, the
expensive part, only the reproduction uses; the two tests take minutes each, so they run on different xdist
workers side by side rather than one after the other, and each worker scaffolds (a second) for itself.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from ml_platform.cli import main
from ml_platform.reproduce.checkout import _uv

__all__ = ["GIT", "PACKAGE", "REPO", "ScaffoldedProject", "project_env", "run", "scaffolded_project",
           "scaffolded_project_locked"]

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "desk_alpha"
GIT = ("git", "-c", "user.name=desk", "-c", "user.email=desk@test", "-c", "init.defaultBranch=main")


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def project_env() -> dict[str, str]:
    """This process's environment without the settings of its own virtual environment, Dagster and ml_platform."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "DAGSTER_HOME", "PYTHONPATH"}
           and not k.startswith("ML_PLATFORM_")}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def _own_lock(project: Path) -> None:
    """ml_platform from this checkout; every package this repository locks, at its locked version."""
    locked = tomllib.loads((REPO / "uv.lock").read_text())["package"]
    pins = ", ".join(f'"{p["name"]}=={p["version"]}"' for p in locked if "registry" in p.get("source", {}))
    with (project / "pyproject.toml").open("a") as file:
        file.write(f'\n[tool.uv]\nconstraint-dependencies = [{pins}]\n\n'
                   f'[tool.uv.sources]\nml-platform = {{ path = "{REPO}" }}\n')
    run([*_uv(), "lock", "--quiet"], project)


@dataclass(frozen=True)
class ScaffoldedProject:
    """The project's folder, the ``init`` command's output, and its commits."""

    root: Path
    init_exit_code: int
    init_output: str
    scaffolded: str
    """the commit of exactly what ``ml-platform init`` wrote"""
    commit: str | None = None
    """commit A: the scaffolded project with its own ``uv.lock``, its ``.venv`` synced from it (locked only)"""

    @property
    def python(self) -> Path:
        return self.root / ".venv" / "bin" / "python"


@pytest.fixture(scope="session")
def scaffolded_project(tmp_path_factory: pytest.TempPathFactory) -> ScaffoldedProject:
    """What ``ml-platform init`` wrote, committed (read it, or clone the ``scaffolded`` commit)."""
    root = tmp_path_factory.mktemp("scaffolded") / "desk-alpha"
    result = CliRunner().invoke(main, ["init", str(root)])
    assert result.exit_code == 0, result.output
    run([*GIT, "init", "--quiet"], root)
    run([*GIT, "add", "--all"], root)
    run([*GIT, "commit", "--quiet", "-m", "scaffolded by ml-platform init"], root)
    return ScaffoldedProject(root, result.exit_code, result.output, run([*GIT, "rev-parse", "HEAD"], root).strip())


@pytest.fixture(scope="session")
def scaffolded_project_locked(scaffolded_project: ScaffoldedProject) -> ScaffoldedProject:
    """The scaffolded project with its own lock and synced environment, committed (commit A)."""
    root = scaffolded_project.root
    _own_lock(root)
    run([*_uv(), "sync", "--frozen", "--quiet"], root, project_env())
    run([*GIT, "add", "--all"], root)
    run([*GIT, "commit", "--quiet", "-m", "A: scaffolded, with its own lock"], root)
    return replace(scaffolded_project, commit=run([*GIT, "rev-parse", "HEAD"], root).strip())
