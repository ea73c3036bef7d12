"""Environment pinning: the environment lock, its diff and policy check, seeds, and git state.

How it works, and why: docs/architecture.md, "ml_platform/environment/__init__.py".
"""

from ml_platform.environment.diff import (
    EnvironmentDiff,
    EnvironmentPolicy,
    check_environment,
    diff_environments,
)
from ml_platform.environment.git import GitState, WorkingTreeDiff, git_state, working_tree_diff
from ml_platform.environment.lock import (
    DETERMINISM_ENV_VARS,
    LOCK_SCHEMA,
    BlasLibrary,
    EnvironmentLock,
    capture_environment,
    find_uv_lock,
)
from ml_platform.environment.provenance import BuildProvenance, recorded_git
from ml_platform.environment.seeds import SEED_LIMIT, derive_seed, validate_seed

__all__ = [
    "DETERMINISM_ENV_VARS",
    "LOCK_SCHEMA",
    "SEED_LIMIT",
    "BlasLibrary",
    "BuildProvenance",
    "EnvironmentDiff",
    "EnvironmentLock",
    "EnvironmentPolicy",
    "GitState",
    "WorkingTreeDiff",
    "capture_environment",
    "check_environment",
    "derive_seed",
    "diff_environments",
    "find_uv_lock",
    "git_state",
    "recorded_git",
    "validate_seed",
    "working_tree_diff",
]
