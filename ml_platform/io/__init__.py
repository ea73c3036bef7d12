"""Pinned storage: immutable content-addressed Parquet objects, manifest history, verification on every load.

* :class:`PinnedStore` (no Dagster): write/read (head or as of a data hash)/verify/gc frames with manifests.
* :class:`PinnedIOManager` / :class:`PinnedStoreResource`: the Dagster IO manager and resource on top.
* :class:`Manifest`, :class:`WriteFacts`, :class:`UpstreamRef`: the manifest format
  (``ml_platform.manifest/v2``).

The Dagster classes are imported lazily, so the store, the manifest format and the CLI do not pay
for importing Dagster.

Example:
    .. code-block:: python

        from dagster import Definitions
        from ml_platform.io import PinnedIOManager

        defs = Definitions(
            assets=[...],
            resources={"io_manager": PinnedIOManager(base_dir=".ml_platform/storage")},
        )
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml_platform.io.layout import UNPARTITIONED
from ml_platform.io.manifest import MANIFEST_METADATA_KEY, MANIFEST_SCHEMA, Manifest, UpstreamRef, WriteFacts
from ml_platform.io.store import PinnedStore, StoredFrame, StoredFrames
from ml_platform.io.verify import VerifyResult, VerifyStatus

if TYPE_CHECKING:
    from ml_platform.io.manager import PinnedIOManager, PinnedStoreResource

__all__ = [
    "MANIFEST_METADATA_KEY",
    "MANIFEST_SCHEMA",
    "UNPARTITIONED",
    "Manifest",
    "PinnedIOManager",
    "PinnedStore",
    "PinnedStoreResource",
    "StoredFrame",
    "StoredFrames",
    "UpstreamRef",
    "VerifyResult",
    "VerifyStatus",
    "WriteFacts",
]

_LAZY = {"PinnedIOManager", "PinnedStoreResource"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ml_platform.io import manager

        return getattr(manager, name)
    raise AttributeError(f"module 'ml_platform.io' has no attribute {name!r}")
