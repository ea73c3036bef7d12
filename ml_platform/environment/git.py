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
    """The git state of the repository containing ``path`` (the user's project root), cached.

    ``path`` is the folder of the project whose code produced the data (a feature graph's
    ``project_root``); the default is the working directory. Without git or outside a repository the
    commit is None and dirty is False.
    """
    return _git_state_cached(str(Path(path if path is not None else Path.cwd()).resolve()))
