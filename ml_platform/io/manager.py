"""PinnedIOManager: the Dagster IO manager that pins every output to its code, data and environment.

A thin Dagster layer over :class:`~ml_platform.io.store.PinnedStore`: ``handle_output`` turns the
asset's output metadata and the inputs its step loaded into :class:`~ml_platform.io.manifest.WriteFacts`
and writes one Parquet file + manifest per partition; ``load_input`` reads through the store's
verification (byte hash, content hash, embedded manifest, environment policy).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

import polars as pl
import pyarrow as pa
from dagster import (
    ConfigurableIOManager,
    ConfigurableResource,
    DagsterInvariantViolationError,
    InputContext,
    MetadataValue,
    OutputContext,
    TimeWindowPartitionsDefinition,
)
from pydantic import Field, PrivateAttr

from ml_platform.dagster_boundary import link_metadata, resource_settings
from ml_platform.environment import BuildProvenance, EnvironmentPolicy
from ml_platform.errors import ConfigurationError, DataError, PartitionError, WindowError
from ml_platform.io.manifest import Manifest, UpstreamRef, WriteFacts
from ml_platform.io.store import COMPRESSIONS, Compression, PinnedStore, check_compression
from ml_platform.metadata import (
    ENVIRONMENT_ACCEPTANCE,
    IMAGE_DIGEST,
    MANIFEST_HASH,
    PROJECT_ROOT,
    TIME_COLUMN,
    file_link,
)
from ml_platform.window import DataWindow, parse_partition_key, split_by_windows

__all__ = ["PinnedIOManager", "PinnedStoreResource"]

_BASE_DIR = (
    "Where Parquet files and manifests live: a local directory (relative to the working directory) "
    "or an fsspec/UPath URI such as s3://bucket/features."
)
_POLICY = (
    "What a load does when the environment lock stored with an artefact differs from the running one: "
    "STRICT refuses (production, reproduction), WARN logs and records the differences as metadata "
    "(embedded default), OFF does not compare. Python code may pass 'strict', 'warn' or 'off'."
)
_COMPRESSION = f"Parquet compression codec, one of {', '.join(COMPRESSIONS)}."
_PROJECT_ROOT = (
    "Folder of the project whose code computes the assets: its uv.lock and git commit are recorded in every "
    "manifest. Assets built by ml_platform name their own (the feature graph's project root); this is the "
    "fallback for other assets. Default: the working directory."
)
from ml_platform.metadata import PREFIX as _KEY_PREFIX

_GIT_COMMIT = ("The 40-hex git commit the running image was built from (ML_PLATFORM_GIT_COMMIT): recorded where the "
               "project root is no git checkout; a checkout at another commit is refused. None: not given.")
_GIT_DIRTY = "Whether the image was built from a tree with uncommitted changes (ML_PLATFORM_GIT_DIRTY). None: not given."
_IMAGE_DIGEST = "The running container image's digest, sha256:<64 hex> (ML_PLATFORM_IMAGE_DIGEST), recorded on writes."
_REQUIRE_COMMIT = "Refuse a write that would record no git commit (production: it could never be reproduced)."

_KEY_NAMESPACE = (
    "Asset key prefix over the whole project (a reproduction's old commit loaded beside production's code "
    "location), stripped from every asset key: the store keys are the project's own. Empty: none."
)


def store_key_of(path: Sequence[str], namespace: Sequence[str] = ()) -> str:
    """The store key of an asset key ``path``: the path without the ``namespace`` prefix, joined by ``/``.

    Raises:
        ConfigurationError: the path is not under the namespace.
    """
    n = len(namespace)
    if n and (len(path) <= n or list(path[:n]) != list(namespace)):
        raise ConfigurationError(f"asset {'/'.join(path)} is outside the key namespace {'/'.join(namespace)} that "
                                 "this deployment's IO manager stores under; build the Definitions with "
                                 "build_definitions (it prefixes every asset) or unset ML_PLATFORM_KEY_NAMESPACE")
    return "/".join(path[n:])


def _key_path(context: InputContext | OutputContext, what: str, namespace: Sequence[str] = ()) -> str:
    if not context.has_asset_key:
        raise ConfigurationError(
            f"PinnedIOManager stores asset outputs only; this {what} has no asset key. Give the op "
            "another io_manager_key (PinnedIOManager pins assets, not op outputs)."
        )
    return store_key_of(context.asset_key.path, namespace)


def _metadata_value(metadata: Mapping[str, Any], name: str) -> Any:
    value = metadata.get(_KEY_PREFIX + name)
    return value.value if isinstance(value, MetadataValue) else value


def _json_object(metadata: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = _metadata_value(metadata, name)
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigurationError(f"output metadata {_KEY_PREFIX}{name} is not JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"output metadata {_KEY_PREFIX}{name} must be a JSON object, got {value!r}")
    return dict(value)


def _upstream_refs(metadata: Mapping[str, Any]) -> list[UpstreamRef]:
    """Inputs an asset read itself (e.g. through PinnedStoreResource), declared as output metadata."""
    value = _metadata_value(metadata, "upstream")
    if value is None:
        return []
    try:
        return [UpstreamRef(str(ref["key"]), ref.get("partition"), str(ref["data_hash"])) for ref in value]
    except (TypeError, KeyError, AttributeError) as exc:
        raise ConfigurationError(
            f"output metadata {_KEY_PREFIX}upstream must be a list of {{key, partition, data_hash}} "
            f"objects, got {value!r}"
        ) from exc


def _partition_window(context: OutputContext, partition: str) -> DataWindow | None:
    """The calendar days of a time-window partition (None for other partitions)."""
    partitions_def = context.asset_partitions_def
    if not isinstance(partitions_def, TimeWindowPartitionsDefinition):
        return None
    tw = partitions_def.time_window_for_partition_key(partition)
    return DataWindow(tw.start.date(), (tw.end - dt.timedelta(days=1)).date())


def _build_store(settings: PinnedIOManager | PinnedStoreResource) -> PinnedStore:
    return PinnedStore(
        settings.base_dir, compression=settings.compression, policy=settings.environment_policy,
        project_root=settings.project_root,
        provenance=BuildProvenance(settings.git_commit, settings.git_dirty, settings.image_digest),
        require_commit=settings.require_git_commit,
    )


class PinnedStoreResource(ConfigurableResource):
    """A resource handing out the :class:`PinnedStore` behind the IO manager, for assets that read or
    write with manifests themselves (training sets, live signals).

    Example:
        .. code-block:: python

            storage = {"base_dir": ".ml_platform/storage", "environment_policy": "strict"}
            defs = Definitions(
                assets=[...],
                resources={
                    "io_manager": PinnedIOManager(**storage),
                    "pinned_store": PinnedStoreResource(**storage),
                },
            )

            @asset
            def training_set(pinned_store: PinnedStoreResource) -> pl.DataFrame:
                stored = pinned_store.get_store().read("features/momentum", "2012-01-03")
                ...
    """

    base_dir: str = Field(default=".ml_platform/storage", description=_BASE_DIR)
    environment_policy: EnvironmentPolicy = Field(default=EnvironmentPolicy.WARN, description=_POLICY)
    compression: Compression = Field(default="zstd", description=_COMPRESSION)
    project_root: str | None = Field(default=None, description=_PROJECT_ROOT)
    git_commit: str | None = Field(default=None, description=_GIT_COMMIT)
    git_dirty: bool | None = Field(default=None, description=_GIT_DIRTY)
    image_digest: str | None = Field(default=None, description=_IMAGE_DIGEST)
    require_git_commit: bool = Field(default=False, description=_REQUIRE_COMMIT)

    def __init__(self, **data: Any) -> None:
        super().__init__(**resource_settings(type(self), data, compression=check_compression))

    def get_store(self) -> PinnedStore:
        """A store on ``base_dir`` with this resource's policy and compression."""
        return _build_store(self)


