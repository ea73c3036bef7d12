"""The manifest: the versioned record of one committed version of a partition.

How it works, and why: docs/architecture.md, "ml_platform/io/manifest.py".
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.metadata
import json
import re
import types
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ml_platform.environment import EnvironmentLock, validate_seed
from ml_platform.errors import ConfigurationError, ManifestError, ManifestTampered, MLPlatformError
from ml_platform.io.layout import object_name, validate_data_hash
from ml_platform.lineage.encoding import sha256_of_fields
from ml_platform.lineage.schemes import (
    MANIFEST_HASH_SCHEME,
    RECORD_SCHEMES,
    HashSchemeError,
    current_schemes,
    recorded_schemes,
)
from ml_platform.window import DataWindow

__all__ = [
    "MANIFEST_METADATA_KEY",
    "MANIFEST_SCHEMA",
    "OBJECT_METADATA_KEY",
    "Manifest",
    "UpstreamRef",
    "WriteFacts",
    "WriterVersions",
    "manifest_digest",
]

MANIFEST_SCHEMA = "ml_platform.manifest/v3"
#: the schema before every field was under the manifest's own hash; refused by name (see ``from_dict``)
UNHASHED_MANIFEST_SCHEMA = "ml_platform.manifest/v2"
#: the footer key of v1 data files (which embedded their manifest); v2 objects carry OBJECT_METADATA_KEY
MANIFEST_METADATA_KEY = b"ml_platform.manifest"
#: the footer key of an object: ``{"data_hash": ...}``, the only fact every manifest of it shares
OBJECT_METADATA_KEY = b"ml_platform.object"

_FIELDS = (
    "schema_version",
    "asset_key",
    "partition",
    "data_hash",
    "code_hash",
    "graph_hash",
    "upstream",
    "environment",
    "environment_hash",
    "seeds",
    "window",
    "git",
    "run_id",
    "written_at",
    "writer",
    "rows",
    "data_file",
    "params",
    "file",
    "hash_schemes",
    "previous",
    "manifest_scheme",
    "manifest_hash",
)
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


def manifest_digest(record: Mapping[str, Any]) -> str:
    """The manifest hash of a decoded manifest: every field but ``manifest_hash`` itself, canonical JSON.

    The scheme is the one ``record["manifest_scheme"]`` names (see docs/architecture.md,
    "ml_platform/io/manifest.py"): ``sha256`` of the length-prefixed scheme tag and the compact,
    key-sorted, ASCII JSON of the record without ``manifest_hash``.

    Raises:
        ManifestError: the scheme is unknown or retired, or a field is no JSON value (NaN).
    """
    try:
        scheme = RECORD_SCHEMES.verify("manifest", record.get("manifest_scheme"))  # type: ignore[arg-type]
    except HashSchemeError as exc:
        raise ManifestError(f"manifest_scheme: {exc}") from exc
    covered = {name: value for name, value in record.items() if name != "manifest_hash"}
    try:
        canonical = json.dumps(covered, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"a field holds no JSON value ({exc})") from exc
    return sha256_of_fields([scheme.tag, canonical])


def _dumps(data: dict[str, Any], *, indent: int | None) -> str:
    """The one JSON rendering of manifests: sorted keys, no NaN, compact when ``indent`` is None."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(data, sort_keys=True, indent=indent, separators=separators, allow_nan=False)


def _frozen_json(value: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    """A read-only deep copy of a JSON object, refusing anything JSON cannot carry faithfully."""
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what} must be a mapping, got {type(value).__name__}")
    try:
        text = json.dumps(dict(value), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"{what} must be JSON-serializable (no NaN, sets or objects): {exc}"
        ) from exc
    return types.MappingProxyType(json.loads(text))


def _frozen_seeds(seeds: Mapping[str, int]) -> Mapping[str, int]:
    if not isinstance(seeds, Mapping):
        raise ConfigurationError(f"seeds must be a mapping of name -> int, got {type(seeds).__name__}")
    for name, value in seeds.items():
        validate_seed(name, value)
    return types.MappingProxyType(dict(sorted(seeds.items())))


