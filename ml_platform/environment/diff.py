"""Comparing environment locks, and the policy that decides what a difference means.

``strict`` refuses a stored artefact produced in another environment (production, reproduction),
``warn`` logs and records the differences (the embedded default), ``off`` does not compare.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ml_platform.environment.lock import EnvironmentLock
from ml_platform.errors import ConfigurationError, EnvironmentMismatch

__all__ = ["EnvironmentDiff", "EnvironmentPolicy", "check_environment", "diff_environments"]

logger = logging.getLogger("ml_platform.environment")

_ABSENT = "(absent)"


@dataclass(frozen=True)
class EnvironmentDiff:
    """The differences between two locks as human-readable ``"what: old -> new"`` lines."""

    differences: tuple[str, ...]

    @property
    def is_empty(self) -> bool:
        """True when the two locks are identical."""
        return not self.differences

    def __str__(self) -> str:
        return "no differences" if self.is_empty else "\n".join(self.differences)


def _show(value: object) -> str:
    return _ABSENT if value is None else str(value)


def _diff_mapping(label: str, old: Mapping[str, Any], new: Mapping[str, Any], unset: str) -> list[str]:
    lines = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name, unset), new.get(name, unset)
        before, after = unset if before is None else before, unset if after is None else after
        if before != after:
            lines.append(f"{label} {name}: {before} -> {after}")
    return lines


def diff_environments(a: EnvironmentLock, b: EnvironmentLock) -> EnvironmentDiff:
    """List every difference from lock ``a`` to lock ``b`` (``"package polars: 2.1.0 -> 2.0.0"``)."""
    lines: list[str] = []
    python_a = f"{a.python_implementation} {a.python_version}"
    python_b = f"{b.python_implementation} {b.python_version}"
    if python_a != python_b:
        lines.append(f"python: {python_a} -> {python_b}")
    if a.platform != b.platform:
        lines.append(f"platform: {a.platform} -> {b.platform}")
    if a.uv_lock_hash != b.uv_lock_hash:
        lines.append(f"uv.lock: {_show(a.uv_lock_hash)} -> {_show(b.uv_lock_hash)}")
    lines += _diff_mapping("package", a.package_versions, b.package_versions, _ABSENT)
    blas_a = {lib.internal_api: lib.to_dict() for lib in a.blas}
    blas_b = {lib.internal_api: lib.to_dict() for lib in b.blas}
    for api in sorted(set(blas_a) | set(blas_b)):
        if api not in blas_a or api not in blas_b:
            lines.append(
                f"blas {api}: {'loaded' if api in blas_a else _ABSENT} -> "
                f"{'loaded' if api in blas_b else _ABSENT}"
            )
            continue
        lines += _diff_mapping(f"blas {api}", blas_a[api], blas_b[api], _ABSENT)
    lines += _diff_mapping("env", dict(a.env_vars), dict(b.env_vars), "(unset)")
    return EnvironmentDiff(tuple(lines))


class EnvironmentPolicy(str, enum.Enum):
    """What a load does when the stored environment lock differs from the running one.

    ``strict`` refuses (:class:`~ml_platform.errors.EnvironmentMismatch`), ``warn`` logs and records
    the differences, ``off`` does not compare.
    """

    STRICT = "strict"
    WARN = "warn"
    OFF = "off"

    @classmethod
    def parse(cls, value: str | EnvironmentPolicy) -> EnvironmentPolicy:
        """Accept a policy or its name (case-insensitive), raising ConfigurationError otherwise."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        raise ConfigurationError(
            f"unknown environment policy {value!r}; use one of: {', '.join(p.value for p in cls)}"
        )


def check_environment(
    stored: EnvironmentLock, running: EnvironmentLock, policy: EnvironmentPolicy | str, what: str
) -> EnvironmentDiff:
    """Compare a stored lock with the running one under ``policy``.

    Args:
        stored: the lock recorded when ``what`` was produced.
        running: the lock of this process (usually :func:`capture_environment`).
        policy: ``strict`` raises on any difference, ``warn`` logs a warning, ``off`` skips the
            comparison and returns an empty diff.
        what: names the artefact in messages, e.g. ``"features/momentum partition 2012-01-03"``.

    Returns:
        The differences (stored -> running); empty under ``off``.

    Raises:
        EnvironmentMismatch: under ``strict``, listing every difference.
    """
    policy = EnvironmentPolicy.parse(policy)
    if policy is EnvironmentPolicy.OFF or stored.hash == running.hash:
        return EnvironmentDiff(())
    diff = diff_environments(stored, running)
    listing = "\n".join(f"  - {line}" for line in diff.differences)
    if policy is EnvironmentPolicy.STRICT:
        raise EnvironmentMismatch(
            f"{what} was produced in a different environment ({stored.hash} stored, {running.hash} "
            f"running); differences (stored -> running):\n{listing}\n"
            "Recreate the recorded environment (`uv sync --frozen` at the recorded git commit), or "
            "re-materialize it here, or load with environment_policy='warn' to accept the difference."
        )
    logger.warning("%s was produced in a different environment (stored -> running):\n%s", what, listing)
    return diff
