"""Where things live in a pinned store (the v2 layout, kept by v3): keys, partitions, objects, refs.

How it works, and why: docs/architecture.md, "ml_platform/io/layout.py".
"""

from __future__ import annotations

import datetime as dt
import re

from ml_platform.errors import ConfigurationError, PartitionError
from ml_platform.io.atomic import is_temporary

__all__ = [
    "HEAD_NAME",
    "HISTORY_DIR",
    "OBJECTS_DIR",
    "REFS_DIR",
    "UNPARTITIONED",
    "HistoryName",
    "head_rel",
    "history_dir_rel",
    "history_name",
    "history_rel",
    "is_v1_manifest",
    "object_name",
    "object_rel",
    "parse_history_name",
    "parse_object_rel",
    "partition_dir_rel",
    "partition_location",
    "stem",
    "validate_data_hash",
    "validate_key",
    "validate_partition",
]

UNPARTITIONED = "__unpartitioned__"
OBJECTS_DIR = "objects"
REFS_DIR = "refs"
#: environment acceptances, each ``<hex>.json`` named by its own hash (see ml_platform.io.acceptances)
ACCEPTANCES_DIR = "environment/acceptances"
HEAD_NAME = "HEAD.json"
HISTORY_DIR = "history"
V1_MANIFEST_SUFFIX = ".manifest.json"
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,199}")
_PARTITION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.|=+,@:-]{0,199}")
_DATA_HASH = re.compile(r"([a-z0-9_]{1,32}):([0-9a-f]{16,128})")
_OBJECT_NAME = re.compile(r"([a-z0-9_]{1,32})-([0-9a-f]{16,128})")
_HISTORY_NAME = re.compile(r"([0-9]{20})-([a-z0-9_]{1,32}-[0-9a-f]{16,128})\.json")
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _shown(text: object) -> str:
    return repr(text)


def validate_key(key: str) -> str:
    """Check an asset-key path (``a/b/c``), raising ConfigurationError naming the bad segment."""
    if not isinstance(key, str):
        raise ConfigurationError(f"asset key must be a string like 'features/momentum', got {_shown(key)}")
    if _CONTROL.search(key):
        raise ConfigurationError(f"asset key {_shown(key)} contains a control character (a newline?); "
                                 "keys are letters, digits and _ . = + - joined by '/'")
    for segment in key.split("/"):
        if not _KEY_SEGMENT.fullmatch(segment) or segment.endswith(".") or ".." in segment:
            raise ConfigurationError(
                f"asset key {key!r} has an unusable segment {segment!r}; segments are letters, digits "
                "and _ . = + - (not starting with '.'), joined by '/'"
            )
    return key


def validate_partition(partition: str | None, key: str | None = None) -> str | None:
    """Check a partition key, raising PartitionError for one that cannot be a file name."""
    if partition is None:
        return None
    of = "" if key is None else f" of {key}"
    if isinstance(partition, str) and _CONTROL.search(partition):
        raise PartitionError(f"partition key {partition!r}{of} contains a control character (a newline?)")
    if not isinstance(partition, str) or not _PARTITION.fullmatch(partition) or partition == UNPARTITIONED:
        raise PartitionError(
            f"partition key {partition!r}{of} cannot be stored: use letters, digits and _ . | = + , @ : - "
            "(daily partitions look like 2012-01-03)"
        )
    if _ISO_DAY.fullmatch(partition):
        try:
            dt.date.fromisoformat(partition)
        except ValueError as exc:
            raise PartitionError(f"partition key {partition!r}{of} is not a real calendar day ({exc})") from None
    return partition


def validate_data_hash(data_hash: str, what: str = "data hash") -> str:
    """Check that ``data_hash`` looks like ``<algorithm>:<hex>`` (it names an object file)."""
    if not isinstance(data_hash, str) or not _DATA_HASH.fullmatch(data_hash):
        raise ConfigurationError(f"{what} {data_hash!r} is not of the form <algorithm>:<hex digits>, "
                                 "e.g. xxh3_128:0123456789abcdef0123456789abcdef")
    return data_hash


