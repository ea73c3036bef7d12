"""The git state of the working tree: the commit and whether it has uncommitted changes."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GitState", "git_state"]


@dataclass(frozen=True)
class GitState:
    """The git commit of the working tree and whether it has uncommitted changes (None: not a repo)."""

    commit: str | None
    dirty: bool


def _git(args: list[str], cwd: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@functools.lru_cache(maxsize=32)
def _git_state_cached(path: str) -> GitState:
    commit = _git(["rev-parse", "--verify", "HEAD"], path)
    if commit is None:
        return GitState(None, False)
    status = _git(["status", "--porcelain"], path)
    return GitState(commit.strip(), bool(status and status.strip()))


def git_state(path: str | os.PathLike[str] | None = None) -> GitState:
    """The git state of the repository containing ``path``, cached.

    The default is the repository holding the ``ml_platform`` code itself (what produced the data),
    falling back to the working directory when the package is not in a checkout (an installed wheel).
    Without git or outside a repository the commit is None and dirty is False.
    """
    if path is None:
        code = _git_state_cached(str(Path(__file__).resolve().parent))
        if code.commit is not None:
            return code
        path = Path.cwd()
    return _git_state_cached(str(Path(path).resolve()))
