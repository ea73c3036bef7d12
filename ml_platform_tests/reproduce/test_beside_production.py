"""The parts of reproducing beside production's code location: the managed reproductions workspace, the interpreter
script that replaces production's settings and notes who starts each code server, the key-namespace check, and
every refusal before production's Dagster (a real webserver and daemon standing in for it) keeps anything.

A whole reproduction beside production (backfill on production's daemon, keys under ``repro/<commit>``, the
location taken out again) is ``test_scaffolded_project.py``."""

from __future__ import annotations

import os
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml

from ml_platform.errors import ConfigurationError, ReproductionFailed
from ml_platform.reproduce.beside import (
    BesideProduction,
    ProductionDagster,
    ReproductionWorkspace,
    check_namespaced,
    definition_keys,
    interpreter_script,
)
from ml_platform.reproduce.dagster_services import CodeLocation, DagsterServices, IsolatedDeployment
from ml_platform_tests.reproduce.test_services_backfill import PROJECT

NAMESPACE = ("repro", "a1b2c3d4e5f6")
WANTED = ["2024-01-03", "2024-01-04", "2024-01-05"]


def _project(root: Path) -> Path:
    (root / "tinyproj").mkdir(parents=True)
    (root / "tinyproj" / "__init__.py").write_text("")
    (root / "tinyproj" / "defs.py").write_text(textwrap.dedent(PROJECT))
    return root


@pytest.fixture
def production(tmp_path: Path):
    """Production: the tiny project as its code location, storing under prod/home, and the reproductions file
    (the daemon keeps Dagster's own workspace refresh: these tests never wait for it)."""
    prod = tmp_path / "prod"
    prod.mkdir()
    location = CodeLocation("tiny", "tinyproj.defs", "defs", _project(tmp_path / "prod_src"), Path(sys.executable))
    reproductions = prod / "reproductions.yaml"
    reproductions.write_text("load_from: []\n")
    deployment = IsolatedDeployment(prod, location, env={"ML_PLATFORM_HOME": str(prod / "home")})
    with DagsterServices(deployment, also_load=(reproductions,)) as services:
        yield services, reproductions


def _old_commit(tmp_path: Path, namespace: tuple[str, ...] = NAMESPACE) -> tuple[CodeLocation, Path]:
    work = tmp_path / "work"
    work.mkdir(parents=True)
    script = interpreter_script(work / "python.sh", Path(sys.executable), {
        "ML_PLATFORM_HOME": str(work / "home"), "ML_PLATFORM_REPRODUCTION": "1",
        **({"ML_PLATFORM_KEY_NAMESPACE": "/".join(namespace)} if namespace else {})})
    return CodeLocation("repro_a1b2c3d4e5f6", "tinyproj.defs", "defs", _project(tmp_path / "old_src"), script), work


@pytest.mark.daemon  # production: a real webserver and daemon
def test_refusals_leave_production_as_it_was(production, tmp_path: Path) -> None:
    services, reproductions = production
    # a location whose keys are not namespaced (an older library) is refused before production sees it
    plain, work = _old_commit(tmp_path, namespace=())
    with pytest.raises(ReproductionFailed, match="not all under repro/a1b2c3d4e5f6.*collide"):
        check_namespaced(definition_keys(plain), NAMESPACE)
    # a workspace file production does not load: named, and the entry taken out again
    elsewhere = tmp_path / "elsewhere.yaml"
    target = BesideProduction(services.url, elsewhere, daemon_refresh_seconds=0)
    location, _ = _old_commit(tmp_path / "again")
    with pytest.raises(ReproductionFailed, match=f"does not load {elsewhere}: start its webserver and daemon with -w"):
        ProductionDagster(target, location, logs=work / "logs").__enter__()
    assert ReproductionWorkspace(elsewhere).names() == []
    # definitions that do not load in the old environment: their error, before anything is added
    (location.working_directory / "tinyproj" / "defs.py").write_text("raise RuntimeError('broken at A')\n")
    with pytest.raises(ReproductionFailed, match="broken at A"):
        definition_keys(location)
    # a production webserver that does not answer
    dead = BesideProduction("http://127.0.0.1:9", reproductions, daemon_refresh_seconds=0)
    with pytest.raises(ReproductionFailed, match="does not answer at http://127.0.0.1:9"):
        ProductionDagster(dead, location, logs=work / "logs").__enter__()
    assert ReproductionWorkspace(reproductions).names() == []


def test_the_reproductions_workspace_keeps_concurrent_entries(tmp_path: Path) -> None:
    path = tmp_path / "reproductions.yaml"
    locations = [CodeLocation(f"repro_{i:02d}", "tinyproj.defs", "defs", tmp_path, Path(sys.executable))
                 for i in range(16)]
    threads = [threading.Thread(target=ReproductionWorkspace(path).add, args=(loc,)) for loc in locations]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    workspace = ReproductionWorkspace(path)
    assert sorted(workspace.names()) == [loc.name for loc in locations]
    entry = yaml.safe_load(path.read_text())["load_from"][0]["python_module"]
    assert set(entry) == {"module_name", "attribute", "location_name", "working_directory", "executable_path"}
    with pytest.raises(ReproductionFailed, match="already in .*another reproduction of this commit"):
        workspace.add(locations[3])
    workspace.remove("repro_03")
    assert "repro_03" not in workspace.names() and len(workspace.names()) == 15
    path.write_text("something: else\n")
    with pytest.raises(ConfigurationError, match="not a workspace file"):
        workspace.names()


def test_the_interpreter_replaces_productions_settings(tmp_path: Path) -> None:
    import subprocess

    script = interpreter_script(tmp_path / "python.sh", Path(sys.executable), {"ML_PLATFORM_HOME": "/work/x y"})
    env = {**os.environ, "ML_PLATFORM_STORAGE": "s3://production", "ML_PLATFORM_MLFLOW_TRACKING_URI": "postgresql://p"}
    code = "import os, json; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('ML_PLATFORM_')}))"
    out = subprocess.run([str(script), "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == '{"ML_PLATFORM_HOME": "/work/x y"}'


def test_bad_targets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="http"):
        BesideProduction("127.0.0.1:3000", tmp_path / "r.yaml")
    with pytest.raises(ConfigurationError, match=".yaml"):
        BesideProduction("http://127.0.0.1:3000", tmp_path / "r.txt")
    with pytest.raises(ConfigurationError, match="seconds"):
        BesideProduction("http://127.0.0.1:3000", tmp_path / "r.yaml", daemon_refresh_seconds=-1)


def test_the_interpreter_notes_each_code_server_and_who_started_it(tmp_path: Path) -> None:
    import subprocess

    from ml_platform.reproduce.beside import refreshed_by, server_starts_log

    script = interpreter_script(tmp_path / "python.sh", Path("/bin/true"), {})
    log = server_starts_log(script)
    assert refreshed_by(log) is None
    subprocess.run([str(script), "-m", "dagster", "api", "grpc", "--port", "1"], check=True)
    subprocess.run([str(script), "-m", "dagster", "api", "execute_run", "x"], check=True)  # a run: not a server
    assert refreshed_by(log) is None and len(log.read_text().split()) == 1
    subprocess.run([str(script), "-m", "dagster", "api", "grpc", "--port", "2"], check=True)
    assert refreshed_by(log) == str(os.getpid())
