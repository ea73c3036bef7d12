"""The old commit in the work directory: its code checked out, its environment rebuilt, and the Dagster that runs it.

Two steps of :func:`~ml_platform.reproduce.service.reproduce_version`, each returning a frozen value:
:func:`check_out_code` (the recorded commit and its recorded diff, a virtual environment synced from its
``uv.lock`` and compared with the recorded environment lock) and :func:`old_code_dagster` (the old commit
as a code location whose asset keys are under ``repro/<commit>``, beside production's own location or
in an isolated Dagster in the work directory). Nothing is started here: the Dagster starts when the
caller enters :attr:`OldCodeDagster.services`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ml_platform.environment import DETERMINISM_ENV_VARS, EnvironmentLock, diff_environments
from ml_platform.reproduce.beside import (
    BesideProduction,
    ProductionDagster,
    check_namespaced,
    definition_keys,
    interpreter_script,
)
from ml_platform.reproduce.checkout import build_environment, checkout_commit
from ml_platform.reproduce.compare import Comparison, ComparisonKind
from ml_platform.reproduce.dagster_services import (
    CodeLocation,
    DagsterServices,
    IsolatedDeployment,
    ReproductionDagster,
)
from ml_platform.reproduce.record import ReproductionRecord
from ml_platform.settings import Settings
from ml_platform.workspace import workspace_target

__all__ = ["NAMESPACE_ROOT", "OldCode", "OldCodeDagster", "check_out_code", "old_code_dagster"]

#: The old commit's asset keys live under ``repro/<first 12 hex digits of the commit>``.
NAMESPACE_ROOT = "repro"


@dataclass(frozen=True)
class OldCode:
    """The recorded commit checked out, and its environment rebuilt and compared with the record.

    Attributes:
        source: the checkout (with the recorded diff applied, for a model trained from a dirty tree).
        python: the interpreter of the rebuilt environment.
        recorded: the environment lock the contract records.
        environment: the comparison of the rebuilt environment with ``recorded``.
        differences: every difference found, package by package (``env`` variables left out).
        git_diff_sha256: of the recorded diff applied (None: a clean commit).
        seconds: how long rebuilding the environment took.
    """

    source: Path
    python: Path
    recorded: EnvironmentLock
    environment: Comparison
    differences: tuple[str, ...]
    git_diff_sha256: str | None
    seconds: float


@dataclass(frozen=True)
class OldCodeDagster:
    """The Dagster that runs the old commit, not started yet.

    Attributes:
        settings: the reproduction's own deployment settings (its store and MLflow in the work directory).
        location: the old commit's code location.
        services: production's Dagster with the location beside, or an isolated Dagster.
        namespace: the key prefix the old code is asked to put its asset keys under.
        description: where it runs, in words (the certificate's ``deployment`` fact).
    """

    settings: Settings
    location: CodeLocation
    services: ReproductionDagster
    namespace: tuple[str, ...]
    description: str


def _environment_summary(lock: EnvironmentLock) -> str:
    return (f"{lock.python_implementation} {lock.python_version}, {lock.platform}, uv.lock {lock.uv_lock_hash}, "
            f"{len(lock.package_versions)} packages")


def check_out_code(record: ReproductionRecord, repository: Path, work: Path, *,
                   say: Callable[[str], None]) -> OldCode:
    """Check out the recorded commit into ``work/src`` (its recorded diff applied), sync ``work/venv`` from
    its ``uv.lock`` (whose hash must be the recorded one) and compare the result with the recorded lock."""
    dirty = f" with its recorded diff of uncommitted changes ({len(record.git_diff)} bytes)" if record.git_diff else ""
    say(f"code: commit {record.commit[:12]} of {repository}{dirty}")
    source = checkout_commit(repository, record.commit, work / "src", patch=record.git_diff)
    say("environment: uv sync --frozen of that commit's uv.lock")
    started = time.perf_counter()
    rebuilt = build_environment(source, work / "venv", recorded_lock_hash=str(record.uv_lock_hash),
                                project_root=source)
    seconds = round(time.perf_counter() - started, 2)
    recorded = EnvironmentLock.from_dict(record.contract.environment_lock)
    differences = [d for d in diff_environments(recorded, rebuilt.lock).differences if not d.startswith("env ")]
    shown = "; ".join(differences[:5]) + (f" (+{len(differences) - 5} more)" if len(differences) > 5 else "")
    comparison = Comparison(ComparisonKind.ENVIRONMENT, "environment (python, platform, uv.lock, packages, BLAS)",
                            _environment_summary(recorded), _environment_summary(rebuilt.lock), shown or None)
    git_diff_sha256 = "sha256:" + hashlib.sha256(record.git_diff).hexdigest() if record.git_diff else None
    return OldCode(source, rebuilt.python, recorded, comparison, tuple(differences), git_diff_sha256, seconds)


def _definitions_target(source: Path, defs: str | None) -> tuple[str, str]:
    target = defs or workspace_target(source / "workspace.yaml")
    module, _, attribute = target.partition(":")
    return module, attribute or "defs"


def old_code_dagster(record: ReproductionRecord, code: OldCode, work: Path, *, defs: str | None,
                     beside: BesideProduction | None, say: Callable[[str], None]) -> OldCodeDagster:
    """The old commit as a code location run by the rebuilt environment with the recorded determinism
    variables, its keys under ``repro/<commit>``: beside production's location (its keys checked first,
    before production's Dagster sees it), or in an isolated Dagster in ``work``."""
    settings = Settings.local(work / "home")
    deterministic = {name: value for name, value in code.recorded.env_vars if value is not None}
    module, attribute = _definitions_target(code.source, defs)
    namespace = (NAMESPACE_ROOT, record.commit[:12])
    old_env = {
        "ML_PLATFORM_HOME": str(settings.home), "ML_PLATFORM_DEPLOYMENT": "local", "ML_PLATFORM_ENV_POLICY": "warn",
        "ML_PLATFORM_REPRODUCTION": "1", "ML_PLATFORM_KEY_NAMESPACE": "/".join(namespace),
        **{k: v for k, v in deterministic.items() if k in DETERMINISM_ENV_VARS}}
    name = f"repro_{record.commit[:12]}"
    if beside is not None:
        location = CodeLocation(name, module, attribute, code.source,
                                interpreter_script(work / "python.sh", code.python, old_env))
        say(f"code location {location.name}: the old commit's definitions, keys under {'/'.join(namespace)}")
        check_namespaced(definition_keys(location), namespace)  # before production's Dagster sees it
        return OldCodeDagster(settings, location, ProductionDagster(beside, location, logs=work / "logs"), namespace,
                              f"beside production's code location ({beside.url})")
    location = CodeLocation(name, module, attribute, code.source, code.python)
    return OldCodeDagster(settings, location, DagsterServices(IsolatedDeployment(work, location, env=old_env)),
                          namespace, "an isolated Dagster instance in the work directory")
