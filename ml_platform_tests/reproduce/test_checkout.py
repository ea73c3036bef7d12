"""The work directory, the checkout of the recorded commit and the lock check, on real git repositories."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from ml_platform.environment import working_tree_diff
from ml_platform.errors import ConfigurationError, ReproductionFailed
from ml_platform.reproduce.checkout import build_environment, check_workdir, checkout_commit, repository_root


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a",
                               "GIT_COMMITTER_EMAIL": "a@x", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str, str]:
    root = tmp_path / "project"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    (root / "feature.py").write_text("LOOKBACK = 5\n")
    (root / "uv.lock").write_text("version = 1\n")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "A")
    first = _git(root, "rev-parse", "HEAD")
    (root / "feature.py").write_text("LOOKBACK = 10\n")
    _git(root, "commit", "-q", "-am", "B")
    return root, first, _git(root, "rev-parse", "HEAD")


def test_the_recorded_commit_is_checked_out_whatever_came_after(repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, first, latest = repo
    target = checkout_commit(root, first, tmp_path / "work" / "src")
    assert (target / "feature.py").read_text() == "LOOKBACK = 5\n"
    assert _git(target, "rev-parse", "HEAD") == first
    assert _git(root, "rev-parse", "HEAD") == latest and (root / "feature.py").read_text() == "LOOKBACK = 10\n"
    assert _git(root, "worktree", "list").count("\n") == 0  # the repository's own worktree list is untouched


def test_a_commit_not_in_the_repository_is_named(repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = repo
    missing = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(ReproductionFailed, match=f"commit {missing} is not in the repository"):
        checkout_commit(root, missing, tmp_path / "work" / "src")
    assert not (tmp_path / "work").exists()


def test_no_git_repository_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ReproductionFailed, match="not inside a git repository"):
        repository_root(plain)


def test_a_changed_lock_is_refused_before_anything_is_installed(repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, first, _ = repo
    source = checkout_commit(root, first, tmp_path / "work" / "src")
    recorded = "sha256:" + hashlib.sha256(b"version = 1\n# another lock\n").hexdigest()
    actual = "sha256:" + hashlib.sha256(b"version = 1\n").hexdigest()
    with pytest.raises(ReproductionFailed, match=f"hashes to {actual}, not the recorded {recorded}"):
        build_environment(source, tmp_path / "work" / "venv", recorded_lock_hash=recorded, project_root=source)
    assert not (tmp_path / "work" / "venv").exists()
    (source / "uv.lock").unlink()
    with pytest.raises(ReproductionFailed, match="has no uv.lock"):
        build_environment(source, tmp_path / "work" / "venv", recorded_lock_hash=recorded, project_root=source)


def test_the_work_directory_must_be_new_or_empty(tmp_path: Path) -> None:
    assert check_workdir(tmp_path / "new").is_dir()
    assert check_workdir(tmp_path / "new") == (tmp_path / "new").resolve()  # empty: accepted
    (tmp_path / "new" / "mine.txt").write_text("keep")
    with pytest.raises(ConfigurationError, match="exists and is not empty"):
        check_workdir(tmp_path / "new")
    assert (tmp_path / "new" / "mine.txt").read_text() == "keep"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="is a file"):
        check_workdir(tmp_path / "file")


def test_a_dirty_tree_is_rebuilt_from_its_recorded_diff(repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, first, _ = repo
    _git(root, "-c", "advice.detachedHead=false", "checkout", "-q", first)
    (root / "feature.py").write_text("LOOKBACK = 7  # uncommitted\n")  # modified, tracked
    (root / "extra.py").write_text("NEW = True\n")  # untracked, not ignored
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4)  # binary
    (root / "uv.lock").unlink()  # deleted
    _git(root, "add", "extra.py")  # staged or not: both are in the diff, the user's index is not touched
    index_before = (root / ".git" / "index").read_bytes()
    recorded = working_tree_diff(root)
    assert recorded is not None and recorded.commit == first and recorded.dirty
    assert (root / ".git" / "index").read_bytes() == index_before
    assert working_tree_diff(root).patch == recorded.patch  # byte-stable

    target = checkout_commit(root, first, tmp_path / "work" / "src", patch=recorded.patch)
    assert (target / "feature.py").read_text() == "LOOKBACK = 7  # uncommitted\n"
    assert (target / "extra.py").read_text() == "NEW = True\n"
    assert (target / "blob.bin").read_bytes() == bytes(range(256)) * 4
    assert not (target / "uv.lock").exists()
    assert _git(target, "rev-parse", "HEAD") == first


def test_a_clean_tree_has_an_empty_diff_and_no_repository_none(repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, _, latest = repo
    clean = working_tree_diff(root)
    assert clean is not None and clean.commit == latest and not clean.dirty and clean.patch == b""
    plain = tmp_path / "plain"
    plain.mkdir()
    assert working_tree_diff(plain) is None


def test_a_diff_that_does_not_apply_is_refused(repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, first, _ = repo
    (root / "feature.py").write_text("LOOKBACK = 11\n")
    against_latest = working_tree_diff(root)
    assert against_latest is not None
    with pytest.raises(ReproductionFailed, match="apply the recorded diff of uncommitted changes"):
        checkout_commit(root, first, tmp_path / "work" / "src", patch=against_latest.patch)
