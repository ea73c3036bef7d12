"""Pinned storage: immutable content-addressed Parquet objects, manifest history, verification on every load.

The store (no Dagster) is imported here; the Dagster IO manager and resource live in
:mod:`ml_platform.io.manager`, so the store and the CLI do not pay for importing Dagster.
"""

from __future__ import annotations

from ml_platform.io.layout import UNPARTITIONED
from ml_platform.io.manifest import MANIFEST_METADATA_KEY, MANIFEST_SCHEMA, Manifest, UpstreamRef, WriteFacts
from ml_platform.io.store import PinnedStore, StoredFrame, StoredFrames
from ml_platform.io.verify import VerifyResult, VerifyStatus, verify_store

__all__ = [
    "MANIFEST_METADATA_KEY",
    "MANIFEST_SCHEMA",
    "UNPARTITIONED",
    "Manifest",
    "PinnedStore",
    "StoredFrame",
    "StoredFrames",
    "UpstreamRef",
    "VerifyResult",
    "VerifyStatus",
    "WriteFacts",
    "verify_store",
]
