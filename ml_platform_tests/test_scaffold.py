"""`ml-platform init`: the scaffolded project, its refusals, and its own tests against the real API."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from ml_platform.cli.init import init
from ml_platform.errors import ConfigurationError
from ml_platform.scaffold import default_project_name, scaffold_project
from ml_platform.scaffold.prices import DAYS, TICKERS, prices_csv
from ml_platform_tests.lifecycles.scaffolded import ScaffoldedProject
from ml_platform_tests.lifecycles.scaffolded import run as checked
from ml_platform_tests.public_api import private_imports

TEMPLATES = Path(__file__).resolve().parents[1] / "ml_platform" / "scaffold" / "templates"


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("name", ["Team", "team-alpha", "1team", "team alpha", "", "class", "json", "ml_platform",
                                  "dagster", "tests", "tëam"])
def test_a_bad_package_name_is_refused_and_nothing_is_written(tmp_path, name):
    before = _tree(tmp_path)
    with pytest.raises(ConfigurationError, match="name") as raised:
        scaffold_project(tmp_path / "project", name)
    assert "--name" in str(raised.value)
    assert _tree(tmp_path) == before


def test_a_directory_name_that_is_no_package_name_needs_name(tmp_path):
    with pytest.raises(ConfigurationError, match="--name"):
        scaffold_project(tmp_path / "2024-research")
    assert _tree(tmp_path) == []
    assert default_project_name(tmp_path / "Team-Alpha.v2") == "team_alpha_v2"


def test_a_non_empty_directory_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "project"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="not empty"):
        scaffold_project(target, "team_alpha")
    assert _tree(tmp_path) == ["project", "project/notes.txt"]
    assert (target / "notes.txt").read_text() == "mine"


def test_a_file_is_refused(tmp_path):
    target = tmp_path / "project"
    target.write_text("x")
    with pytest.raises(ConfigurationError, match="not a directory"):
        scaffold_project(target, "team_alpha")
    assert _tree(tmp_path) == ["project"]


def test_the_command_refuses_with_a_message_and_writes_nothing(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    result = CliRunner().invoke(init, [str(tmp_path / "taken"), "--name", "team_alpha"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigurationError) and "not empty" in str(result.exception)
    assert _tree(tmp_path) == ["taken", "taken/x"]


# ------------------------------------------------------------------------------------------ contents
def test_scaffold_writes_a_complete_project(tmp_path):
    target = tmp_path / "team-alpha"
    written = scaffold_project(target)
    relative = sorted(str(p.relative_to(target)) for p in written)
    assert relative == [
        ".gitignore", "README.md", "pyproject.toml", "team_alpha/__init__.py", "team_alpha/data/prices.csv",
        "team_alpha/definitions.py", "team_alpha/features.py", "tests/test_team_alpha.py", "workspace.yaml",
    ]
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == relative
    assert [p.name for p in tmp_path.iterdir()] == ["team-alpha"]          # no staging directory left over
    for path in written:
        text = path.read_text()
        assert "${" not in text and "$package" not in text, path
    pyproject = tomllib.loads((target / "pyproject.toml").read_text())
    deps = " ".join(pyproject["project"]["dependencies"])
    assert pyproject["project"]["name"] == "team-alpha"
    assert all(dep in deps for dep in ("ml-platform", "polars", "dagster"))
    assert pyproject["tool"]["pytest"]["ini_options"]["testpaths"] == ["tests"]
    assert "build_definitions(settings, assets=assets)" in (target / "team_alpha" / "definitions.py").read_text()


def test_an_empty_directory_is_accepted_and_kept(tmp_path):
    target = tmp_path / "here"
    target.mkdir(mode=0o750)
    written = scaffold_project(target, "desk_one")
    assert (target / "desk_one" / "features.py") in written
    assert (target / "tests" / "test_desk_one.py").is_file()
    assert target.stat().st_mode & 0o777 == 0o750
    assert [p.name for p in tmp_path.iterdir()] == ["here"]


def test_a_new_directory_gets_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        scaffold_project(tmp_path / "new", "desk_two")
    finally:
        os.umask(umask)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("existing", [False, True])
def test_a_failure_half_way_leaves_nothing(tmp_path, monkeypatch, existing):
    target = tmp_path / "project" if existing else tmp_path / "new" / "parents" / "project"
    if existing:
        target.mkdir()
    real_write, calls = Path.write_text, []

    def failing_write(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 4:
            raise OSError("disk full")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", failing_write)
    with pytest.raises(OSError, match="disk full"):
        scaffold_project(target, "desk_three")
    assert _tree(tmp_path) == (["project"] if existing else [])


def test_generated_code_compiles_and_uses_only_the_public_api(tmp_path):
    scaffold_project(tmp_path / "p", "team_alpha")
    for path in (tmp_path / "p").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        assert private_imports(tree) == [], path.name


def test_prices_are_deterministic_and_complete(tmp_path):
    first = scaffold_project(tmp_path / "a", "desk_a")
    second = scaffold_project(tmp_path / "b", "desk_b")
    csv_a = next(p for p in first if p.name == "prices.csv").read_bytes()
    csv_b = next(p for p in second if p.name == "prices.csv").read_bytes()
    assert csv_a == csv_b == prices_csv().encode()
    lines = csv_a.decode().splitlines()
    assert lines[0] == "date,ticker,close,volume"
    assert len(lines) == 1 + len(TICKERS) * DAYS
    assert {line.split(",")[1] for line in lines[1:]} == set(TICKERS)


def test_templates_are_not_python_modules_of_ml_platform():
    files = [p for p in TEMPLATES.rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".tmpl" for p in files)
    assert not any((p / "__init__.py").exists() for p in [TEMPLATES, *TEMPLATES.rglob("*")] if p.is_dir())


def test_the_command_scaffolds_and_says_what_next(tmp_path):
    result = CliRunner().invoke(init, [str(tmp_path / "desk"), "--name", "desk_fx"])
    assert result.exit_code == 0, result.output
    assert "created project 'desk_fx'" in result.output and "pytest" in result.output
    assert (tmp_path / "desk" / "desk_fx" / "definitions.py").is_file()


def test_init_is_an_ml_platform_command(tmp_path):
    from ml_platform.cli import main

    result = CliRunner().invoke(main, ["init", str(tmp_path / "x"), "--name", "for"])
    assert result.exit_code == 2 and "Python keyword" in result.output
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
@pytest.mark.beside
def test_the_scaffolded_project_passes_its_own_tests(scaffolded_project: ScaffoldedProject, tmp_path):
    # the session's project as `ml-platform init` wrote it (a clone of that commit: later commits never show)
    result = scaffolded_project
    assert result.init_exit_code == 0, result.init_output
    project = tmp_path / "desk-alpha"
    checked(["git", "clone", "--quiet", str(result.root), str(project)], tmp_path)
    checked(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", result.scaffolded], project)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")])),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    env.pop("DAGSTER_HOME", None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert " passed" in run.stdout
