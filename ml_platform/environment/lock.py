"""The environment lock: everything outside code and data that can change a result, with its hash.

An :class:`EnvironmentLock` records the Python interpreter, the platform, every installed
distribution with its version, the hash of ``uv.lock``, the BLAS library numpy computes with (its
version, thread count and CPU kernel), and the environment variables that steer threading and
hashing. Its :attr:`~EnvironmentLock.hash` is a SHA-256 over a canonical JSON encoding, so two locks
are equal exactly when their hashes are.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_platform.errors import ConfigurationError
from ml_platform.redact import redacted_url

__all__ = [
    "DETERMINISM_ENV_VARS",
    "LOCK_SCHEMA",
    "BlasLibrary",
    "EnvironmentLock",
    "capture_environment",
    "find_uv_lock",
]

LOCK_SCHEMA = "ml_platform.environment/v1"
"""Schema tag of the JSON form of an :class:`EnvironmentLock`, and the scheme id of its hash.

It is :data:`ml_platform.lineage.schemes.ENVIRONMENT_SCHEME` (kept as a literal so this module does not
import the lineage package). The tag is part of the hashed JSON, so the JSON form and its canonical
encoding are the hash scheme: changing either is a new version, pinned by a known-answer vector."""

DETERMINISM_ENV_VARS: tuple[str, ...] = (
    "BLIS_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
    "MKL_CBWR",
    "MKL_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_NUM_THREADS",
    "POLARS_MAX_THREADS",
    "PYTHONHASHSEED",
    "RAYON_NUM_THREADS",
    "TZ",
    "VECLIB_MAXIMUM_THREADS",
)
"""Environment variables that can change results (thread counts, BLAS kernels, hash seeds, time zone).

Only these are recorded, never the whole environment: a lock is written into every manifest and model
version, and the environment of a production process holds its secrets. None of these names may name a
secret (``ml_platform.redact.secret_name``), and a value holding a credential is recorded masked."""


def _normalize_name(name: str) -> str:
    """PEP 503 normalization of a distribution name (``Foo_Bar.baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class BlasLibrary:
    """The BLAS library numpy computes with, as threadpoolctl reports it at runtime.

    ``architecture`` is the CPU kernel an OpenBLAS ``DYNAMIC_ARCH`` build selected (e.g. ``SkylakeX``);
    different kernels may round differently, so it is part of the lock.
    """

    internal_api: str
    version: str | None
    threading_layer: str | None
    architecture: str | None
    num_threads: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "internal_api": self.internal_api,
            "version": self.version,
            "threading_layer": self.threading_layer,
            "architecture": self.architecture,
            "num_threads": self.num_threads,
        }


