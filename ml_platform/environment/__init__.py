"""Environment pinning: the environment lock, its diff and policy check, seeds, and git state.

How it works, and why: docs/architecture.md, "ml_platform/environment/__init__.py".
"""

from ml_platform.environment.acceptance import (
    ACCEPTANCE_SCHEMA,
    AcceptanceFile,
    EnvironmentAcceptance,
    EnvironmentVerdict,
    accept_environment,
    decide_environment,
    parse_acceptance,
)
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
    "ACCEPTANCE_SCHEMA",
    "DETERMINISM_ENV_VARS",
    "LOCK_SCHEMA",
    "SEED_LIMIT",
    "AcceptanceFile",
    "BlasLibrary",
    "BuildProvenance",
    "EnvironmentAcceptance",
    "EnvironmentDiff",
    "EnvironmentLock",
    "EnvironmentPolicy",
    "EnvironmentVerdict",
    "GitState",
    "WorkingTreeDiff",
    "accept_environment",
    "capture_environment",
    "check_environment",
    "decide_environment",
    "derive_seed",
    "diff_environments",
    "find_uv_lock",
    "git_state",
    "parse_acceptance",
    "recorded_git",
    "validate_seed",
    "working_tree_diff",
]
