"""Checking a whole store against its manifests, and sweeping leftovers of interrupted writes.

``ml-platform verify`` is a table of :class:`VerifyResult` rows produced by :func:`verify_store`;
:func:`sweep_store` removes temporaries and superseded data files (see :mod:`ml_platform.io.atomic`
for why they can exist at all).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ml_platform.environment import EnvironmentDiff, EnvironmentPolicy, diff_environments
from ml_platform.errors import ConfigurationError, ManifestError, MLPlatformError
from ml_platform.io.atomic import is_temporary
from ml_platform.io.layout import is_data_file_name, manifest_location

if TYPE_CHECKING:
    from ml_platform.io.store import PinnedStore

__all__ = ["VerifyResult", "VerifyStatus", "sweep_store", "verify_store"]

logger = logging.getLogger(__name__)


class VerifyStatus(str, enum.Enum):
    """Outcome of verifying one stored artefact."""

    OK = "ok"
    ENVIRONMENT_DIFFERS = "env-differs"
    ENVIRONMENT_MISMATCH = "env-mismatch"
    CORRUPT = "corrupt"
    MANIFEST = "bad-manifest"
    MISSING = "missing"


@dataclass(frozen=True)
class VerifyResult:
    """One row of ``ml-platform verify``.

    Attributes:
        key: the asset key path.
        partition: the partition, or None for an unpartitioned artefact.
        status: what was found.
        detail: the error message, or a summary of the environment differences.
        manifest_path: the sidecar manifest's path or URI.
        rows: number of rows, when the data verified.
        data_hash: the verified content hash, when the data verified.
        environment_diff: stored -> running environment differences (empty under ``off``).
    """

    key: str
    partition: str | None
    status: VerifyStatus
    detail: str
    manifest_path: str
    rows: int | None = None
    data_hash: str | None = None
    environment_diff: EnvironmentDiff = field(default_factory=lambda: EnvironmentDiff(()))

    @property
    def ok(self) -> bool:
        """True unless the artefact failed: an environment difference under ``warn`` is not a failure."""
        return self.status in (VerifyStatus.OK, VerifyStatus.ENVIRONMENT_DIFFERS)


def _verify_one(store: PinnedStore, key: str, partition: str | None) -> VerifyResult:
    path = store.manifest_path(key, partition)
    try:
        table, manifest = store.load_verified(key, partition)
    except ManifestError as exc:
        missing = not store.exists(key, partition)
        return VerifyResult(
            key, partition, VerifyStatus.MISSING if missing else VerifyStatus.MANIFEST, str(exc), path
        )
    except MLPlatformError as exc:
        return VerifyResult(key, partition, VerifyStatus.CORRUPT, str(exc), path)
    status, detail, diff = VerifyStatus.OK, "verified", EnvironmentDiff(())
    if store.policy is not EnvironmentPolicy.OFF:
        diff = diff_environments(manifest.environment, store.environment)
        if not diff.is_empty:
            strict = store.policy is EnvironmentPolicy.STRICT
            status = VerifyStatus.ENVIRONMENT_MISMATCH if strict else VerifyStatus.ENVIRONMENT_DIFFERS
            detail = f"{len(diff.differences)} environment difference(s): " + "; ".join(diff.differences)
    return VerifyResult(
        key,
        partition,
        status,
        detail,
        path,
        rows=table.num_rows,
        data_hash=manifest.data_hash,
        environment_diff=diff,
    )


def verify_store(
    store: PinnedStore, key: str | None = None, partition: str | None = None
) -> list[VerifyResult]:
    """Check every stored artefact (or those of ``key``, or one partition) against its manifest.

    Each artefact is fully read and verified: byte hash, Parquet decoding, embedded manifest,
    content hash; then its environment lock is compared with the running one. A bad artefact never
    raises: it gets a failing :class:`VerifyResult`. Environment differences fail only under the
    store's ``strict`` policy. Asking for a key with nothing stored yields one ``missing`` row.

    Raises:
        ConfigurationError: a partition was given without a key, or the key/partition is malformed.
    """
    locations: list[tuple[str, str | None]]
    if partition is not None:
        if key is None:
            raise ConfigurationError(
                "verify: a partition needs an asset key too, e.g. `verify momentum --partition 2012-01-03`"
            )
        store.manifest_path(key, partition)  # validates both
        locations = [(key, partition)]
    else:
        locations = store.locations(key)
        if key is not None and not locations:
            locations = [(key, None)]
    return [
        _verify_one(store, location_key, location_partition) for location_key, location_partition in locations
    ]


def sweep_store(store: PinnedStore, older_than_seconds: float = 3600.0) -> list[str]:
    """Delete leftovers of interrupted or superseded writes older than a grace period.

    Leftovers are temporaries (``.<name>.tmp-...``) and data files named like the store's own
    (``<partition>.<16 hex>.parquet``) that no manifest names. The grace period protects a
    concurrent writer that has renamed its data but not yet committed its manifest. A directory
    whose manifests do not all parse is left alone, with a warning naming it. Returns the deleted
    paths.
    """
    fs = store.filesystem
    by_directory: dict[str, list[str]] = {}
    for rel in fs.list_files():
        directory, _, name = rel.rpartition("/")
        by_directory.setdefault(directory, []).append(name)
    deleted = []
    for directory, names in sorted(by_directory.items()):
        try:
            referenced = {
                store.manifest(*location).data_file
                for location in (manifest_location(f"{directory}/{name}") for name in names)
                if location is not None
            }
        except MLPlatformError as exc:
            logger.warning(
                "sweep left %s untouched: a manifest there cannot be read (%s). Run `ml-platform verify` "
                "to see which artefact is broken, re-materialize it, then sweep again.",
                fs.uri(directory),
                exc,
            )
            continue
        for name in names:
            rel = f"{directory}/{name}" if directory else name
            leftover = is_temporary(name) or (is_data_file_name(name) and name not in referenced)
            age = fs.age_seconds(rel)
            if leftover and age is not None and age >= older_than_seconds:
                fs.delete(rel)
                deleted.append(fs.uri(rel))
    return deleted
