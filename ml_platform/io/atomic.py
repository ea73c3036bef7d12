"""Atomic file operations and byte digests of the pinned store: a file is whole or absent, never half.

How it works, and why: docs/architecture.md, "ml_platform/io/atomic.py".
"""

from __future__ import annotations

import abc
import contextlib
import errno
import io
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import xxhash

from ml_platform.crashpoints import crash_point
from ml_platform.errors import StorageFull, StorageUnavailable
from ml_platform.network import connection_cause, server_address

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath

__all__ = [
    "FileSystem",
    "HashingWriter",
    "LocalFileSystem",
    "ObjectStoreFileSystem",
    "file_digest",
    "is_temporary",
    "open_filesystem",
]

_TMP_MARK = ".tmp-"
_FULL = {errno.ENOSPC: "no space left on", errno.EDQUOT: "the disk quota is spent on"}


def is_temporary(name: str) -> bool:
    """True for the temporary names atomic writes use (never a committed file)."""
    return name.startswith(".") and _TMP_MARK in name


def mount_point(path: Path) -> Path:
    """The mount point of the partition holding ``path`` (or, if absent, its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def storage_full(exc: OSError, target: Path) -> StorageFull | None:
    """A :class:`StorageFull` naming the partition and ``target`` if ``exc`` is ENOSPC or EDQUOT, else None."""
    what = _FULL.get(exc.errno) if exc.errno is not None else None
    if what is None:
        return None
    partition = mount_point(target)
    try:
        usage = shutil.disk_usage(partition)
        free = f"{usage.free} of {usage.total} bytes free"
    except OSError:
        free = "free space unknown"
    return StorageFull(exc.errno, f"{what} the partition mounted at {partition} ({free}) writing {target}: "
                       f"{exc.strerror}. Nothing was published there; its previous content is intact. Free space "
                       f"on {partition} (e.g. `ml-platform gc`) or move the store elsewhere, then run again")


@contextlib.contextmanager
def naming_a_full_disk(target: Path) -> Iterator[None]:
    """Re-raise an ENOSPC or EDQUOT from the block as a :class:`StorageFull` naming ``target``'s partition."""
    try:
        yield
    except OSError as exc:
        full = storage_full(exc, target)
        if full is not None:
            raise full from exc
        raise


def file_digest(data: Any) -> str:
    """``xxh3_128:<hex>`` of a bytes-like object (bytes, memoryview, ``pyarrow.Buffer``)."""
    return "xxh3_128:" + xxhash.xxh3_128_hexdigest(memoryview(data))


class HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts every byte on its way to ``sink``.

    ``close`` does not close the sink: the atomic writer owns it and still has to ``fsync`` it.
    """

    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__()
        self._sink = sink
        self._hasher = xxhash.xxh3_128()
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # type: ignore[override]
        view = memoryview(data)
        self._hasher.update(view)
        self._sink.write(view)
        self._size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._sink.flush()

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    @property
    def digest(self) -> str:
        """``xxh3_128:<hex>`` of the bytes written so far (same as :func:`file_digest` of them)."""
        return "xxh3_128:" + self._hasher.hexdigest()


class Publication:
    """The stream of an exclusive write, and afterwards whether it created the file."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.created = False


class FileSystem(abc.ABC):
    """Where a store keeps its files; paths are relative POSIX strings like ``features/m/x.parquet``."""

    @abc.abstractmethod
    def uri(self, rel: str = "") -> str:
        """The absolute path or URI of ``rel``, for messages and metadata."""

    @abc.abstractmethod
    def atomic_writer(self, rel: str, crash: str | None = None) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A binary stream whose bytes appear at ``rel`` all at once when the block exits cleanly.

        If the block raises (or the process dies) nothing appears at ``rel`` and its previous
        content is untouched.
        """

    def write_bytes(self, rel: str, data: bytes, crash: str | None = None) -> None:
        """Atomically replace ``rel`` with ``data`` (``crash``: the name of the crash points around it)."""
        with self.atomic_writer(rel, crash) as stream:
            stream.write(data)

    @abc.abstractmethod
    def exclusive_writer(self, rel: str, crash: str | None = None) -> contextlib.AbstractContextManager[Publication]:
        """Like :meth:`atomic_writer`, but never replaces an existing ``rel``.

        After the block, ``publication.created`` says whether these bytes were published (False: a
        file was already there and is left untouched; the bytes written are discarded).
        """

    @abc.abstractmethod
    def touch(self, rel: str) -> None:
        """Set the modification time of ``rel`` to now (best effort where the filesystem cannot)."""

    @abc.abstractmethod
    def read_buffer(self, rel: str) -> pa.Buffer:
        """The whole content of ``rel``; raises FileNotFoundError when it does not exist."""

    @abc.abstractmethod
    def exists(self, rel: str) -> bool:
        """Whether ``rel`` exists."""

    @abc.abstractmethod
    def delete(self, rel: str) -> None:
        """Remove ``rel`` if it exists."""

    @abc.abstractmethod
    def list_files(self, under: str = "") -> Iterator[str]:
        """Every file below ``under`` (recursively), as sorted relative paths, temporaries included."""

    @abc.abstractmethod
    def list_dirs(self, under: str = "") -> list[str]:
        """The names of the directories directly below ``under`` (not recursive), sorted; [] if it is absent."""

    @abc.abstractmethod
    def age_seconds(self, rel: str) -> float | None:
        """Seconds since ``rel`` was last modified, or None when the filesystem cannot tell."""

    @abc.abstractmethod
    def root_exists(self) -> bool:
        """Whether the store's base directory exists at all."""


