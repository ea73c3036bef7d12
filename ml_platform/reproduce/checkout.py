"""The recorded code and environment, rebuilt inside the work directory.

How it works, and why: docs/architecture.md, "ml_platform/reproduce/checkout.py".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ml_platform.environment import EnvironmentLock, working_tree_diff
from ml_platform.errors import ConfigurationError, ReproductionFailed

__all__ = ["RebuiltEnvironment", "build_environment", "check_workdir", "checkout_commit", "repository_root"]

_CAPTURE = ("import json, sys; from ml_platform.environment import capture_environment; "
            "print(json.dumps(capture_environment(sys.argv[1]).to_dict()))")


def check_workdir(workdir: str | os.PathLike[str]) -> Path:
    """The work directory, created; it must not exist or be an empty directory.

    Raises:
        ConfigurationError: it is a file, or a directory that is not empty (named; left untouched).
    """
    path = Path(workdir).resolve()
    if path.exists():
        if not path.is_dir():
            raise ConfigurationError(f"--workdir {path} is a file; name a new or empty directory")
        if any(path.iterdir()):
            raise ConfigurationError(f"--workdir {path} exists and is not empty; name a new or empty directory "
                                     "(a reproduction never writes over anything)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _git(args: list[str], cwd: Path, what: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=str(cwd), capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ReproductionFailed(f"{what}: git could not run: {exc}") from exc
    if done.returncode != 0:
        raise ReproductionFailed(f"{what}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def repository_root(path: str | os.PathLike[str]) -> Path:
    """The top of the git repository holding ``path``.

    Raises:
        ReproductionFailed: ``path`` is not inside a git repository.
    """
    start = Path(path).resolve()
    try:
        done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=str(start), capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ReproductionFailed(f"git could not run in {start}: {exc}") from exc
    if done.returncode != 0:
        raise ReproductionFailed(f"{start} is not inside a git repository; reproduce from the project's repository "
                                 "(--repo PATH)")
    return Path(done.stdout.strip())


def checkout_commit(repo: Path, commit: str, target: Path, *, patch: bytes | None = None) -> Path:
    """Clone ``repo`` into ``target``, check out ``commit`` (detached) and apply ``patch`` if given.

    Args:
        patch: the recorded uncommitted changes (``working_tree_diff`` at training time); after applying it
            the checkout's own diff against ``commit`` must be byte for byte that patch.

    Raises:
        ReproductionFailed: the commit is not in the repository (named), the patch does not apply or does
            not give back the recorded tree, or git fails.
    """
    probe = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=str(repo), capture_output=True,
                           timeout=30, check=False)
    if probe.returncode != 0:
        raise ReproductionFailed(f"commit {commit} is not in the repository {repo}: it was never fetched here, or "
                                 "history was rewritten; fetch it (git fetch origin {commit}) and retry"
                                 .replace("{commit}", commit))
    _git(["clone", "--quiet", "--shared", "--no-checkout", str(repo), str(target)], repo.parent, f"clone {repo}")
    _git(["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", commit], target,
         f"check out {commit[:12]}")
    if patch:
        _apply(target, commit, patch)
    return target


def _apply(target: Path, commit: str, patch: bytes) -> None:
    recorded = "sha256:" + hashlib.sha256(patch).hexdigest()
    patch_file = target.parent / f"{target.name}.git.diff"  # beside the checkout: not part of its tree
    patch_file.write_bytes(patch)
    _git(["apply", "--binary", "--whitespace=nowarn", str(patch_file)], target,
         f"apply the recorded diff of uncommitted changes ({recorded}) to {commit[:12]}")
    try:
        applied = working_tree_diff(target)
    except ConfigurationError as exc:
        raise ReproductionFailed(f"the checkout of {commit[:12]} with the recorded diff applied cannot be diffed "
                                 f"again: {exc}") from exc
    if applied is None or applied.sha256 != recorded:
        raise ReproductionFailed(f"the recorded diff {recorded} applied to {commit[:12]} gives a tree whose diff is "
                                 f"{applied.sha256 if applied else 'unreadable'}: the patch does not rebuild the tree "
                                 "the model was trained from")


@dataclass(frozen=True)
class RebuiltEnvironment:
    """The rebuilt virtual environment and what it holds."""

    venv: Path
    python: Path
    lock: EnvironmentLock
    uv_lock: Path


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def build_environment(source: Path, venv: Path, *, recorded_lock_hash: str, project_root: Path) -> RebuiltEnvironment:
    """``uv sync --frozen`` the checkout's lock into ``venv``, then capture the environment with its python.

    Raises:
        ReproductionFailed: the checkout has no ``uv.lock``, its hash is not the recorded one (both named),
            the sync fails (uv's message), or the rebuilt interpreter cannot capture its environment.
    """
    lock = source / "uv.lock"
    if not lock.exists():
        raise ReproductionFailed(f"the checkout {source} has no uv.lock at its root: the environment cannot be rebuilt")
    actual = "sha256:" + hashlib.sha256(lock.read_bytes()).hexdigest()
    if actual != recorded_lock_hash:
        raise ReproductionFailed(f"the uv.lock of the recorded commit hashes to {actual}, not the recorded "
                                 f"{recorded_lock_hash}: the model was trained from another lock")
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}}
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    try:
        done = subprocess.run([*_uv(), "sync", "--frozen", "--quiet"], cwd=str(source), env=env, capture_output=True,
                              text=True, timeout=1800, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ReproductionFailed(f"uv could not run: {exc}") from exc
    if done.returncode != 0:
        raise ReproductionFailed(f"uv sync --frozen of the recorded lock failed: {done.stderr.strip()[-2000:]}")
    python = venv / "bin" / "python"
    captured = subprocess.run([str(python), "-c", _CAPTURE, str(project_root)], cwd=str(project_root),
                              capture_output=True, text=True, timeout=300, check=False,
                              env={k: v for k, v in env.items() if not k.startswith("PYTHON")})
    if captured.returncode != 0:
        raise ReproductionFailed(f"the rebuilt environment cannot capture itself: {captured.stderr.strip()[-2000:]}")
    try:
        rebuilt = EnvironmentLock.from_dict(json.loads(captured.stdout.strip().splitlines()[-1]))
    except (ValueError, KeyError, IndexError, ConfigurationError) as exc:
        raise ReproductionFailed(f"the rebuilt environment's capture is unreadable: {exc}") from exc
    return RebuiltEnvironment(venv, python, rebuilt, lock)