class PinnedIOManager(ConfigurableIOManager):
    """Stores polars DataFrames / Arrow tables as Parquet with a manifest per partition.

    * Unpartitioned assets: one file. Partitioned assets: one file per partition key; a run over a
      range of time-window partitions (single-run backfill) splits the frame on its time column (the
      ``ml_platform/time_column`` output metadata) with :func:`~ml_platform.window.split_by_windows`
      and writes one file per partition.
    * Manifests record code/graph hash, data hash, upstream inputs with their data hashes, the
      environment lock, seeds, window, git state, run id and writer versions; the same facts appear
      as materialization metadata (``ml_platform/...``).
    * Loads verify the byte hash and the content hash, and compare the environment lock under
      ``environment_policy``. Several upstream partitions (e.g. a ``TimeWindowPartitionMapping``
      lookback) are concatenated in partition order. An input annotated ``pa.Table`` gets an Arrow
      table; anything else gets a polars DataFrame.

    The asset wrapper of the feature graph passes its facts as output metadata: ``ml_platform/code_hash``,
    ``graph_hash``, ``data_hash`` (of the whole output; reused for a one-partition write instead of
    hashing again, every load still recomputes it), ``window`` (``START..END``), ``seeds`` and ``params``
    (JSON objects). A plain asset without them gets its data hash computed and the rest left null.

    Example:
        .. code-block:: python

            defs = Definitions(
                assets=[prices, momentum],
                resources={
                    "io_manager": PinnedIOManager(
                        base_dir=".ml_platform/storage", environment_policy="warn", compression="zstd"
                    )
                },
            )
    """

    base_dir: str = Field(default=".ml_platform/storage", description=_BASE_DIR)
    environment_policy: EnvironmentPolicy = Field(default=EnvironmentPolicy.WARN, description=_POLICY)
    compression: Compression = Field(default="zstd", description=_COMPRESSION)
    project_root: str | None = Field(default=None, description=_PROJECT_ROOT)
    git_commit: str | None = Field(default=None, description=_GIT_COMMIT)
    git_dirty: bool | None = Field(default=None, description=_GIT_DIRTY)
    image_digest: str | None = Field(default=None, description=_IMAGE_DIGEST)
    require_git_commit: bool = Field(default=False, description=_REQUIRE_COMMIT)
    key_namespace: list[str] = Field(default_factory=list, description=_KEY_NAMESPACE)

    _store: PinnedStore | None = PrivateAttr(default=None)
    _loaded: dict[tuple[str, str], list[UpstreamRef]] = PrivateAttr(default_factory=dict)
    _environment_notes: dict[tuple[str, str], list[str]] = PrivateAttr(default_factory=dict)

    def __init__(self, **data: Any) -> None:
        super().__init__(**resource_settings(type(self), data, compression=check_compression))

    def get_store(self) -> PinnedStore:
        """The store this IO manager writes to (built once per resource instance)."""
        if self._store is None:
            self._store = _build_store(self)
        return self._store

    # ------------------------------------------------------------------------------------ loading
    @staticmethod
    def _step_id(context: InputContext) -> tuple[str, str] | None:
        try:
            step_context = context.step_context
        except DagsterInvariantViolationError:  # built by build_input_context outside a run
            return None
        return step_context.run_id, step_context.step.key

    def load_input(self, context: InputContext) -> pl.DataFrame | pa.Table:
        """Read the upstream partition(s) with full verification and remember what this step read."""
        key = _key_path(context, "input", self.key_namespace)
        store = self.get_store()
        manifests: Sequence[Manifest]
        if context.has_asset_partitions and len(context.asset_partition_keys) != 1:
            many = store.read_partitions(key, context.asset_partition_keys)
            frame, manifests, diff, accepted = many.frame, many.manifests, many.environment_diff, many.acceptances
        else:
            stored = store.read(key, context.asset_partition_key if context.has_asset_partitions else None)
            frame, manifests, diff = stored.frame, (stored.manifest,), stored.environment_diff
            accepted = stored.acceptances
        if accepted and len(manifests) == 1:  # a strict load relied on a recorded acceptance: name it
            context.add_input_metadata({ENVIRONMENT_ACCEPTANCE: MetadataValue.text(", ".join(accepted))})
        # the store compared the environments (and raised under strict); under warn, record what differs
        notes = list(diff.differences) if store.policy is EnvironmentPolicy.WARN else []
        # ... and under strict, the acceptance it relied on (logged, and recorded on the output's materialization)
        notes += [f"loaded under environment acceptance {accepted_hash}" for accepted_hash in accepted]
        if notes and len(manifests) == 1:  # Dagster observes input metadata on one partition only
            context.add_input_metadata(
                {_KEY_PREFIX + "environment_diff": MetadataValue.text("\n".join(notes))}
            )
        if notes:
            with contextlib.suppress(DagsterInvariantViolationError):  # no logger outside a run
                context.log.warning(
                    f"{key} was produced in a different environment (stored -> running): " + "; ".join(notes)
                )
        step = self._step_id(context)
        if step is not None:
            for stale in [other for other in self._loaded if other[0] != step[0]]:  # keep one run only
                self._loaded.pop(stale, None)
                self._environment_notes.pop(stale, None)
            refs = [UpstreamRef(m.asset_key, m.partition, m.data_hash) for m in manifests]
            self._loaded.setdefault(step, []).extend(refs)
            self._environment_notes.setdefault(step, []).extend(f"{key}: {note}" for note in notes)
        wants_arrow = getattr(context.dagster_type, "typing_type", None) is pa.Table
        return frame.to_arrow() if wants_arrow else frame

    # ------------------------------------------------------------------------------------ writing
    def _facts(self, context: OutputContext) -> tuple[WriteFacts, list[str]]:
        metadata = context.output_metadata or {}
        window_text = _metadata_value(metadata, "window")
        try:
            window = DataWindow.parse(window_text) if window_text else None
        except WindowError as exc:
            raise ConfigurationError(f"output metadata {_KEY_PREFIX}window is malformed: {exc}") from exc
        step = (context.run_id, context.step_key)
        loaded = self._loaded.get(step, [])
        try:  # a multi-asset step: keep the inputs of this output's asset only
            deps = {store_key_of(dep.asset_key.path, self.key_namespace) for dep in context.asset_spec.deps}
            loaded = [ref for ref in loaded if ref.key in deps]
        except DagsterInvariantViolationError:
            pass
        upstream = list(dict.fromkeys([*_upstream_refs(metadata), *loaded]))  # de-duplicated, in order
        facts = WriteFacts(
            code_hash=_metadata_value(metadata, "code_hash"),
            graph_hash=_metadata_value(metadata, "graph_hash"),
            upstream=tuple(upstream),
            seeds=_json_object(metadata, "seeds"),
            window=window,
            run_id=context.run_id,
            params=_json_object(metadata, "params"),
            data_hash=_metadata_value(metadata, "data_hash"),
            project_root=_metadata_value(metadata, PROJECT_ROOT[len(_KEY_PREFIX):]),
        )
        return facts, self._environment_notes.get(step, [])

    def handle_output(self, context: OutputContext, obj: pl.DataFrame | pa.Table) -> None:
        """Write the output (one file + manifest per partition) and add the manifest facts as metadata.

        The manifest's window is the ``ml_platform/window`` metadata for a single write (else the
        partition's day); each day of a range run records its own day. Upstream references are the
        inputs this step loaded through the IO manager plus any declared as ``ml_platform/upstream``
        output metadata (``[{"key", "partition", "data_hash"}, ...]``) by assets that read the store
        themselves.
        """
        key = _key_path(context, "output", self.key_namespace)
        if not isinstance(obj, (pl.DataFrame, pa.Table)):
            raise DataError(
                f"asset {key} returned {type(obj).__name__}; PinnedIOManager stores polars DataFrames "
                "and pyarrow Tables only - return one, or give the asset another io_manager_key"
            )
        facts, notes = self._facts(context)
        store = self.get_store()
        partitions = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        if len(partitions) == 1:
            partition = partitions[0]
            window = facts.window or (_partition_window(context, partition) if partition else None)
            manifest = store.write(key, partition, obj, replace(facts, window=window))
            written = [manifest]
        else:
            written = self._write_range(context, key, obj, facts)
        self._add_metadata(context, store, written, facts, notes)

    def _write_range(
        self,
        context: OutputContext,
        key: str,
        obj: pl.DataFrame | pa.Table,
        facts: WriteFacts,
    ) -> list[Manifest]:
        partitions = list(context.asset_partition_keys)
        windows = [_partition_window(context, partition) for partition in partitions]
        column = _metadata_value(context.output_metadata or {}, TIME_COLUMN[len(_KEY_PREFIX):])
        if any(w is None for w in windows) or not column:
            raise PartitionError(
                f"asset {key}: a run over several partitions ({partitions[0]}..{partitions[-1]}) is split into "
                f"one file per partition on the frame's time column: give the asset time-window partitions and "
                f"the output metadata {TIME_COLUMN!r} naming that column (ml_platform's asset factories do), or "
                "run one partition per run"
            )
        frame = obj if isinstance(obj, pl.DataFrame) else pl.from_arrow(obj)
        parts = split_by_windows(frame, windows, column)  # type: ignore[arg-type]
        window = DataWindow(windows[0].start, windows[-1].end)  # type: ignore[union-attr]
        store = self.get_store()
        upstream_for = _upstream_per_day(facts.upstream, window)
        return [
            store.write(
                key,
                partition,
                part,
                # the given data hash covers the whole range: each partition is hashed on its own
                replace(facts, window=w, data_hash=None, upstream=upstream_for(w)),
            )
            for partition, w, part in zip(partitions, windows, parts, strict=True)
        ]

    def _add_metadata(
        self,
        context: OutputContext,
        store: PinnedStore,
        written: list[Manifest],
        facts: WriteFacts,
        notes: list[str],
    ) -> None:
        first = written[0]
        given = context.output_metadata or {}
        metadata: dict[str, Any] = {
            _KEY_PREFIX + "environment_hash": MetadataValue.text(first.environment_hash),
            _KEY_PREFIX + "git_commit": MetadataValue.text(first.git_commit or "(not a git checkout)"),
            _KEY_PREFIX + "git_dirty": MetadataValue.bool(first.git_dirty),
            **({} if first.image_digest is None else {IMAGE_DIGEST: MetadataValue.text(first.image_digest)}),
            # for a range run a summary (the manifests hold every ref): Dagster copies run-level metadata
            # onto every partition's event, so a full list would grow with the square of the range length
            _KEY_PREFIX + "upstream": MetadataValue.json(
                [ref.to_dict() for ref in facts.upstream]
                if len(written) == 1
                else _upstream_summary(facts.upstream)
            ),
            _KEY_PREFIX + "writer": MetadataValue.json(asdict(first.writer)),
        }
        if notes:
            metadata[_KEY_PREFIX + "environment_diff"] = MetadataValue.text("\n".join(notes))
        if _KEY_PREFIX + "seeds" not in given:
            metadata[_KEY_PREFIX + "seeds"] = MetadataValue.json(dict(facts.seeds))
        if len(written) == 1:
            if _KEY_PREFIX + "data_hash" not in given:
                metadata[_KEY_PREFIX + "data_hash"] = MetadataValue.text(first.data_hash)
            if _KEY_PREFIX + "window" not in given and first.window is not None:
                metadata[_KEY_PREFIX + "window"] = MetadataValue.text(str(first.window))
            metadata[_KEY_PREFIX + "manifest"] = link_metadata(
                file_link(store.manifest_path(first.asset_key, first.partition))
            )
            metadata[_KEY_PREFIX + "rows"] = MetadataValue.int(first.rows)
            metadata[MANIFEST_HASH] = MetadataValue.text(first.manifest_hash)
        else:
            metadata[_KEY_PREFIX + "partitions_written"] = MetadataValue.int(len(written))
            metadata[_KEY_PREFIX + "rows"] = MetadataValue.int(sum(m.rows for m in written))
            self._add_partition_metadata(context, store, written)
        context.add_output_metadata(metadata)

    @staticmethod
    def _add_partition_metadata(context: OutputContext, store: PinnedStore, written: list[Manifest]) -> None:
        """Give each partition's materialization event its own data hash and manifest path."""
        try:
            step_context = context.step_context
        except DagsterInvariantViolationError:  # built by build_output_context outside a run
            return
        for manifest in written:
            step_context.add_asset_metadata(
                {
                    _KEY_PREFIX + "data_hash": MetadataValue.text(manifest.data_hash),
                    _KEY_PREFIX + "manifest": link_metadata(
                        file_link(store.manifest_path(manifest.asset_key, manifest.partition))
                    ),
                    _KEY_PREFIX + "rows": MetadataValue.int(manifest.rows),
                    _KEY_PREFIX + "window": MetadataValue.text(str(manifest.window)),
                    MANIFEST_HASH: MetadataValue.text(manifest.manifest_hash),
                },
                asset_key=context.asset_key,
                partition_key=manifest.partition,
            )