@dataclass(frozen=True)
class EnvironmentLock:
    """Everything about the running environment that can change a result, with its own hash.

    Attributes:
        python_implementation: ``cpython``, ``pypy``, ...
        python_version: e.g. ``3.11.7``.
        platform: operating system, machine and C library, e.g. ``linux-x86_64-glibc2.36``.
        packages: every installed distribution as sorted ``(normalized name, version)`` pairs.
        uv_lock_hash: ``sha256:<hex>`` of the ``uv.lock`` the environment was synced from, or None.
        blas: the BLAS libraries numpy uses (usually exactly one).
        env_vars: the :data:`DETERMINISM_ENV_VARS` as sorted ``(name, value or None)`` pairs.
    """

    python_implementation: str
    python_version: str
    platform: str
    packages: tuple[tuple[str, str], ...]
    uv_lock_hash: str | None
    blas: tuple[BlasLibrary, ...]
    env_vars: tuple[tuple[str, str | None], ...]

    def __post_init__(self) -> None:
        names = [name for name, _ in self.packages]
        if names != sorted(set(names)):
            raise ConfigurationError("environment lock packages must be unique and sorted by name")
        env_names = [name for name, _ in self.env_vars]
        if env_names != sorted(set(env_names)):
            raise ConfigurationError("environment lock env_vars must be unique and sorted by name")

    @property
    def package_versions(self) -> dict[str, str]:
        """The packages as a ``{name: version}`` dict."""
        return dict(self.packages)

    def to_dict(self) -> dict[str, Any]:
        """Return the versioned JSON form (without the hash, which is derived from it)."""
        return {
            "schema": LOCK_SCHEMA,
            "python": {"implementation": self.python_implementation, "version": self.python_version},
            "platform": self.platform,
            "packages": dict(self.packages),
            "uv_lock_hash": self.uv_lock_hash,
            "blas": [lib.to_dict() for lib in self.blas],
            "env_vars": dict(self.env_vars),
        }

    @functools.cached_property
    def hash(self) -> str:
        """``sha256:<hex>`` over the canonical JSON of :meth:`to_dict`."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return "sha256:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvironmentLock:
        """Rebuild a lock from :meth:`to_dict` output.

        Raises:
            ConfigurationError: the record is not a ``ml_platform.environment/v1`` lock or lacks fields.
        """
        if not isinstance(data, Mapping) or data.get("schema") != LOCK_SCHEMA:
            found = data.get("schema") if isinstance(data, Mapping) else type(data).__name__
            raise ConfigurationError(
                f"not an environment lock: expected schema {LOCK_SCHEMA!r}, found {found!r}; "
                "produce one with `ml-platform env show --json`"
            )
        try:
            python = data["python"]
            blas = tuple(
                BlasLibrary(
                    internal_api=str(lib["internal_api"]),
                    version=lib["version"],
                    threading_layer=lib["threading_layer"],
                    architecture=lib["architecture"],
                    num_threads=int(lib["num_threads"]),
                )
                for lib in data["blas"]
            )
            return cls(
                python_implementation=str(python["implementation"]),
                python_version=str(python["version"]),
                platform=str(data["platform"]),
                packages=tuple(sorted((str(k), str(v)) for k, v in data["packages"].items())),
                uv_lock_hash=data["uv_lock_hash"],
                blas=blas,
                env_vars=tuple(sorted((str(k), v) for k, v in data["env_vars"].items())),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ConfigurationError(
                f"malformed environment lock record: missing or bad field {exc}"
            ) from exc


def find_uv_lock(*starts: Path) -> Path | None:
    """The first ``uv.lock`` found walking upward from each start directory in turn, or None."""
    for start in starts:
        for directory in (start, *start.parents):
            candidate = directory / "uv.lock"
            if candidate.is_file():
                return candidate
    return None


def _numpy_blas() -> tuple[BlasLibrary, ...]:
    """The BLAS libraries numpy loaded, as threadpoolctl sees them.

    Only numpy's own BLAS is recorded: other libraries (scipy, scikit-learn) bring their own copies,
    and recording whatever happens to be loaded would make the lock depend on import order.
    """
    import numpy
    import threadpoolctl

    numpy_dir = Path(numpy.__file__).resolve().parent
    roots = (str(numpy_dir), str(numpy_dir.parent / "numpy.libs"))
    infos = [info for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
    own = [info for info in infos if str(info.get("filepath", "")).startswith(roots)]
    chosen = own or infos
    libraries = {
        BlasLibrary(
            internal_api=str(info.get("internal_api")),
            version=info.get("version"),
            threading_layer=info.get("threading_layer"),
            architecture=info.get("architecture"),
            num_threads=int(info.get("num_threads", 0)),
        )
        for info in chosen
    }
    # Sorted on every field: a set iterates in PYTHONHASHSEED order, so ties would make the hash vary.
    return tuple(sorted(libraries, key=_blas_sort_key))


def _blas_sort_key(lib: BlasLibrary) -> tuple[str, str, str, str, int]:
    return (
        lib.internal_api,
        str(lib.version),
        str(lib.threading_layer),
        str(lib.architecture),
        lib.num_threads,
    )


def _installed_packages() -> tuple[tuple[str, str], ...]:
    """Every distribution importable from ``sys.path``; the first one on the path wins, as for imports."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            found.setdefault(_normalize_name(name), dist.version)
    return tuple(sorted(found.items()))


def _platform_tag() -> str:
    libc, libc_version = platform.libc_ver()
    parts = [sys.platform, platform.machine().lower()]
    if libc:
        parts.append(f"{libc}{libc_version}")
    return "-".join(parts)


def capture_environment(project_root: str | os.PathLike[str] | None = None) -> EnvironmentLock:
    """Capture the running environment, once per process and project root (later calls return the same lock).

    Args:
        project_root: the user's project (the folder holding its feature code). Its ``uv.lock`` is the
            one recorded: it is searched upward from ``project_root``, then (a project without a lock of
            its own runs in the environment of the one it was installed into) upward from the working
            directory. When none is found ``uv_lock_hash`` is None (recorded as absent).
    """
    root = None if project_root is None else str(Path(project_root).resolve())
    return _capture(root, str(Path.cwd()))


@functools.lru_cache(maxsize=8)
def _capture(project_root: str | None, cwd: str) -> EnvironmentLock:
    starts = [Path(cwd)] if project_root is None else [Path(project_root), Path(cwd)]
    uv_lock = find_uv_lock(*starts)
    return EnvironmentLock(
        python_implementation=platform.python_implementation().lower(),
        python_version=platform.python_version(),
        platform=_platform_tag(),
        packages=_installed_packages(),
        uv_lock_hash=None
        if uv_lock is None
        else "sha256:" + hashlib.sha256(uv_lock.read_bytes()).hexdigest(),
        blas=_numpy_blas(),
        env_vars=tuple((name, _recorded(os.environ.get(name))) for name in sorted(DETERMINISM_ENV_VARS)),
    )


def _recorded(value: str | None) -> str | None:
    """An environment variable's value as the lock records it: any credential in it masked."""
    return None if value is None else redacted_url(value)
