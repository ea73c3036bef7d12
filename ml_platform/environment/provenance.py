"""Build provenance: the commit, dirty flag and image digest a container image was built from.

How it works, and why: docs/architecture.md, "ml_platform/environment/provenance.py".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ml_platform.environment.git import GitState
from ml_platform.errors import ConfigurationError, ProvenanceError

__all__ = [
    "COMMIT_ENV",
    "DIRTY_ENV",
    "IMAGE_DIGEST_ENV",
    "BuildProvenance",
    "recorded_git",
]

COMMIT_ENV = "ML_PLATFORM_GIT_COMMIT"
DIRTY_ENV = "ML_PLATFORM_GIT_DIRTY"
IMAGE_DIGEST_ENV = "ML_PLATFORM_IMAGE_DIGEST"

_COMMIT = re.compile(r"[0-9a-f]{40}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def check_commit(value: str) -> str:
    """``value`` if it is a 40-hex git commit, else a ConfigurationError saying how to pass one."""
    if not isinstance(value, str) or not _COMMIT.fullmatch(value):
        raise ConfigurationError(
            f"{COMMIT_ENV}={value!r}: give the 40-hex commit the image was built from "
            "(docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD))")
    return value


def check_image_digest(value: str) -> str:
    """``value`` if it is ``sha256:<64 hex>``, else a ConfigurationError saying where the digest comes from."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise ConfigurationError(
            f"{IMAGE_DIGEST_ENV}={value!r}: give the image's digest as sha256:<64 hex digits> (the deployment sets "
            "it from the pulled image, e.g. the @sha256:... part of the image reference)")
    return value


@dataclass(frozen=True)
class BuildProvenance:
    """What the build of the running image says about its code: commit, dirty flag, image digest.

    Attributes:
        commit: the 40-hex git commit the image was built from (None: not given).
        dirty: whether the tree it was built from had uncommitted changes (None: not given).
        image_digest: the container image's digest, ``sha256:<64 hex>`` (None: not in an image, or not given).
    """

    commit: str | None = None
    dirty: bool | None = None
    image_digest: str | None = None

    def __post_init__(self) -> None:
        if self.commit is not None:
            check_commit(self.commit)
        if self.image_digest is not None:
            check_image_digest(self.image_digest)
        if self.dirty is not None and not isinstance(self.dirty, bool):
            raise ConfigurationError(f"{DIRTY_ENV}={self.dirty!r}: use 1 or 0")
        if self.dirty is not None and self.commit is None:
            raise ConfigurationError(f"{DIRTY_ENV} is set but {COMMIT_ENV} is not: a dirty flag describes a commit; "
                                     f"set {COMMIT_ENV} to the commit the image was built from, or unset {DIRTY_ENV}")

    @classmethod
    def parse(cls, commit: str | None, dirty: str | None, image_digest: str | None) -> BuildProvenance:
        """The provenance from the text of the three variables (None or blank: unset).

        Raises:
            ConfigurationError: a value is malformed, or a dirty flag is given without a commit; the message
                names the variable and what to give.
        """
        commit = (commit or "").strip() or None
        digest = (image_digest or "").strip() or None
        flag = (dirty or "").strip()
        if flag not in ("", "0", "1"):
            raise ConfigurationError(f"{DIRTY_ENV}={dirty!r}: use 1 (the image was built from a tree with "
                                     "uncommitted changes) or 0 (a clean commit)")
        return cls(commit=commit, dirty=None if not flag else flag == "1", image_digest=digest)


def recorded_git(checkout: GitState, build: BuildProvenance, *, require_commit: bool, where: str) -> GitState:
    """The git state a write records: the checkout's where there is one, else the build's.

    A checkout is observed, the build's variables are a claim: where both name a commit they must agree (a
    different one means the variables describe another build), and the dirty flag is the checkout's (it
    is read now). Without a checkout, the build's commit and dirty flag (0 when not given) are recorded.

    Args:
        checkout: the git state of the project root (commit None: no repository there).
        build: the build provenance of the running image.
        require_commit: refuse a write that would record no commit (production).
        where: the project root, named in messages.

    Raises:
        ProvenanceError: the two commits differ, or ``require_commit`` and neither names one.
    """
    if checkout.commit is not None:
        if build.commit is not None and build.commit != checkout.commit:
            raise ProvenanceError(
                f"{COMMIT_ENV}={build.commit} but the project root {where} is a git checkout at {checkout.commit}: "
                f"the variable describes another build. Unset {COMMIT_ENV} to record the checkout's commit, or "
                "run the image it was built for")
        return checkout
    if build.commit is not None:
        return GitState(build.commit, bool(build.dirty))
    if require_commit:
        raise ProvenanceError(
            f"a production artefact would be written without a git commit: the project root {where} is no git "
            f"checkout and {COMMIT_ENV} is unset, so the code that made it could never be recovered. Build the "
            f"image with the commit (docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD), then "
            f"ENV {COMMIT_ENV}=$GIT_COMMIT) or run from a checkout")
    return checkout
