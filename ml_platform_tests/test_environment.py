"""Environment lock capture, diff and policy; seeds; git state."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import uuid
from pathlib import Path

import pytest

from ml_platform.environment import (
    DETERMINISM_ENV_VARS,
    SEED_LIMIT,
    EnvironmentLock,
    EnvironmentPolicy,
    GitState,
    capture_environment,
    check_environment,
    derive_seed,
    diff_environments,
    find_uv_lock,
    git_state,
    validate_seed,
    working_tree_diff,
)
from ml_platform.environment.lock import _capture
from ml_platform.errors import ConfigurationError, EnvironmentMismatch
from ml_platform.redact import secret_name


def with_package(lock: EnvironmentLock, name: str, version: str | None) -> EnvironmentLock:
    """The lock with one package set to ``version`` (None removes it)."""
    packages = dict(lock.packages)
    if version is None:
        packages.pop(name)
    else:
        packages[name] = version
    return dataclasses.replace(lock, packages=tuple(sorted(packages.items())))


def test_capture_records_the_running_environment() -> None:
    import numpy
    import polars

    lock = capture_environment()
    versions = lock.package_versions
    assert versions["polars"] == polars.__version__
    assert versions["numpy"] == numpy.__version__
    assert versions["ml-platform"]  # the project itself, normalized name
    assert lock.python_implementation == "cpython"
    assert lock.uv_lock_hash is not None and lock.uv_lock_hash.startswith("sha256:")
    assert lock.blas and all(lib.num_threads >= 1 for lib in lock.blas)  # numpy's own BLAS only
    assert {name for name, _ in lock.env_vars} == set(DETERMINISM_ENV_VARS)
    assert capture_environment() is lock  # cached per process
    assert lock.hash.startswith("sha256:") and len(lock.hash) == len("sha256:") + 64


def test_lock_round_trips_through_its_dict_form() -> None:
    lock = capture_environment()
    again = EnvironmentLock.from_dict(lock.to_dict())
    assert again == lock
    assert again.hash == lock.hash


def test_hash_changes_with_any_recorded_fact() -> None:
    lock = capture_environment()
    assert with_package(lock, "polars", "0.0.1").hash != lock.hash
    assert dataclasses.replace(lock, uv_lock_hash=None).hash != lock.hash
    before = dict(lock.env_vars)["OMP_NUM_THREADS"]
    changed = f"{before or ''}7"  # differs from whatever the running process has
    env = tuple((name, changed if name == "OMP_NUM_THREADS" else value) for name, value in lock.env_vars)
    assert dataclasses.replace(lock, env_vars=env).hash != lock.hash


def test_from_dict_refuses_other_records() -> None:
    with pytest.raises(ConfigurationError, match="not an environment lock"):
        EnvironmentLock.from_dict({"schema": "something/v9"})
    broken = capture_environment().to_dict()
    del broken["platform"]
    with pytest.raises(ConfigurationError, match="malformed environment lock"):
        EnvironmentLock.from_dict(broken)


def test_unsorted_packages_are_refused() -> None:
    lock = capture_environment()
    with pytest.raises(ConfigurationError, match="sorted"):
        dataclasses.replace(lock, packages=tuple(reversed(lock.packages)))


def test_diff_lists_each_difference_from_a_to_b() -> None:
    lock = capture_environment()
    other = with_package(
        with_package(with_package(lock, "polars", "2.0.0"), "numpy", None), "extra-pkg", "1.0"
    )
    other = dataclasses.replace(other, python_version="3.11.0", uv_lock_hash=None)
    diff = diff_environments(lock, other)
    polars_version = lock.package_versions["polars"]
    assert f"package polars: {polars_version} -> 2.0.0" in diff.differences
    assert f"package numpy: {lock.package_versions['numpy']} -> (absent)" in diff.differences
    assert "package extra-pkg: (absent) -> 1.0" in diff.differences
    assert f"python: cpython {lock.python_version} -> cpython 3.11.0" in diff.differences
    assert f"uv.lock: {lock.uv_lock_hash} -> (absent)" in diff.differences
    assert len(diff.differences) == 5
    assert diff_environments(lock, lock).is_empty


def test_diff_reports_blas_and_env_var_changes() -> None:
    lock = capture_environment()
    blas = tuple(dataclasses.replace(lib, num_threads=lib.num_threads + 7) for lib in lock.blas)
    before = dict(lock.env_vars)["POLARS_MAX_THREADS"]
    changed = f"{before or ''}3"  # differs from whatever the running process has
    env = tuple((name, changed if name == "POLARS_MAX_THREADS" else value) for name, value in lock.env_vars)
    other = dataclasses.replace(lock, blas=blas, env_vars=env)
    lines = diff_environments(lock, other).differences
    assert any(line.startswith("blas openblas num_threads: ") for line in lines)
    assert f"env POLARS_MAX_THREADS: {before or '(unset)'} -> {changed}" in lines


def test_strict_policy_refuses_naming_the_artefact_and_each_difference() -> None:
    running = capture_environment()
    stored = with_package(with_package(running, "polars", "0.0.1"), "pyarrow", "1.0.0")
    with pytest.raises(EnvironmentMismatch) as caught:
        check_environment(stored, running, EnvironmentPolicy.STRICT, "features/momentum partition 2012-01-03")
    message = str(caught.value)
    assert "features/momentum partition 2012-01-03" in message
    assert f"package polars: 0.0.1 -> {running.package_versions['polars']}" in message
    assert f"package pyarrow: 1.0.0 -> {running.package_versions['pyarrow']}" in message


def test_warn_policy_logs_and_returns_the_diff(caplog: pytest.LogCaptureFixture) -> None:
    running = capture_environment()
    stored = with_package(running, "polars", "0.0.1")
    with caplog.at_level(logging.WARNING, logger="ml_platform.environment"):
        diff = check_environment(stored, running, "warn", "momentum")
    assert diff.differences == (f"package polars: 0.0.1 -> {running.package_versions['polars']}",)
    assert "momentum" in caplog.text and "package polars" in caplog.text


def test_off_policy_does_not_compare() -> None:
    running = capture_environment()
    assert check_environment(with_package(running, "polars", "0.0.1"), running, "off", "x").is_empty


def test_identical_environments_pass_under_strict() -> None:
    running = capture_environment()
    assert check_environment(EnvironmentLock.from_dict(running.to_dict()), running, "strict", "x").is_empty


def test_policy_parsing() -> None:
    assert EnvironmentPolicy.parse("STRICT") is EnvironmentPolicy.STRICT
    assert EnvironmentPolicy.parse(EnvironmentPolicy.OFF) is EnvironmentPolicy.OFF
    with pytest.raises(ConfigurationError, match="strict, warn, off"):
        EnvironmentPolicy.parse("lenient")


def test_derive_seed_is_deterministic_and_separates_its_inputs() -> None:
    seed = derive_seed("sha256:abc", "2012-01-03")
    assert seed == derive_seed("sha256:abc", "2012-01-03", "default")
    assert 0 <= seed < 2**63
    others = {
        derive_seed("sha256:abd", "2012-01-03"),
        derive_seed("sha256:abc", "2012-01-04"),
        derive_seed("sha256:abc", "2012-01-03", "bootstrap"),
        derive_seed("sha256:abc", None),
        derive_seed("sha256:abc", ""),
    }
    assert seed not in others and len(others) == 5
    # pinned value: the derivation is part of the reproducibility contract and must never drift
    assert seed == 6474287347342849760


def test_derive_seed_refuses_bad_inputs() -> None:
    with pytest.raises(ConfigurationError, match="graph hash"):
        derive_seed("", "2012-01-03")
    with pytest.raises(ConfigurationError, match="seed name"):
        derive_seed("sha256:abc", None, "")


def test_validate_seed_accepts_63_bit_integers_and_refuses_the_rest() -> None:
    assert validate_seed("init", 0) == 0
    assert validate_seed("init", SEED_LIMIT - 1) == SEED_LIMIT - 1
    for bad in (-1, SEED_LIMIT, True, 1.0, "7", None):
        with pytest.raises(ConfigurationError, match=r"seed 'init' must be an integer in \[0, 2\*\*63\)"):
            validate_seed("init", bad)
    with pytest.raises(ConfigurationError, match="seed names must be non-empty strings"):
        validate_seed("", 1)


def test_find_uv_lock_walks_upward(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text("version = 1\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_uv_lock(nested) == tmp_path / "uv.lock"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_git_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # git must not find a repository above tmp_path, whatever machine this runs on
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_state(outside) == GitState(None, False)  # not a checkout: recorded as absent
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
    state = git_state(repo)
    assert state.commit == head.stdout.strip() and state.dirty is False
    dirty_repo = tmp_path / "dirty"
    subprocess.run(["git", "clone", "-q", str(repo), str(dirty_repo)], check=True, capture_output=True)
    (dirty_repo / "a.py").write_text("x = 2\n")
    assert git_state(dirty_repo).dirty is True


def test_no_recorded_variable_names_a_secret() -> None:
    """A lock is written into every manifest and model version: a future addition to the list must not be a
    variable that holds a password, key, token or URL (``secret_name`` says which names do)."""
    assert [name for name in DETERMINISM_ENV_VARS if secret_name(name)] == []


def test_a_lock_records_none_of_the_secrets_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    mark = f"s3cr3t-{uuid.uuid4().hex}"
    secrets = {"AWS_SECRET_ACCESS_KEY": mark, "PGPASSWORD": mark, "ML_PLATFORM_PAGERDUTY_ROUTING_KEY": mark,
               "ML_PLATFORM_SLACK_WEBHOOK_URL": f"http://127.0.0.1:9/{mark}",
               "ML_PLATFORM_LEDGER_URL": f"postgresql+psycopg://ml:{mark}@127.0.0.1:5432/mlflow",
               "TZ": f"postgresql://ml:{mark}@db/x"}  # a recorded name, mis-set to a URL with a password
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    lock = _capture.__wrapped__(None, str(Path.cwd()))  # not the per-process cache: this environment, now
    recorded = json.dumps(lock.to_dict())
    assert mark not in recorded
    assert dict(lock.env_vars)["TZ"] == "postgresql://ml:***@db/x"


def test_a_diff_names_the_files_that_hold_a_secret(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q",
                    "--allow-empty", "-m", "init"], check=True)
    mark = f"s3cr3t-{uuid.uuid4().hex}"
    (tmp_path / "features.py").write_text("LOOKBACK = 21\n")
    (tmp_path / ".env").write_text(f"PGPASSWORD={mark}\n")
    tree = working_tree_diff(tmp_path)
    assert tree is not None and tree.dirty
    assert tree.files_holding([mark, "not-there-at-all"]) == [".env"]
    assert tree.files_holding(["not-there-at-all"]) == []