def stem(partition: str | None) -> str:
    """The file-name stem of a partition (``__unpartitioned__`` for None)."""
    return UNPARTITIONED if partition is None else partition


def object_name(data_hash: str) -> str:
    """``<algo>-<hex>.parquet``: the object file name of a data hash."""
    algorithm, _, digest = validate_data_hash(data_hash).partition(":")
    return f"{algorithm}-{digest}.parquet"


def object_rel(data_hash: str) -> str:
    """Relative path of the object holding the data of ``data_hash``."""
    digest = data_hash.partition(":")[2]
    return f"{OBJECTS_DIR}/{digest[:2]}/{object_name(data_hash)}"


def parse_object_rel(rel: str) -> str | None:
    """The data hash an object path names, or None if ``rel`` is not an object path."""
    parts = rel.split("/")
    if len(parts) != 3 or parts[0] != OBJECTS_DIR or not parts[2].endswith(".parquet"):
        return None
    found = _OBJECT_NAME.fullmatch(parts[2][: -len(".parquet")])
    if found is None or found.group(2)[:2] != parts[1]:
        return None
    return f"{found.group(1)}:{found.group(2)}"


PARTITION_MARK = "@"  # a partition's folder under its key: refs/<key>/@<partition>


def partition_dir_rel(key: str, partition: str | None) -> str:
    """Relative path of the directory holding the head and history of ``key``/``partition``."""
    return f"{REFS_DIR}/{key}/{PARTITION_MARK}{stem(partition)}"


def head_rel(key: str, partition: str | None) -> str:
    """Relative path of the head of ``key``/``partition`` (both already validated)."""
    return f"{partition_dir_rel(key, partition)}/{HEAD_NAME}"


def history_dir_rel(key: str, partition: str | None) -> str:
    return f"{partition_dir_rel(key, partition)}/{HISTORY_DIR}"


def _nanoseconds(written_at: str) -> int:
    moment = dt.datetime.fromisoformat(written_at)
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def history_name(written_at: str, data_hash: str) -> str:
    """``<ns>-<object>.json``: the history entry name of a manifest (a function of it: idempotent)."""
    return f"{_nanoseconds(written_at):020d}-{object_name(data_hash)[: -len('.parquet')]}.json"


def history_rel(key: str, partition: str | None, written_at: str, data_hash: str) -> str:
    return f"{history_dir_rel(key, partition)}/{history_name(written_at, data_hash)}"


class HistoryName(tuple[int, str]):
    """``(nanoseconds, data_hash)`` parsed from a history entry name."""

    @property
    def nanoseconds(self) -> int:
        return self[0]

    @property
    def data_hash(self) -> str:
        return self[1]


def parse_history_name(name: str) -> HistoryName | None:
    """``(ns, data_hash)`` of a history entry name, or None if ``name`` is not one."""
    found = _HISTORY_NAME.fullmatch(name)
    if found is None:
        return None
    algorithm, _, digest = found.group(2).partition("-")
    return HistoryName((int(found.group(1)), f"{algorithm}:{digest}"))


def partition_location(rel: str) -> tuple[str, str | None] | None:
    """``(key, partition)`` if ``rel`` is a head or history file of a partition, else None."""
    parts = rel.split("/")
    if parts[0] != REFS_DIR or is_temporary(parts[-1]):
        return None
    if parts[-1] == HEAD_NAME:
        directory = parts[1:-1]
    elif len(parts) >= 4 and parts[-2] == HISTORY_DIR and parse_history_name(parts[-1]) is not None:
        directory = parts[1:-2]
    else:
        return None
    if len(directory) < 2 or not directory[-1].startswith(PARTITION_MARK):
        return None
    name = directory[-1][1:]
    return "/".join(directory[:-1]), None if name == UNPARTITIONED else name


def is_v1_manifest(rel: str) -> bool:
    """Whether ``rel`` is a manifest of the v1 layout (``<key>/<partition>.manifest.json``)."""
    name = rel.rpartition("/")[2]
    return (not rel.startswith((f"{REFS_DIR}/", f"{OBJECTS_DIR}/")) and name.endswith(V1_MANIFEST_SUFFIX)
            and not is_temporary(name))