def _upstream_summary(refs: Sequence[UpstreamRef]) -> dict[str, Any]:
    """Per upstream key: how many partitions were read and their span."""
    out: dict[str, Any] = {}
    for ref in refs:
        entry = out.setdefault(ref.key, {"partitions": 0, "first": ref.partition, "last": ref.partition})
        entry["partitions"] += 1
        if ref.partition is not None:
            entry["first"] = min(filter(None, (entry["first"], ref.partition)))
            entry["last"] = max(filter(None, (entry["last"], ref.partition)))
    return out


def _key_day(partition: str) -> dt.date | None:
    """The day a time-window partition key names (``2012-01-03``), or None for any other key."""
    try:
        return parse_partition_key(partition)
    except PartitionError:
        return None


def _upstream_per_day(
    refs: Sequence[UpstreamRef], window: DataWindow
) -> Callable[[DataWindow], tuple[UpstreamRef, ...]]:
    """The upstream refs each day of a range run actually depends on.

    A time-window partition mapping reads, for the whole range, the range widened by a fixed lookback
    before and lookahead after. Both offsets are recovered per upstream key from what was read, and each
    day is given the refs inside ``[day - lookback, day + lookahead]``: a day's manifest lists exactly the
    partitions its value can depend on. Unpartitioned or non-daily refs go to every day.
    """
    by_key: dict[str, list[tuple[dt.date, UpstreamRef]]] = {}
    always: list[UpstreamRef] = []
    for ref in refs:
        day = _key_day(ref.partition) if ref.partition else None
        if day is None:
            always.append(ref)
        else:
            by_key.setdefault(ref.key, []).append((day, ref))
    spans: dict[str, tuple[list[dt.date], list[UpstreamRef], int, int]] = {}
    for key, items in by_key.items():
        items.sort(key=lambda item: item[0])
        dates = [d for d, _ in items]
        spans[key] = (
            dates,
            [r for _, r in items],
            max(0, (window.start - dates[0]).days),
            max(0, (dates[-1] - window.end).days),
        )

    def for_day(part: DataWindow) -> tuple[UpstreamRef, ...]:
        picked = list(always)
        for dates, refs_sorted, before, after in spans.values():
            lo = bisect.bisect_left(dates, part.start - dt.timedelta(days=before))
            hi = bisect.bisect_right(dates, part.end + dt.timedelta(days=after))
            picked.extend(refs_sorted[lo:hi])
        return tuple(picked)

    return for_day
