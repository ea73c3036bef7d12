"""Where things live in a pinned store: key and partition rules, and the file names derived from them.

::

    <base>/<key>/<partition>.manifest.json           the commit record (see ml_platform.io.atomic)
    <base>/<key>/<partition>.<write id>.parquet      the data it names (16 hex digits, new per write)

``key`` is an asset-key path joined by ``/`` (``features/momentum``); an unpartitioned artefact
uses the partition name ``__unpartitioned__``. Keys and partitions are restricted to characters that
are safe in file names and URIs on every filesystem the store supports.
"""

from __future__ import annotations

import re
import uuid

from ml_platform.errors import ConfigurationError, PartitionError
from ml_platform.io.atomic import is_temporary

__all__ = [
    "MANIFEST_SUFFIX",
    "UNPARTITIONED",
    "data_rel",
    "is_data_file_name",
    "manifest_location",
    "manifest_rel",
    "new_data_file_name",
    "stem",
    "validate_key",
    "validate_partition",
]

UNPARTITIONED = "__unpartitioned__"
MANIFEST_SUFFIX = ".manifest.json"
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}$")
_PARTITION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.|=+,@:-]{0,199}$")
_DATA_FILE = re.compile(r"^.+\.[0-9a-f]{16}\.parquet$")


def validate_key(key: str) -> str:
    """Check an asset-key path (``a/b/c``), raising ConfigurationError naming the bad segment."""
    segments = key.split("/") if isinstance(key, str) else [repr(key)]
    for segment in segments:
        if not _KEY_SEGMENT.match(segment) or segment.endswith(".") or ".." in segment:
            raise ConfigurationError(
                f"asset key {key!r} has an unusable segment {segment!r}; segments are letters, digits "
                "and _ . = + - (not starting with '.'), joined by '/'"
            )
    return key


def validate_partition(partition: str | None) -> str | None:
    """Check a partition key, raising PartitionError for one that cannot be a file name."""
    if partition is None:
        return None
    if not isinstance(partition, str) or not _PARTITION.match(partition) or partition == UNPARTITIONED:
        raise PartitionError(
            f"partition key {partition!r} cannot be stored: use letters, digits and _ . | = + , @ : - "
            "(daily partitions look like 2012-01-03)"
        )
    return partition


def stem(partition: str | None) -> str:
    """The file-name stem of a partition (``__unpartitioned__`` for None)."""
    return UNPARTITIONED if partition is None else partition


def manifest_rel(key: str, partition: str | None) -> str:
    """Relative path of the manifest of ``key``/``partition`` (both already validated)."""
    return f"{key}/{stem(partition)}{MANIFEST_SUFFIX}"


def data_rel(key: str, data_file: str) -> str:
    """Relative path of a data file of ``key``."""
    return f"{key}/{data_file}"


def new_data_file_name(partition: str | None) -> str:
    """A fresh, unique data file name for a new version of ``partition``."""
    return f"{stem(partition)}.{uuid.uuid4().hex[:16]}.parquet"


def is_data_file_name(name: str) -> bool:
    """Whether ``name`` looks like a data file the store wrote (``<stem>.<16 hex>.parquet``)."""
    return _DATA_FILE.match(name) is not None and not is_temporary(name)


def manifest_location(rel: str) -> tuple[str, str | None] | None:
    """``(key, partition)`` if ``rel`` is a committed manifest's relative path, else None."""
    directory, _, name = rel.rpartition("/")
    if not directory or not name.endswith(MANIFEST_SUFFIX) or is_temporary(name):
        return None
    name_stem = name[: -len(MANIFEST_SUFFIX)]
    return directory, None if name_stem == UNPARTITIONED else name_stem
