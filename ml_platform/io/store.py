"""PinnedStore: Parquet files with manifests, atomic replacement and verification on every read.

The base directory is a local path or an fsspec/UPath URI; :mod:`ml_platform.io.layout` says
where each file lives and :mod:`ml_platform.io.atomic` how a new version is committed.

Every read checks, in order: the sidecar manifest parses and is version ``v1``; the data file it
names exists; its size and byte hash match the manifest (any flipped or missing byte); it decodes
as Parquet; the manifest embedded in the file equals the sidecar; the recomputed content hash of
the table equals the recorded data hash; and the environment lock matches the running one under
the store's :class:`~ml_platform.environment.EnvironmentPolicy`.

This module has no Dagster import: the IO manager, the training-set assets and the CLI all use it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ml_platform.environment import (
    EnvironmentDiff,
    EnvironmentLock,
    EnvironmentPolicy,
    capture_environment,
    check_environment,
    git_state,
)
from ml_platform.errors import ConfigurationError, DataError, IntegrityError, ManifestError
from ml_platform.io.atomic import FileSystem, HashingWriter, file_digest, open_filesystem
from ml_platform.io.layout import (
    data_rel,
    is_data_file_name,
    manifest_location,
    manifest_rel,
    new_data_file_name,
    stem,
    validate_key,
    validate_partition,
)
from ml_platform.io.manifest import MANIFEST_METADATA_KEY, Manifest, WriteFacts, WriterVersions
from ml_platform.lineage.data_hash import hash_table

if TYPE_CHECKING:
    import os

    from upath import UPath

    from ml_platform.io.verify import VerifyResult

__all__ = ["COMPRESSIONS", "PinnedStore", "StoredFrame", "StoredFrames", "check_compression"]

COMPRESSIONS = ("zstd", "snappy", "lz4", "gzip", "brotli", "none")


@dataclass(frozen=True)
class StoredFrame:
    """A verified read: the frame, its manifest and how its environment differs from the running one."""

    frame: pl.DataFrame
    manifest: Manifest
    environment_diff: EnvironmentDiff


@dataclass(frozen=True)
class StoredFrames:
    """A verified read of several partitions, concatenated in the order asked for."""

    frame: pl.DataFrame
    manifests: tuple[Manifest, ...]
    environment_diff: EnvironmentDiff


def check_compression(compression: str) -> str:
    """Return ``compression`` if it is one of :data:`COMPRESSIONS`, else raise ConfigurationError naming them."""
    if compression not in COMPRESSIONS:
        raise ConfigurationError(f"unknown Parquet compression {compression!r}; use one of {COMPRESSIONS}")
    return compression


def _to_arrow(frame: pl.DataFrame | pa.Table, what: str) -> pa.Table:
    if isinstance(frame, pl.DataFrame):
        return frame.to_arrow()
    if isinstance(frame, pa.Table):
        return frame
    raise DataError(f"{what}: can store a polars DataFrame or a pyarrow Table, got {type(frame).__name__}")


class PinnedStore:
    """Stores frames as Parquet with a manifest each, and verifies them on every read.

    Args:
        base: the base directory: a path, or an fsspec/UPath URI (``s3://bucket/features``).
        compression: Parquet codec, one of ``zstd snappy lz4 gzip brotli none``.
        policy: what reads do when the stored environment lock differs from the running one.
        environment: the lock recorded on write and compared on read (default: the running one,
            :func:`~ml_platform.environment.capture_environment` of ``project_root``).
        project_root: the user's project folder whose ``uv.lock`` and git commit a write records when
            its :class:`WriteFacts` name none (default: the working directory).

    Example:
        .. code-block:: python

            store = PinnedStore(".ml_platform/storage", policy="strict")
            store.write("features/momentum", "2012-01-03", frame, WriteFacts(run_id="abc"))
            stored = store.read("features/momentum", "2012-01-03")  # verified, or an error
            stored.frame, stored.manifest.data_hash
    """

    def __init__(
        self,
        base: str | os.PathLike[str] | UPath,
        compression: str = "zstd",
        policy: EnvironmentPolicy | str = EnvironmentPolicy.WARN,
        *,
        environment: EnvironmentLock | None = None,
        project_root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.compression = check_compression(compression)
        self.policy = EnvironmentPolicy.parse(policy)
        self._fs: FileSystem = open_filesystem(base)
        self._environment = environment
        self.project_root = None if project_root is None else str(project_root)

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

    def manifest_path(self, key: str, partition: str | None) -> str:
        """Absolute path or URI of the manifest of ``key``/``partition``."""
        return self._fs.uri(manifest_rel(validate_key(key), validate_partition(partition)))

    def data_path(self, manifest: Manifest) -> str:
        """Absolute path or URI of the data file a manifest names."""
        return self._fs.uri(data_rel(manifest.asset_key, manifest.data_file))

    # ----------------------------------------------------------------------------------- writing
    def write(
        self,
        key: str,
        partition: str | None,
        frame: pl.DataFrame | pa.Table,
        facts: WriteFacts | None = None,
    ) -> Manifest:
        """Store ``frame`` as the new version of ``key``/``partition``, atomically replacing any old one.

        Returns:
            The committed manifest.

        Raises:
            ConfigurationError / PartitionError: an unusable key or partition.
            DataError: the frame is not a DataFrame/Table or cannot be encoded as Parquet.
        """
        key, partition = validate_key(key), validate_partition(partition)
        facts = facts if facts is not None else WriteFacts()
        table = _to_arrow(frame, f"{key} {stem(partition)}")
        root = facts.project_root or self.project_root
        environment = self._environment if self._environment is not None else capture_environment(root)
        git = git_state(root)
        manifest = Manifest(
            asset_key=key,
            partition=partition,
            data_hash=facts.data_hash or hash_table(table),
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
            data_file=new_data_file_name(partition),
            params=facts.params,
        )
        metadata = dict(table.schema.metadata or {})
        metadata[MANIFEST_METADATA_KEY] = manifest.embedded_json()
        try:
            with self._fs.atomic_writer(data_rel(key, manifest.data_file)) as stream:
                sink = HashingWriter(stream)
                pq.write_table(table.replace_schema_metadata(metadata), sink, compression=self.compression)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataError(f"{manifest.label}: the frame cannot be encoded as Parquet: {exc}") from exc
        manifest = replace(manifest, file_hash=sink.digest, file_size=sink.size)
        sidecar = manifest_rel(key, partition)
        previous = self._committed_data_file(sidecar, partition)
        self._fs.write_bytes(sidecar, manifest.to_json().encode())  # the commit
        if previous is not None and previous != manifest.data_file:
            self._fs.delete(data_rel(key, previous))
        return manifest

    def _committed_data_file(self, sidecar: str, partition: str | None) -> str | None:
        """The data file the current sidecar names, if it can be told safely (else None: keep it)."""
        try:
            name = json.loads(self._fs.read_buffer(sidecar).to_pybytes()).get("data_file")
        except (FileNotFoundError, ValueError, AttributeError):
            return None
        ok = isinstance(name, str) and is_data_file_name(name) and name.startswith(stem(partition) + ".")
        return name if ok and "/" not in name else None

    # ----------------------------------------------------------------------------------- reading
    def exists(self, key: str, partition: str | None) -> bool:
        """Whether a committed version of ``key``/``partition`` exists (not verified; see :meth:`read`)."""
        return self._fs.exists(manifest_rel(validate_key(key), validate_partition(partition)))

    def manifest(self, key: str, partition: str | None) -> Manifest:
        """The validated sidecar manifest of ``key``/``partition`` (the data is not read).

        Raises:
            ManifestError: nothing is stored there, or the manifest is malformed or misplaced.
        """
        key, partition = validate_key(key), validate_partition(partition)
        rel = manifest_rel(key, partition)
        try:
            raw = self._fs.read_buffer(rel).to_pybytes()
        except FileNotFoundError:
            where = "" if partition is None else f" partition {partition}"
            raise ManifestError(
                f"nothing is stored for {key}{where} under {self.base}; materialize it first"
            ) from None
        manifest = Manifest.from_json(raw, source=self._fs.uri(rel))
        if (manifest.asset_key, manifest.partition) != (key, partition):
            raise ManifestError(
                f"manifest {self._fs.uri(rel)} describes {manifest.label}, not the artefact at its location; "
                "it was copied or moved by hand - re-materialize"
            )
        if manifest.file_hash is None or manifest.file_size is None:
            raise ManifestError(f"manifest {self._fs.uri(rel)} lacks the file hash and size; re-materialize")
        return manifest

    def load_verified(
        self, key: str, partition: str | None, manifest: Manifest | None = None
    ) -> tuple[pa.Table, Manifest]:
        """Read one version as an Arrow table and verify everything except the environment.

        Retries once if a concurrent write replaced the version between reading the manifest and
        opening the data (the old data file is deleted after the new manifest is committed).
        """
        manifest = manifest if manifest is not None else self.manifest(key, partition)
        for _attempt in range(2):
            try:
                buffer = self._fs.read_buffer(data_rel(key, manifest.data_file))
            except FileNotFoundError:
                latest = self.manifest(key, partition)
                if latest.data_file != manifest.data_file:
                    manifest = latest  # a concurrent write committed a new version: read that one
                    continue
                raise ManifestError(
                    f"manifest {self.manifest_path(key, partition)} names {manifest.data_file}, which is "
                    f"missing; the data was deleted or moved - re-materialize {manifest.label}"
                ) from None
            return self._decode(buffer, manifest), manifest
        raise IntegrityError(f"{manifest.label} was replaced twice while being read; retry the read")

    def _decode(self, buffer: pa.Buffer, manifest: Manifest) -> pa.Table:
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
        try:
            table = pq.read_table(pa.BufferReader(buffer))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise IntegrityError(
                f"{path} cannot be decoded as Parquet ({exc}); expected data hash {manifest.data_hash} - "
                f"re-materialize {manifest.label}"
            ) from exc
        metadata = dict(table.schema.metadata or {})
        embedded_raw = metadata.pop(MANIFEST_METADATA_KEY, None)
        if embedded_raw is None:
            raise ManifestError(f"{path} carries no embedded manifest; it was not written by PinnedStore")
        if embedded_raw != manifest.embedded_json():  # the writer embeds exactly these bytes
            self._check_embedded(embedded_raw, manifest, path)
        table = table.replace_schema_metadata(metadata or None)
        actual = hash_table(table)
        if actual != manifest.data_hash:
            raise IntegrityError(
                f"{path}: content hash mismatch: expected {manifest.data_hash}, actual {actual}; "
                f"the stored data is not what was recorded - re-materialize {manifest.label}"
            )
        return table

    def _check_embedded(self, embedded_raw: bytes, manifest: Manifest, path: str) -> None:
        """Parse an embedded manifest whose bytes differ from the sidecar's; refuse it if its content does."""
        embedded = Manifest.from_json(embedded_raw, source=f"{path} (embedded)")
        expected = manifest.embedded_form()
        if embedded != expected:
            found = embedded.to_dict()
            fields = sorted(k for k, v in expected.to_dict().items() if found.get(k) != v)
            sidecar = self.manifest_path(manifest.asset_key, manifest.partition)
            raise ManifestError(
                f"{path}: the manifest embedded in the file disagrees with {sidecar} on {fields}; the files "
                f"were mixed up (by hand, or by an interrupted copy) - re-materialize {manifest.label}"
            )

    def _check_environment(self, manifest: Manifest, what: str) -> EnvironmentDiff:
        return check_environment(manifest.environment, self.environment, self.policy, what)

    def read(self, key: str, partition: str | None) -> StoredFrame:
        """Read and verify one partition (or the unpartitioned artefact when ``partition`` is None).

        Raises:
            ManifestError: nothing stored, a malformed manifest, or data and manifest disagree.
            IntegrityError: the bytes or the content differ from what the manifest records.
            EnvironmentMismatch: under ``strict``, the environment differs from the recorded one.
        """
        # the environment is checked on the manifest of the version actually returned: load_verified
        # may have moved to a newer version committed concurrently
        table, manifest = self.load_verified(key, partition)
        diff = self._check_environment(manifest, manifest.label)
        return StoredFrame(frame=pl.from_arrow(table), manifest=manifest, environment_diff=diff)

    def read_many(self, key: str, partitions: Sequence[str]) -> tuple[pl.DataFrame, tuple[Manifest, ...]]:
        """Read and verify several partitions and concatenate them vertically, in the given order.

        Raises:
            DataError: no partitions were asked for, or their schemas differ.
            ManifestError / IntegrityError / EnvironmentMismatch: as for :meth:`read`.
        """
        stored = self.read_partitions(key, partitions)
        return stored.frame, stored.manifests

    def read_partitions(self, key: str, partitions: Sequence[str]) -> StoredFrames:
        """:meth:`read_many`, also returning how the partitions' environments differ from the running one.

        The environment is checked once per distinct environment lock among the versions returned.
        """
        key = validate_key(key)
        if isinstance(partitions, str) or not partitions:
            raise DataError(
                f"read_many of {key} needs a non-empty sequence of partition keys, got {partitions!r}"
            )
        loaded = [self.load_verified(key, partition) for partition in partitions]
        differences: dict[str, None] = {}
        checked: set[str] = set()
        for _, manifest in loaded:
            if manifest.environment_hash not in checked:
                checked.add(manifest.environment_hash)
                what = f"{key} partitions {partitions[0]}..{partitions[-1]}"
                differences.update(dict.fromkeys(self._check_environment(manifest, what).differences))
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
        )

    def locations(self, key: str | None = None) -> list[tuple[str, str | None]]:
        """``(key, partition)`` of every committed manifest (of ``key`` only, when given), sorted."""
        found = (manifest_location(rel) for rel in self._fs.list_files(validate_key(key) if key else ""))
        return [loc for loc in found if loc is not None and (key is None or loc[0] == key)]

    def manifests(self, key: str | None = None) -> Iterator[Manifest]:
        """Every committed manifest (of ``key``, or of all keys), sorted by key and partition."""
        for location_key, partition in self.locations(key):
            yield self.manifest(location_key, partition)

    def verify(self, key: str | None = None, partition: str | None = None) -> list[VerifyResult]:
        """Check every stored artefact (or those of ``key``, or one partition) against its manifest.

        See :func:`ml_platform.io.verify.verify_store`.
        """
        from ml_platform.io.verify import verify_store

        return verify_store(self, key, partition)

    def sweep(self, older_than_seconds: float = 3600.0) -> list[str]:
        """Delete leftovers of interrupted or superseded writes; see :mod:`ml_platform.io.verify`."""
        from ml_platform.io.verify import sweep_store

        return sweep_store(self, older_than_seconds)