class LocalFileSystem(FileSystem):
    """A POSIX directory: temporary file, ``fsync``, ``rename``, ``fsync`` of the directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    def uri(self, rel: str = "") -> str:
        return str(self.root / rel) if rel else str(self.root)

    def _temporary(self, target: Path) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.with_name(f".{target.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def _open_temporary(self, target: Path) -> tuple[Path, int]:
        """A new temporary file beside ``target`` and its descriptor; a full partition is a StorageFull."""
        with naming_a_full_disk(target):
            temporary = self._temporary(target)
            return temporary, os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    @contextlib.contextmanager
    def atomic_writer(self, rel: str, crash: str | None = None) -> Iterator[IO[bytes]]:
        target = self.root / rel
        temporary, descriptor = self._open_temporary(target)
        with naming_a_full_disk(target):
            try:
                with os.fdopen(descriptor, "wb") as stream:
                    yield stream
                    stream.flush()
                    os.fsync(stream.fileno())  # the bytes are durable before the name points at them
                if crash:
                    crash_point(f"{crash}:before-rename")
                os.replace(temporary, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
                raise
        if crash:
            crash_point(f"{crash}:after-rename")
        self._fsync_directory(target.parent)

    @contextlib.contextmanager
    def exclusive_writer(self, rel: str, crash: str | None = None) -> Iterator[Publication]:
        target = self.root / rel
        temporary, descriptor = self._open_temporary(target)
        with naming_a_full_disk(target):
            try:
                with os.fdopen(descriptor, "wb") as stream:
                    publication = Publication(stream)
                    yield publication
                    stream.flush()
                    os.fsync(stream.fileno())
                if crash:
                    crash_point(f"{crash}:before-link")
                try:
                    os.link(temporary, target)  # create-if-absent, atomically
                    publication.created = True
                except FileExistsError:
                    publication.created = False
                except OSError:  # a filesystem without hard links: check, then rename
                    if target.exists():
                        publication.created = False
                    else:
                        os.replace(temporary, target)
                        publication.created = True
                if crash:
                    crash_point(f"{crash}:after-link")
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
        if publication.created:
            self._fsync_directory(target.parent)

    def touch(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.root / rel, None)

    @staticmethod
    def _fsync_directory(directory: Path) -> None:
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def read_buffer(self, rel: str) -> pa.Buffer:
        import pyarrow as pa

        path = self.root / rel
        if path.stat().st_size == 0:  # mmap refuses empty files; an empty file is still a file
            return pa.py_buffer(b"")
        with pa.memory_map(str(path), "r") as mapped:
            return mapped.read_buffer()

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / rel).unlink()

    def list_files(self, under: str = "") -> Iterator[str]:
        start = self.root / under
        if not start.is_dir():
            return iter(())
        found = []
        for directory, _dirs, files in os.walk(start):
            relative = Path(directory).relative_to(self.root)
            found += [(relative / name).as_posix() for name in files]
        return iter(sorted(found))

    def list_dirs(self, under: str = "") -> list[str]:
        try:
            with os.scandir(self.root / under) as entries:
                return sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def age_seconds(self, rel: str) -> float | None:
        try:
            return time.time() - (self.root / rel).stat().st_mtime
        except FileNotFoundError:
            return None

    def root_exists(self) -> bool:
        return self.root.is_dir()


class ObjectStoreFileSystem(FileSystem):
    """An fsspec filesystem behind a UPath, assumed to have atomic whole-object PUTs (S3, GCS, memory).

    A server that cannot be reached once the client's own retries ran out is a :class:`StorageUnavailable`
    naming the server's address, the object and what was being done.
    """

    def __init__(self, root: UPath) -> None:
        self.root = root
        self.fs = root.fs
        self._base = root.path.rstrip("/")

    def _path(self, rel: str) -> str:
        return f"{self._base}/{rel}" if rel else self._base

    def uri(self, rel: str = "") -> str:
        return str(self.root / rel) if rel else str(self.root)

    @contextlib.contextmanager
    def _reaching(self, action: str, rel: str) -> Iterator[None]:
        """Re-raise a lost or refused connection met while doing ``action`` on ``rel`` as StorageUnavailable."""
        try:
            yield
        except Exception as exc:
            cause = connection_cause(exc)
            if cause is None:
                raise
            raise StorageUnavailable(
                f"object store {self.uri()}: {self._server(cause.url)} unreachable ({cause.message}) while trying to "
                f"{action} {self.uri(rel)}; nothing was published by this call (an object is written whole or not "
                "at all). Check that the object store is up and reachable at that address (AWS_ENDPOINT_URL for "
                "S3), then run again") from exc

    def _server(self, url: str | None) -> str:
        protocol = str(self.root.protocol or "object store").upper()
        endpoint = url or str((getattr(self.fs, "client_kwargs", None) or {}).get("endpoint_url") or "")
        endpoint = endpoint or str(getattr(self.fs, "endpoint_url", None) or "")
        return f"{protocol} server at {server_address(endpoint)}" if endpoint else f"{protocol} server"

    @contextlib.contextmanager
    def atomic_writer(self, rel: str, crash: str | None = None) -> Iterator[IO[bytes]]:
        buffer = io.BytesIO()
        yield buffer
        if crash:
            crash_point(f"{crash}:before-rename")
        with self._reaching("write", rel):
            self.fs.pipe_file(self._path(rel), buffer.getvalue())
        if crash:
            crash_point(f"{crash}:after-rename")

    @contextlib.contextmanager
    def exclusive_writer(self, rel: str, crash: str | None = None) -> Iterator[Publication]:
        buffer = io.BytesIO()
        publication = Publication(buffer)
        yield publication
        if self.exists(rel):
            return
        with self._reaching("write", rel):
            self.fs.pipe_file(self._path(rel), buffer.getvalue())
        publication.created = True

    def touch(self, rel: str) -> None:
        """Object stores cannot change a modification time without rewriting: a no-op (see gc's grace)."""

    def read_buffer(self, rel: str) -> pa.Buffer:
        import pyarrow as pa

        with self._reaching("read", rel):
            return pa.py_buffer(self.fs.cat_file(self._path(rel)))

    def exists(self, rel: str) -> bool:
        with self._reaching("look for", rel):
            return bool(self.fs.isfile(self._path(rel)))

    def delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError), self._reaching("delete", rel):
            self.fs.rm_file(self._path(rel))

    def list_files(self, under: str = "") -> Iterator[str]:
        start = self._path(under)
        with self._reaching("list the files under", under):
            if not self.fs.isdir(start):
                return iter(())
            found = [str(path).lstrip("/") for path in self.fs.find(start)]
        prefix = self._base.lstrip("/") + "/"
        return iter(sorted(path[len(prefix) :] for path in found if path.startswith(prefix)))

    def list_dirs(self, under: str = "") -> list[str]:
        start = self._path(under)
        with self._reaching("list the folders under", under):
            if not self.fs.isdir(start):
                return []
            entries = self.fs.ls(start, detail=True)
        return sorted(str(e["name"]).rstrip("/").rpartition("/")[2] for e in entries if e.get("type") == "directory")

    def age_seconds(self, rel: str) -> float | None:
        try:
            with self._reaching("read the age of", rel):
                modified = self.fs.modified(self._path(rel))
        except (NotImplementedError, FileNotFoundError, OSError):
            return None
        return time.time() - modified.timestamp()

    def root_exists(self) -> bool:
        with self._reaching("look for", ""):
            return bool(self.fs.isdir(self._base))


def open_filesystem(base: str | os.PathLike[str] | UPath) -> FileSystem:
    """A local filesystem for paths and ``file://`` URIs, an object store for other UPath protocols (its
    directory listings never cached)."""
    from upath import UPath

    path = base if isinstance(base, UPath) else UPath(os.fspath(base))
    if path.protocol in ("", "file", "local"):
        return LocalFileSystem(Path(path.path))
    # No listing cache: fsspec gives every store of a process one filesystem instance, and s3fs keeps each
    # listing forever by default, so a long-lived worker would miss what other workers wrote since it listed.
    if path.storage_options.get("use_listings_cache") is not False:
        path = UPath(str(path), **{**path.storage_options, "use_listings_cache": False})
    return ObjectStoreFileSystem(path)
