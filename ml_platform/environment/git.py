"""The git state of the working tree: the commit, whether it has uncommitted changes, and their diff.

A model trained from a dirty tree stores :func:`working_tree_diff` at registration, so that a
reproduction can check out the commit and apply it: the exact code, not merely the nearest commit.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ml_platform.errors import ConfigurationError

__all__ = ["DIFF_LIMIT_BYTES", "GitState", "WorkingTreeDiff", "git_state", "working_tree_diff"]

#: A dirty tree's diff larger than this is refused (untracked data files, most likely): commit or ignore them.
DIFF_LIMIT_BYTES = 64 * 1024 * 1024


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


@dataclass(frozen=True)
class WorkingTreeDiff:
    """The uncommitted changes of a checkout, as one binary patch against ``commit``.

    Attributes:
        commit: the HEAD the patch applies to.
        patch: ``git diff --binary`` from HEAD to the working tree, untracked (not ignored) files included;
            empty for a clean tree.
        sha256: ``sha256:<hex>`` of ``patch``.
    """

    commit: str
    patch: bytes

    @property
    def sha256(self) -> str:
        return "sha256:" + hashlib.sha256(self.patch).hexdigest()

    @property
    def dirty(self) -> bool:
        return bool(self.patch)

    def files_holding(self, secrets: Iterable[str]) -> list[str]:
        """The files of the patch whose changes hold any of ``secrets`` (a ``.env`` left untracked, say)."""
        wanted = [secret.encode() for secret in secrets if secret]
        found = []
        for part in re.split(rb"^diff --git ", self.patch, flags=re.MULTILINE):
            if part and any(secret in part for secret in wanted):
                found.append(part.split(b"\n", 1)[0].decode(errors="replace").partition(" b/")[0].removeprefix("a/"))
        return found


def _run(args: list[str], cwd: str, env: dict[str, str] | None, what: str) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigurationError(f"cannot record the uncommitted changes of {cwd}: git could not run ({exc}); "
                                 "commit them and train again") from exc
    if done.returncode != 0:
        raise ConfigurationError(f"cannot record the uncommitted changes of {cwd} ({what}): "
                                 f"{done.stderr.decode(errors='replace').strip()}; commit them and train again")
    return done.stdout


def working_tree_diff(path: str | os.PathLike[str]) -> WorkingTreeDiff | None:
    """The uncommitted changes of the repository holding ``path``, read now (never cached).

    Staged, unstaged and untracked (not ignored) files of the whole repository are diffed against HEAD
    through a temporary index, so the user's own index is left as it was. The patch is byte-stable
    (``--full-index``, no renames, no external diff or text conversion) and applies with ``git apply``.

    Returns:
        None outside a git repository or without git (nothing to record).

    Raises:
        ConfigurationError: git fails on a repository, or the patch exceeds :data:`DIFF_LIMIT_BYTES`
            (named, with what to do).
    """
    where = str(Path(path).resolve())
    top = _git(["rev-parse", "--show-toplevel"], where)
    commit = _git(["rev-parse", "--verify", "HEAD"], where)
    if top is None or commit is None:
        return None
    top = top.strip()
    with tempfile.TemporaryDirectory(prefix="ml_platform_index_") as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _run(["read-tree", "HEAD"], top, env, "read HEAD into a temporary index")
        _run(["add", "--all", "--", "."], top, env, "stage the working tree in the temporary index")
        patch = _run(["-c", "core.quotepath=off", "diff", "--cached", "--binary", "--full-index", "--no-renames",
                      "--no-ext-diff", "--no-textconv", "--no-color", "HEAD"], top, env, "diff against HEAD")
    if len(patch) > DIFF_LIMIT_BYTES:
        raise ConfigurationError(
            f"the uncommitted changes of {top} make a {len(patch) / 2**20:.0f} MiB patch (limit "
            f"{DIFF_LIMIT_BYTES // 2**20} MiB): most likely untracked data files; add them to .gitignore or commit "
            "the code, then train again")
    return WorkingTreeDiff(commit.strip(), patch)