@dataclass(frozen=True)
class UpstreamRef:
    """One input of a node: the upstream asset key, its partition and the data hash that was read."""

    key: str
    partition: str | None
    data_hash: str

    def __post_init__(self) -> None:
        ok = (
            isinstance(self.key, str)
            and bool(self.key)
            and isinstance(self.data_hash, str)
            and bool(self.data_hash)
        )
        if not ok or not (self.partition is None or isinstance(self.partition, str)):
            raise ConfigurationError(
                f"upstream reference needs a key, an optional partition and a data hash (strings), got {self!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {"key": self.key, "partition": self.partition, "data_hash": self.data_hash}


@dataclass(frozen=True)
class WriterVersions:
    """Versions of the libraries that encoded the file."""

    ml_platform: str
    pyarrow: str
    polars: str

    @classmethod
    def current(cls) -> WriterVersions:
        """The versions running in this process (looked up once per process)."""
        return _current_writer_versions()


@functools.cache
def _current_writer_versions() -> WriterVersions:
    """The writer versions of this process; cached because installed versions do not change mid-run."""
    import polars
    import pyarrow

    try:
        own = importlib.metadata.version("ml-platform")
    except importlib.metadata.PackageNotFoundError:
        own = "unknown"
    return WriterVersions(ml_platform=own, pyarrow=pyarrow.__version__, polars=polars.__version__)


@dataclass(frozen=True)
class WriteFacts:
    """What the caller knows about a write; the store adds environment, git, time and hashes.

    Attributes:
        code_hash: the node's code hash, or None for a plain asset.
        graph_hash: the node's graph hash, or None.
        upstream: the inputs read to compute the frame.
        seeds: every seed used, by name.
        window: the data window the frame covers.
        run_id: the Dagster run id (None outside Dagster).
        params: JSON-able parameters of the node.
        data_hash: the content hash of exactly this frame if the caller already computed it; the
            store then skips hashing on write (every load still recomputes and compares it).
        project_root: the folder of the project whose code computed the frame; its git commit and
            ``uv.lock`` are recorded (default: the store's).
    """

    code_hash: str | None = None
    graph_hash: str | None = None
    upstream: tuple[UpstreamRef, ...] = ()
    seeds: Mapping[str, int] = field(default_factory=dict, hash=False)
    window: DataWindow | None = None
    run_id: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    data_hash: str | None = None
    project_root: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "upstream", tuple(self.upstream))
        if not all(isinstance(ref, UpstreamRef) for ref in self.upstream):
            raise ConfigurationError("WriteFacts.upstream must hold UpstreamRef values")
        if self.window is not None and not isinstance(self.window, DataWindow):
            raise ConfigurationError(f"WriteFacts.window must be a DataWindow, got {self.window!r}")
        object.__setattr__(self, "seeds", _frozen_seeds(self.seeds))
        object.__setattr__(self, "params", _frozen_json(self.params, "WriteFacts.params"))


