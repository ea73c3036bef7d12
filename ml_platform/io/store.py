"""PinnedStore: an immutable, content-addressed Parquet object store with manifests and verified reads.

How it works, and why: docs/architecture.md, "ml_platform/io/store.py".
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, get_args

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ml_platform.crashpoints import crash_point
from ml_platform.environment import (
    AcceptanceFile,
    BuildProvenance,
    EnvironmentDiff,
    EnvironmentLock,
    EnvironmentPolicy,
    capture_environment,
    decide_environment,
    git_state,
    recorded_git,
)
from ml_platform.errors import (
    ConcurrencyError,
    ConfigurationError,
    DataError,
    IntegrityError,
    ManifestError,
)
from ml_platform.io.acceptances import read_acceptances
from ml_platform.io.atomic import FileSystem, HashingWriter, file_digest, open_filesystem
from ml_platform.io.layout import (
    PARTITION_MARK,
    REFS_DIR,
    UNPARTITIONED,
    head_rel,
    history_dir_rel,
    history_rel,
    is_v1_manifest,
    object_name,
    object_rel,
    parse_history_name,
    partition_location,
    stem,
    validate_data_hash,
    validate_key,
    validate_partition,
)
from ml_platform.io.manifest import MANIFEST_SCHEMA, OBJECT_METADATA_KEY, Manifest, WriteFacts, WriterVersions
from ml_platform.lineage.data_hash import hash_table

if TYPE_CHECKING:
    import os

    from upath import UPath

    from ml_platform.window import DataWindow

__all__ = ["COMPRESSIONS", "Compression", "PinnedStore", "StoredFrame", "StoredFrames", "check_compression"]

#: the Parquet codecs a store writes with (a Literal, so typed resource fields show them as a choice)
Compression = Literal["zstd", "snappy", "lz4", "gzip", "brotli", "none"]
COMPRESSIONS: tuple[str, ...] = get_args(Compression)


@dataclass(frozen=True)
class StoredFrame:
    """A verified read: the frame, its manifest and how its environment differs from the running one."""

    frame: pl.DataFrame
    manifest: Manifest
    environment_diff: EnvironmentDiff
    #: the hashes of the environment acceptances a strict read relied on (stored lock accepted for the running one)
    acceptances: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredFrames:
    """A verified read of several partitions, concatenated in the order asked for."""

    frame: pl.DataFrame
    manifests: tuple[Manifest, ...]
    environment_diff: EnvironmentDiff
    acceptances: tuple[str, ...] = ()


def check_compression(compression: str) -> str:
    """Return ``compression`` if it is one of :data:`COMPRESSIONS`, else raise ConfigurationError naming them."""
    if compression not in COMPRESSIONS:
        raise ConfigurationError(f"unknown Parquet compression {compression!r}; use one of {COMPRESSIONS}")
    return compression


_MANIFEST_HASH = re.compile(r"sha256:[0-9a-f]{64}")

#: how often a read follows a head that moved under it before it reports a ConcurrencyError
READ_ATTEMPTS = 5


def _object_footer(data_hash: str) -> bytes:
    return json.dumps({"data_hash": data_hash}, sort_keys=True, separators=(",", ":")).encode()


def _to_arrow(frame: pl.DataFrame | pa.Table, what: str) -> pa.Table:
    if isinstance(frame, pl.DataFrame):
        return frame.to_arrow()
    if isinstance(frame, pa.Table):
        return frame
    raise DataError(f"{what}: can store a polars DataFrame or a pyarrow Table, got {type(frame).__name__}")


class PinnedStore:
    """Stores frames as immutable Parquet objects with a manifest history, and verifies every read.

    Args:
        base: the base directory: a path, or an fsspec/UPath URI (``s3://bucket/features``).
        compression: Parquet codec, one of ``zstd snappy lz4 gzip brotli none``.
        policy: what reads do when the stored environment lock differs from the running one.
        environment: the lock recorded on write and compared on read (default: the running one,
            :func:`~ml_platform.environment.capture_environment` of ``project_root``).
        project_root: the user's project folder whose ``uv.lock`` and git commit a write records when
            its :class:`WriteFacts` name none (default: the working directory).
        provenance: the running image's build provenance: its commit and dirty flag are recorded where the
            project root is no git checkout (a checkout's commit must equal it), its digest with every write.
        require_commit: refuse a write that would record no git commit (production).

    Example:
        .. code-block:: python

            store = PinnedStore(".ml_platform/storage", policy="strict")
            first = store.write("features/momentum", "2012-01-03", frame, WriteFacts(run_id="abc"))
            stored = store.read("features/momentum", "2012-01-03")  # verified, or an error
            old = store.read("features/momentum", "2012-01-03", data_hash=first.data_hash)  # as of
    """

    def __init__(
        self,
        base: str | os.PathLike[str] | UPath,
        compression: str = "zstd",
        policy: EnvironmentPolicy | str = EnvironmentPolicy.WARN,
        *,
        environment: EnvironmentLock | None = None,
        project_root: str | os.PathLike[str] | None = None,
        provenance: BuildProvenance | None = None,
        require_commit: bool = False,
    ) -> None:
        self.compression = check_compression(compression)
        self.policy = EnvironmentPolicy.parse(policy)
        self._fs: FileSystem = open_filesystem(base)
        self._environment = environment
        self.project_root = None if project_root is None else str(project_root)
        self.provenance = provenance if provenance is not None else BuildProvenance()
        self.require_commit = require_commit

    @property
    def base(self) -> str:
        """The absolute base path or URI."""
        return self._fs.uri()

    @property
    def filesystem(self) -> FileSystem:
        """The filesystem the store writes to."""
        return self._fs

    @property
    def environment(self) -> EnvironmentLock:
        """The lock reads compare against (the running environment unless one was given)."""
        return self._environment if self._environment is not None else capture_environment(self.project_root)

    def _checked(self, key: str, partition: str | None) -> tuple[str, str | None]:
        key = validate_key(key)
        return key, validate_partition(partition, key)

    def manifest_path(self, key: str, partition: str | None) -> str:
        """Absolute path or URI of the head manifest of ``key``/``partition``."""
        return self._fs.uri(head_rel(*self._checked(key, partition)))

    def data_path(self, manifest: Manifest) -> str:
        """Absolute path or URI of the object a manifest names."""
        return self._fs.uri(object_rel(manifest.data_hash))

    def object_path(self, data_hash: str) -> str:
        """Absolute path or URI of the object holding the data of ``data_hash``."""
        return self._fs.uri(object_rel(validate_data_hash(data_hash)))

    # ----------------------------------------------------------------------------------- writing
    def write(
        self,
        key: str,
        partition: str | None,
        frame: pl.DataFrame | pa.Table,
        facts: WriteFacts | None = None,
    ) -> Manifest:
        """Store ``frame`` as the new version of ``key``/``partition``; the previous one stays readable by hash.

        Returns:
            The committed manifest (now the partition's head).

        Raises:
            ConfigurationError / PartitionError: an unusable key, partition or data hash.
            DataError: the frame is not a DataFrame/Table or cannot be encoded as Parquet.
        """
        key, partition = self._checked(key, partition)
        facts = facts if facts is not None else WriteFacts()
        table = _to_arrow(frame, f"{key} {stem(partition)}")
        root = facts.project_root or self.project_root
        environment = self._environment if self._environment is not None else capture_environment(root)
        git = recorded_git(git_state(root), self.provenance, require_commit=self.require_commit,
                           where=str(root) if root is not None else "(the working directory)")
        data_hash = validate_data_hash(facts.data_hash or hash_table(table), "WriteFacts.data_hash")
        manifest = Manifest(
            asset_key=key,
            partition=partition,
            data_hash=data_hash,
            code_hash=facts.code_hash,
            graph_hash=facts.graph_hash,
            upstream=facts.upstream,
            environment=environment,
            environment_hash=environment.hash,
            seeds=facts.seeds,
            window=facts.window,
            git_commit=git.commit,
            git_dirty=git.dirty,
            run_id=facts.run_id,
            written_at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            writer=WriterVersions.current(),
            rows=table.num_rows,
            data_file=object_name(data_hash),
            params=facts.params,
            image_digest=self.provenance.image_digest,
        )
        for _attempt in range(READ_ATTEMPTS):
            file_hash, file_size = self._store_object(table, manifest)
            manifest = self._commit(replace(manifest, file_hash=file_hash, file_size=file_size))
            # a garbage collection cannot take an object younger than its grace period, and this
            # one was created or touched just now; checking anyway costs one stat and closes the
            # case of a clock jump or a filesystem without modification times
            if self._fs.exists(object_rel(data_hash)):
                return manifest
        raise ConcurrencyError(f"{manifest.label}: the object {object_rel(data_hash)} vanished after every "
                               "commit; is a garbage collection with a zero grace period running?")

    def _store_object(self, table: pa.Table, manifest: Manifest) -> tuple[str, int]:
        """Publish the object of ``manifest.data_hash`` (or reuse a verified existing one): its (hash, size)."""
        rel = object_rel(manifest.data_hash)
        if self._fs.exists(rel):
            reused = self._reusable(rel, manifest.data_hash)
            if reused is not None:
                return reused
        metadata = dict(table.schema.metadata or {})
        metadata[OBJECT_METADATA_KEY] = _object_footer(manifest.data_hash)
        encoded = table.replace_schema_metadata(metadata)
        try:
            with self._fs.exclusive_writer(rel, crash="write:object") as publication:
                sink = HashingWriter(publication.stream)
                pq.write_table(encoded, sink, compression=self.compression)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataError(f"{manifest.label}: the frame cannot be encoded as Parquet: {exc}") from exc
        if publication.created:
            return sink.digest, sink.size
        reused = self._reusable(rel, manifest.data_hash)  # a concurrent writer of the same content won
        if reused is not None:
            return reused
        # the existing object does not hold its data hash's content (damaged): repair it in place -
        # these bytes are by definition what its name promises
        with self._fs.atomic_writer(rel, crash="write:repair") as stream:
            sink = HashingWriter(stream)
            pq.write_table(encoded, sink, compression=self.compression)
        return sink.digest, sink.size

    def _reusable(self, rel: str, data_hash: str) -> tuple[str, int] | None:
        """``(file hash, size)`` of an existing object if it verifies as ``data_hash``'s content, else None."""
        try:
            buffer = self._fs.read_buffer(rel)
            table = pq.read_table(pa.BufferReader(buffer))
        except (FileNotFoundError, pa.ArrowException, OSError, ValueError):
            return None
        metadata = dict(table.schema.metadata or {})
        if metadata.pop(OBJECT_METADATA_KEY, None) != _object_footer(data_hash):
            return None
        if hash_table(table.replace_schema_metadata(metadata or None)) != data_hash:
            return None
        self._fs.touch(rel)  # young again: a garbage collection running now leaves it alone
        crash_point("write:object-reused")
        return file_digest(buffer), buffer.size

    def _commit(self, manifest: Manifest) -> Manifest:
        """Move the head to ``manifest`` chained to the old head (recorded in history first); record it.

        Returns:
            ``manifest`` with ``previous`` set to the manifest hash the old head records (None if none).
        """
        key, partition = manifest.asset_key, manifest.partition
        head = head_rel(key, partition)
        try:
            current = self._fs.read_buffer(head).to_pybytes()
        except FileNotFoundError:
            current = None
        previous = None
        if current is not None:
            previous = self._ensure_history(key, partition, current)
        manifest = replace(manifest, previous=previous)
        raw = manifest.to_json().encode()
        self._fs.write_bytes(head, raw, crash="write:head")
        self._fs.write_bytes(
            history_rel(key, partition, manifest.written_at, manifest.data_hash), raw, crash="write:history"
        )
        return manifest

    def _ensure_history(self, key: str, partition: str | None, raw: bytes) -> str | None:
        """Record the current head in history if its writer died before it could; its manifest hash.

        The hash is the one the head records (None if it records none): a next version chains to it
        as it stands, and ``verify`` judges whether the head's fields match it.
        """
        try:
            record = json.loads(raw)
            rel = history_rel(key, partition, record["written_at"], record["data_hash"])
        except (ValueError, KeyError, TypeError, AttributeError, ConfigurationError):
            return None  # an unreadable head: verify reports it; there is nothing safe to record
        if not self._fs.exists(rel):
            self._fs.write_bytes(rel, raw, crash="write:old-history")
        recorded = record.get("manifest_hash")
        return recorded if isinstance(recorded, str) and _MANIFEST_HASH.fullmatch(recorded) else None

    # ----------------------------------------------------------------------------------- reading
    def exists(self, key: str, partition: str | None) -> bool:
        """Whether ``key``/``partition`` has a head (not verified; see :meth:`read`)."""
        return self._fs.exists(head_rel(*self._checked(key, partition)))

    def _refuse_v1(self, key: str, partition: str | None) -> None:
        """Raise a ManifestError naming the v1 layout if ``key``/``partition`` is stored in it."""
        v1 = f"{key}/{stem(partition)}.manifest.json"
        if self._fs.exists(v1):
            raise ManifestError(
                f"{self._fs.uri(v1)} is stored in the layout of ml_platform.manifest/v1, which this "
                f"ml_platform does not read (it reads {MANIFEST_SCHEMA}: immutable objects and a "
                "manifest history); re-materialize into a new storage directory"
            )

    def v1_manifests(self) -> list[str]:
        """Paths of every manifest of the old ``ml_platform.manifest/v1`` layout under the base."""
        return [self._fs.uri(rel) for rel in self._fs.list_files() if is_v1_manifest(rel)]

    def _parse(self, raw: bytes, rel: str, key: str, partition: str | None) -> Manifest:
        manifest = Manifest.from_json(raw, source=self._fs.uri(rel))
        if (manifest.asset_key, manifest.partition) != (key, partition):
            raise ManifestError(
                f"manifest {self._fs.uri(rel)} describes {manifest.label}, not the artefact at its location; "
                "it was copied or moved by hand - re-materialize"
            )
        if manifest.file_hash is None or manifest.file_size is None:
            raise ManifestError(f"manifest {self._fs.uri(rel)} lacks the file hash and size; re-materialize")
        return manifest

    def history_entries(self, key: str, partition: str | None) -> list[tuple[str, int, str]]:
        """``(relative path, written ns, data hash)`` of every history entry of a partition, oldest first."""
        key, partition = self._checked(key, partition)
        entries = []
        for rel in self._fs.list_files(history_dir_rel(key, partition)):
            parsed = parse_history_name(rel.rpartition("/")[2])
            if parsed is not None:
                entries.append((rel, parsed.nanoseconds, parsed.data_hash))
        return sorted(entries, key=lambda entry: (entry[1], entry[0]))

    def history_entry(self, key: str, partition: str | None, rel: str) -> Manifest:
        """The validated manifest of one history entry of ``key``/``partition`` (``rel`` as listed).

        Raises:
            ManifestError: it is malformed or misplaced (:class:`ManifestTampered`: its fields were edited).
            FileNotFoundError: it vanished since it was listed.
        """
        key, partition = self._checked(key, partition)
        return self._parse(self._fs.read_buffer(rel).to_pybytes(), rel, key, partition)

    def manifest(self, key: str, partition: str | None, data_hash: str | None = None) -> Manifest:
        """The validated head manifest of ``key``/``partition``, or its version of ``data_hash`` (as of).

        Raises:
            ManifestError: nothing is stored there (or no version of that hash), the head is missing
                while history exists, or the manifest is malformed or misplaced.
        """
        key, partition = self._checked(key, partition)
        where = key if partition is None else f"{key} partition {partition}"
        rel = head_rel(key, partition)
        if data_hash is not None:
            validate_data_hash(data_hash)
        try:
            raw = self._fs.read_buffer(rel).to_pybytes()
        except FileNotFoundError:
            raw = None
        if raw is not None:
            try:
                head = self._parse(raw, rel, key, partition)
            except ManifestError:
                if data_hash is None:
                    raise
            else:  # an as-of read does not need a readable head: the history holds every version
                if data_hash is None or head.data_hash == data_hash:
                    return head
        entries = self.history_entries(key, partition)
        if data_hash is not None:
            matching = [entry for entry in entries if entry[2] == data_hash]
            if not matching:
                known = ", ".join(dict.fromkeys(entry[2] for entry in reversed(entries))) or "none"
                raise ManifestError(f"{where} has no stored version with data hash {data_hash} under {self.base} "
                                    f"(recorded versions, newest first: {known}); it was never written here, "
                                    "or garbage collection removed it")
            history = matching[-1][0]
            return self._parse(self._fs.read_buffer(history).to_pybytes(), history, key, partition)
        if entries:
            raise ManifestError(
                f"the head {self._fs.uri(rel)} of {where} is missing although its history records "
                f"{len(entries)} version(s) (newest: {entries[-1][2]}); the head was deleted - re-materialize "
                f"{where}, or read a version by its data hash"
            )
        self._refuse_v1(key, partition)
        raise ManifestError(f"nothing is stored for {where} under {self.base}; materialize it first")

    def history(self, key: str, partition: str | None) -> list[Manifest]:
        """Every recorded version of ``key``/``partition``, oldest first (validated manifests)."""
        key, partition = self._checked(key, partition)
        return [self._parse(self._fs.read_buffer(rel).to_pybytes(), rel, key, partition)
                for rel, _, _ in self.history_entries(key, partition)]

    def load_verified(
        self, key: str, partition: str | None, manifest: Manifest | None = None, data_hash: str | None = None
    ) -> tuple[pa.Table, Manifest]:
        """Read one version (the head, or that of ``data_hash``) as Arrow and verify all but the environment.

        If the object of the head vanished because the head moved meanwhile, the read follows the
        new head, up to :data:`READ_ATTEMPTS` times, then raises :class:`ConcurrencyError`.
        """
        manifest = manifest if manifest is not None else self.manifest(key, partition, data_hash)
        for _attempt in range(READ_ATTEMPTS):
            try:
                buffer = self._fs.read_buffer(object_rel(manifest.data_hash))
            except FileNotFoundError:
                if data_hash is None:
                    latest = self.manifest(key, partition)
                    if (latest.data_hash, latest.written_at) != (manifest.data_hash, manifest.written_at):
                        manifest = latest  # a concurrent write moved the head: read that version
                        continue
                raise self._missing_object(manifest) from None
            return self._decode(buffer, manifest), manifest
        raise ConcurrencyError(
            f"{manifest.label} was replaced {READ_ATTEMPTS} times while being read (concurrent writers); "
            "retry the read"
        )

    def verify_bytes(self, manifest: Manifest) -> None:
        """Check that the object of ``manifest`` holds exactly the bytes recorded when it was written.

        The size and the file hash the manifest records are compared with the stored bytes: the same
        proof as a full read (those bytes were hashed as this data hash when written) without decoding
        the Parquet (every stored manifest records them; only the copy in the Parquet footer does not).

        Raises:
            ManifestError: the object is missing. IntegrityError: its bytes differ (path, expected, actual).
        """
        try:
            buffer = self._fs.read_buffer(object_rel(manifest.data_hash))
        except FileNotFoundError:
            raise self._missing_object(manifest) from None
        self._check_bytes(buffer, manifest)

    def _missing_object(self, manifest: Manifest) -> ManifestError:
        return ManifestError(
            f"the object {self.data_path(manifest)} of {manifest.label} (data hash {manifest.data_hash}) "
            f"is missing; it was deleted by hand or lost - re-materialize {manifest.label}"
        )

    def _check_bytes(self, buffer: pa.Buffer, manifest: Manifest) -> None:
        path = self.data_path(manifest)
        actual_file = file_digest(buffer)
        if buffer.size != manifest.file_size:
            raise IntegrityError(
                f"{path} is {buffer.size} bytes but its manifest records {manifest.file_size} "
                f"(expected file hash {manifest.file_hash}, actual {actual_file}): the file is truncated "
                f"or was overwritten - re-materialize {manifest.label}"
            )
        if actual_file != manifest.file_hash:
            raise IntegrityError(
                f"{path} does not hold the bytes its manifest records: expected file hash "
                f"{manifest.file_hash}, actual {actual_file}; the file is corrupt - re-materialize "
                f"{manifest.label}"
            )

    def _decode(self, buffer: pa.Buffer, manifest: Manifest) -> pa.Table:
        path = self.data_path(manifest)
        self._check_bytes(buffer, manifest)
        try:
            table = pq.read_table(pa.BufferReader(buffer))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise IntegrityError(
                f"{path} cannot be decoded as Parquet ({exc}); expected data hash {manifest.data_hash} - "
                f"re-materialize {manifest.label}"
            ) from exc
        metadata = dict(table.schema.metadata or {})
        footer = metadata.pop(OBJECT_METADATA_KEY, None)
        if footer != _object_footer(manifest.data_hash):
            raise IntegrityError(
                f"{path}: its footer names data hash {footer!r}, not {manifest.data_hash} of the manifest of "
                f"{manifest.label}; the object was replaced by hand - re-materialize {manifest.label}"
            )
        table = table.replace_schema_metadata(metadata or None)
        actual = hash_table(table)
        if actual != manifest.data_hash:
            raise IntegrityError(
                f"{path}: content hash mismatch: expected {manifest.data_hash}, actual {actual}; "
                f"the stored data is not what was recorded - re-materialize {manifest.label}"
            )
        return table

    def acceptance_files(self) -> list[AcceptanceFile]:
        """Every environment acceptance recorded in this store, each verified or carrying its problem."""
        return read_acceptances(self._fs)

    def _check_environment(self, manifest: Manifest, what: str) -> tuple[EnvironmentDiff, tuple[str, ...]]:
        running = self.environment
        strict_mismatch = self.policy is EnvironmentPolicy.STRICT and manifest.environment_hash != running.hash
        # the acceptances are read only when a strict read would otherwise refuse (an upgraded image)
        files = self.acceptance_files() if strict_mismatch else []
        verdict = decide_environment(manifest.environment, running, self.policy, what, files)
        return verdict.diff, () if verdict.acceptance is None else (verdict.acceptance.sha256,)

    def read(self, key: str, partition: str | None, data_hash: str | None = None) -> StoredFrame:
        """Read and verify one partition (or the unpartitioned artefact when ``partition`` is None).

        Args:
            data_hash: read the version of this data hash (as of) instead of the head.

        Raises:
            ManifestError: nothing stored, a malformed manifest, or data and manifest disagree.
            IntegrityError: the bytes or the content differ from what the manifest records.
            ConcurrencyError: the head kept moving while being read.
            EnvironmentMismatch: under ``strict``, the environment differs from the recorded one.
        """
        table, manifest = self.load_verified(key, partition, data_hash=data_hash)
        diff, accepted = self._check_environment(manifest, manifest.label)
        return StoredFrame(frame=pl.from_arrow(table), manifest=manifest, environment_diff=diff, acceptances=accepted)

    def read_many(
        self, key: str, partitions: Sequence[str], *, window: DataWindow | str | None = None
    ) -> tuple[pl.DataFrame, tuple[Manifest, ...]]:
        """Read and verify several partitions and concatenate them vertically, in the given order.

        Args:
            window: the data window the partitions cover, named in the error when there are none.

        Raises:
            DataError: no partitions were asked for, or their schemas differ.
            ManifestError / IntegrityError / EnvironmentMismatch: as for :meth:`read`.
        """
        stored = self.read_partitions(key, partitions, window=window)
        return stored.frame, stored.manifests

    def read_partitions(
        self, key: str, partitions: Sequence[str], *, window: DataWindow | str | None = None
    ) -> StoredFrames:
        """:meth:`read_many`, also returning how the partitions' environments differ from the running one.

        The environment is checked once per distinct environment lock among the versions returned,
        and a refusal names the first partition written under the differing environment.
        """
        key = validate_key(key)
        if isinstance(partitions, str):
            raise DataError(f"read_many of {key} needs a sequence of partition keys, got the string {partitions!r}")
        if not partitions:
            what = f"the data window {window}" if window is not None else "the request"
            raise DataError(
                f"read_many of {key}: {what} holds no partition of {key} (an empty list of partition keys; "
                "e.g. a window of only weekends or holidays of the calendar); widen the window"
            )
        for partition in partitions:
            validate_partition(partition, key)
        loaded = [self.load_verified(key, partition) for partition in partitions]
        differences: dict[str, None] = {}
        accepted: dict[str, None] = {}
        checked: set[str] = set()
        for _, manifest in loaded:
            if manifest.environment_hash not in checked:
                checked.add(manifest.environment_hash)
                diff, used = self._check_environment(manifest, manifest.label)
                differences.update(dict.fromkeys(diff.differences))
                accepted.update(dict.fromkeys(used))
        try:
            table = pa.concat_tables([table for table, _ in loaded])
        except pa.ArrowInvalid as exc:
            raise DataError(
                f"partitions {partitions[0]}..{partitions[-1]} of {key} have different schemas ({exc}); "
                "re-materialize the older partitions with the current code"
            ) from exc
        return StoredFrames(
            pl.from_arrow(table),
            tuple(manifest for _, manifest in loaded),
            EnvironmentDiff(tuple(differences)),
            tuple(accepted),
        )

    def locations(self, key: str | None = None) -> list[tuple[str, str | None]]:
        """``(key, partition)`` of every partition with a head or a history (of ``key`` only), sorted."""
        under = f"{REFS_DIR}/{validate_key(key)}" if key else REFS_DIR
        found = {partition_location(rel) for rel in self._fs.list_files(under)}
        located = [loc for loc in found if loc is not None and (key is None or loc[0] == key)]
        return sorted(located, key=lambda loc: (loc[0], stem(loc[1])))

    def list_keys(self) -> list[tuple[str, bool]]:
        """``(key, has an unpartitioned version)`` of every key with a stored partition, sorted.

        Walks only the key directories (stopping at the partition folders), so it costs one listing per
        key rather than one per stored version, as :meth:`locations` does.
        """
        found: list[tuple[str, bool]] = []
        pending = [""]
        while pending:
            key = pending.pop()
            children = self._fs.list_dirs(f"{REFS_DIR}/{key}" if key else REFS_DIR)
            partitions = [name for name in children if name.startswith(PARTITION_MARK)]
            if key and partitions:
                found.append((key, f"{PARTITION_MARK}{UNPARTITIONED}" in partitions))
            pending += [f"{key}/{name}" if key else name for name in children if not name.startswith(PARTITION_MARK)]
        return sorted(found)

    def keys_holding(self, data_hash: str, keys: Iterable[tuple[str, bool]] | None = None) -> list[str]:
        """The unpartitioned keys with a recorded version of ``data_hash`` (e.g. a model's training set), sorted.

        ``keys``: :meth:`list_keys` already listed by the caller (listed here otherwise).
        """
        holders = []
        for key, unpartitioned in self.list_keys() if keys is None else keys:
            if not unpartitioned:
                continue
            try:
                if any(entry[2] == data_hash for entry in self.history_entries(key, None)):
                    holders.append(key)
            except ConfigurationError:  # a folder whose name is no valid key: not a holder
                continue
        return holders

    def manifests(self, key: str | None = None) -> Iterator[Manifest]:
        """Every head manifest (of ``key``, or of all keys), sorted by key and partition.

        Raises:
            ManifestError: a partition has history but no head (its head was deleted), or a head is bad.
        """
        for location_key, partition in self.locations(key):
            yield self.manifest(location_key, partition)