@dataclass(frozen=True)
class Manifest:
    """The record of one stored partition (see the module docstring for the JSON form)."""

    asset_key: str
    partition: str | None
    data_hash: str
    code_hash: str | None
    graph_hash: str | None
    upstream: tuple[UpstreamRef, ...]
    environment: EnvironmentLock
    environment_hash: str
    seeds: Mapping[str, int] = field(hash=False)
    window: DataWindow | None
    git_commit: str | None
    git_dirty: bool
    run_id: str | None
    written_at: str
    writer: WriterVersions
    rows: int
    data_file: str
    params: Mapping[str, Any] = field(hash=False)
    file_hash: str | None = None
    file_size: int | None = None
    schema_version: str = MANIFEST_SCHEMA
    #: kind -> scheme id of every hash recorded here (code, graph, data, environment), so a hash recorded
    #: today stays recomputable after a scheme changes; a record without it predates scheme ids (v1).
    hash_schemes: Mapping[str, str] = field(default_factory=current_schemes, hash=False)
    #: the manifest hash of the head this version replaced (None for a partition's first version)
    previous: str | None = None
    #: the scheme of this manifest's own hash (:attr:`manifest_hash`)
    manifest_scheme: str = MANIFEST_HASH_SCHEME
    #: the digest of the container image that wrote it (``sha256:<64 hex>``); None outside an image. Optional and
    #: written only when known, so manifests without it keep their fields, and so their manifest hash
    image_digest: str | None = None

    def __post_init__(self) -> None:
        if self.schema_version != MANIFEST_SCHEMA:
            raise ManifestError(
                f"unsupported manifest schema {self.schema_version!r}; expected {MANIFEST_SCHEMA!r}"
            )
        try:
            RECORD_SCHEMES.verify("manifest", self.manifest_scheme)
        except HashSchemeError as exc:
            raise ManifestError(f"manifest of {self.label}: manifest_scheme: {exc}") from exc
        if self.previous is not None and not (isinstance(self.previous, str) and _SHA256.fullmatch(self.previous)):
            raise ManifestError(f"manifest of {self.label}: previous {self.previous!r} is not a manifest hash "
                                "(sha256:<64 hex digits>) or null")
        try:
            object.__setattr__(self, "hash_schemes", types.MappingProxyType(recorded_schemes(self.hash_schemes)))
        except HashSchemeError as exc:
            raise ManifestError(f"manifest of {self.label}: {exc}") from exc
        if self.image_digest is not None and not (isinstance(self.image_digest, str)
                                                  and _SHA256.fullmatch(self.image_digest)):
            raise ManifestError(f"manifest of {self.label}: image_digest {self.image_digest!r} is not an image digest "
                                "(sha256:<64 hex digits>)")
        if self.environment_hash != self.environment.hash:
            raise ManifestError(
                f"manifest of {self.label}: environment_hash {self.environment_hash} does not match its "
                f"environment record ({self.environment.hash}); the manifest was altered"
            )
        try:
            object.__setattr__(self, "seeds", _frozen_seeds(self.seeds))
            object.__setattr__(self, "params", _frozen_json(self.params, "manifest params"))
        except ConfigurationError as exc:
            raise ManifestError(f"manifest of {self.label}: {exc}") from exc
        object.__setattr__(self, "upstream", tuple(self.upstream))
        name = self.data_file
        if not name.endswith(".parquet") or name.startswith(".") or "/" in name or "\\" in name:
            raise ManifestError(f"manifest of {self.label}: data_file {name!r} is not a Parquet file name")
        try:
            expected = object_name(validate_data_hash(self.data_hash))
        except ConfigurationError as exc:
            raise ManifestError(f"manifest of {self.label}: {exc}") from exc
        if name != expected:
            raise ManifestError(
                f"manifest of {self.label}: data_file {name!r} is not the object of its data hash "
                f"{self.data_hash} ({expected}); a manifest may only name its own data's object"
            )

    @property
    def label(self) -> str:
        """``key`` or ``key partition P``, for messages."""
        return self.asset_key if self.partition is None else f"{self.asset_key} partition {self.partition}"

    @functools.cached_property
    def manifest_hash(self) -> str:
        """This manifest's own hash over every field (scheme :attr:`manifest_scheme`)."""
        return manifest_digest(self._covered())

    def _covered(self) -> dict[str, Any]:
        optional = {} if self.image_digest is None else {"image_digest": self.image_digest}
        return {**optional,
            "schema_version": self.schema_version,
            "asset_key": self.asset_key,
            "partition": self.partition,
            "data_hash": self.data_hash,
            "code_hash": self.code_hash,
            "graph_hash": self.graph_hash,
            "upstream": [ref.to_dict() for ref in self.upstream],
            "environment": self.environment.to_dict(),
            "environment_hash": self.environment_hash,
            "seeds": dict(self.seeds),
            "window": None if self.window is None else self.window.to_dict(),
            "git": {"commit": self.git_commit, "dirty": self.git_dirty},
            "run_id": self.run_id,
            "written_at": self.written_at,
            "writer": asdict(self.writer),
            "rows": self.rows,
            "data_file": self.data_file,
            "params": dict(self.params),
            "file": None if self.file_hash is None else {"hash": self.file_hash, "size": self.file_size},
            "hash_schemes": dict(self.hash_schemes),
            "previous": self.previous,
            "manifest_scheme": self.manifest_scheme,
        }

    def embedded_form(self) -> Manifest:
        """The copy embedded in the Parquet footer: everything except the file's own hash and size."""
        return replace(self, file_hash=None, file_size=None)

    def embedded_json(self) -> bytes:
        """The exact bytes of :meth:`embedded_form` as written into the Parquet footer (compact JSON).

        Equal manifests give equal bytes, so a reader can compare the footer against this without
        parsing it.
        """
        return _dumps(self.embedded_form().to_dict(), indent=None).encode()

    def to_dict(self) -> dict[str, Any]:
        """Return the versioned JSON form: every field, and the manifest hash over them."""
        return {**self._covered(), "manifest_hash": self.manifest_hash}

    def to_json(self, *, indent: int | None = 2) -> str:
        """Serialize to JSON with sorted keys (indented for the sidecar, compact for the footer)."""
        return _dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str) -> Manifest:
        """Parse and validate a manifest; ``source`` (a path) is named in every error."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest {source} is not valid JSON ({exc}); re-materialize it") from exc
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> Manifest:
        """Validate a decoded manifest: known schema version, every field present and well typed."""
        if not isinstance(data, dict):
            raise ManifestError(f"manifest {source} is not a JSON object")
        version = data.get("schema_version")
        if version == UNHASHED_MANIFEST_SCHEMA:
            raise ManifestError(
                f"manifest {source} has schema version {version!r}, whose provenance fields (code hash, "
                f"seeds, rows, git, upstream) no hash covers; this ml_platform reads only {MANIFEST_SCHEMA!r}. "
                "Migrate the store with `ml-platform migrate-store` (each version's data is verified before "
                "its manifest is certified), or re-materialize into a new storage directory"
            )
        if version != MANIFEST_SCHEMA:
            raise ManifestError(
                f"manifest {source} has schema version {version!r}; this ml_platform reads only "
                f"{MANIFEST_SCHEMA!r} (upgrade ml_platform, or re-materialize the artefact)"
            )
        missing = [name for name in _FIELDS if name not in data]
        if missing:
            raise ManifestError(f"manifest {source} lacks fields {missing}; it is truncated or hand-edited")
        try:
            built = cls._build(data)
            digest = manifest_digest(data)
        except ManifestError as exc:
            raise ManifestError(f"manifest {source}: {exc}") from exc
        except (MLPlatformError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"manifest {source} has a malformed field: {exc}") from exc
        if data["manifest_hash"] != digest:
            raise ManifestTampered(
                f"manifest {source} of {built.label}: its fields hash to {digest}, but it records manifest_hash "
                f"{data['manifest_hash']!r}: a field (provenance, seeds, rows, upstream, environment, git, file) "
                "was edited after it was written, so nothing it says can be trusted. Run `ml-platform verify` "
                "to see the affected versions, and re-materialize"
            )
        if built.manifest_hash != digest:
            extra = sorted(set(data) - set(built.to_dict()))
            raise ManifestError(
                f"manifest {source} is not in the form this ml_platform writes (extra fields {extra}, or a "
                "field in another spelling); it was written by hand - run `ml-platform verify` and re-materialize"
            )
        return built

    @classmethod
    def _build(cls, data: dict[str, Any]) -> Manifest:
        def text(name: str, value: Any, optional: bool = False) -> Any:
            if value is None and optional:
                return None
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
            return value

        written_at = text("written_at", data["written_at"])
        if dt.datetime.fromisoformat(written_at).utcoffset() != dt.timedelta(0):
            raise ValueError(f"written_at {written_at!r} is not a UTC timestamp")
        rows = data["rows"]
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise ValueError(f"rows must be a non-negative integer, got {rows!r}")
        git, writer, file = data["git"], data["writer"], data["file"]
        if not isinstance(git.get("dirty"), bool):
            raise TypeError(f"git.dirty must be true or false, got {git.get('dirty')!r}")
        file_hash = None if file is None else text("file.hash", file["hash"])
        file_size = None if file is None else file["size"]
        if file_size is not None and (isinstance(file_size, bool) or not isinstance(file_size, int)):
            raise ValueError(f"file.size must be an integer, got {file_size!r}")
        return cls(
            asset_key=text("asset_key", data["asset_key"]),
            partition=text("partition", data["partition"], optional=True),
            data_hash=text("data_hash", data["data_hash"]),
            code_hash=text("code_hash", data["code_hash"], optional=True),
            graph_hash=text("graph_hash", data["graph_hash"], optional=True),
            upstream=tuple(
                UpstreamRef(
                    key=text("upstream.key", ref["key"]),
                    partition=text("upstream.partition", ref["partition"], optional=True),
                    data_hash=text("upstream.data_hash", ref["data_hash"]),
                )
                for ref in data["upstream"]
            ),
            environment=EnvironmentLock.from_dict(data["environment"]),
            environment_hash=text("environment_hash", data["environment_hash"]),
            seeds=data["seeds"],
            window=None if data["window"] is None else DataWindow.from_dict(data["window"]),
            git_commit=text("git.commit", git["commit"], optional=True),
            git_dirty=git["dirty"],
            run_id=text("run_id", data["run_id"], optional=True),
            written_at=written_at,
            writer=WriterVersions(
                ml_platform=text("writer.ml_platform", writer["ml_platform"]),
                pyarrow=text("writer.pyarrow", writer["pyarrow"]),
                polars=text("writer.polars", writer["polars"]),
            ),
            rows=rows,
            data_file=text("data_file", data["data_file"]),
            params=data["params"],
            file_hash=file_hash,
            file_size=file_size,
            schema_version=data["schema_version"],
            hash_schemes=data.get("hash_schemes"),
            previous=data["previous"],
            manifest_scheme=data["manifest_scheme"],
            image_digest=data.get("image_digest"),
        )
