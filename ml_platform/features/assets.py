"""Thin Dagster wrapper: turn a hashed :class:`~ml_platform.features.graph.FeatureGraph` into assets.

How it works, and why: docs/architecture.md, "ml_platform/features/assets.py".
"""


import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl

from ml_platform import metadata
from ml_platform.dagster_boundary import platform_failures
from ml_platform.environment import derive_seed
from ml_platform.errors import ConfigurationError, DataError
from ml_platform.features.calendar import Calendar
from ml_platform.features.graph import FeatureGraph, HashedFeature
from ml_platform.keys import FrameKeys
from ml_platform.lineage.data_hash import hash_table
from ml_platform.window import DataWindow

__all__ = ["FeatureAssetsTranslator", "build_feature_assets", "canonical_frame", "window_of"]


class FeatureAssetsTranslator:
    """How feature nodes become Dagster asset keys, groups, descriptions and metadata.

    Args:
        key_prefix: asset key prefix of every node (``("team_a",)`` makes ``team_a/momentum``); two
            graphs in one deployment need different prefixes.
        group_name: the group of every node; default each node's own ``group``.

    Example:
        >>> class MyTranslator(FeatureAssetsTranslator):
        ...     def get_group_name(self, node):
        ...         return "equities_" + node.spec.group
    """

    def __init__(self, key_prefix: str | Sequence[str] = (), group_name: str | None = None) -> None:
        prefix = (key_prefix,) if isinstance(key_prefix, str) else tuple(key_prefix)
        for part in prefix:
            if not isinstance(part, str) or not part or not part.replace("_", "a").isalnum():
                raise ConfigurationError(
                    f"key_prefix {prefix!r} has an unusable part {part!r}: use letters, digits and _")
        self.key_prefix: tuple[str, ...] = prefix
        self.group_name = group_name

    def get_asset_key(self, node: HashedFeature) -> dg.AssetKey:
        return dg.AssetKey([*self.key_prefix, node.key])

    def get_group_name(self, node: HashedFeature) -> str:
        return self.group_name or node.spec.group

    def get_description(self, node: HashedFeature) -> str | None:
        return node.spec.description or None

    def get_metadata(self, node: HashedFeature) -> dict[str, Any]:
        return {
            metadata.CODE_HASH: node.code_hash,
            metadata.GRAPH_HASH: node.graph_hash,
            metadata.NODE: node.key,
            metadata.FUNCTION: node.function,
            metadata.SOURCE: dg.MetadataValue.path(f"{node.file}:{node.line}"),
            metadata.UPSTREAM: list(node.spec.upstream_keys),
        }

    def store_key(self, node: HashedFeature) -> str:
        """Where the pinned store keeps the node: its asset key path joined by ``/``."""
        return "/".join(self.get_asset_key(node).path)


def window_of(context: dg.AssetExecutionContext, calendar: Calendar) -> DataWindow:
    """The calendar days of a (single or range) partitioned run."""
    keys = context.partition_key_range
    return calendar.window_of_keys(keys.start, keys.end)


def canonical_frame(frame: object, node: HashedFeature, window: DataWindow | None, keys: FrameKeys) -> pl.DataFrame:
    """Check a feature function's result and bring it to canonical form (window rows, sorted, unique)."""
    where = f"feature {node.key!r} ({node.function})"
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"{where} returned {type(frame).__name__}; feature functions must return a polars DataFrame")
    missing = [c for c in keys.columns if c not in frame.columns]
    if missing:
        raise DataError(f"{where} returned no {missing} column(s); every frame of this graph is keyed by "
                        f"({keys}); return them, or declare the graph's keys with FeatureGraph(keys=...)")
    time_type = frame.schema[keys.time]
    if time_type != pl.Date and not isinstance(time_type, pl.Datetime):
        raise DataError(f"{where}: time column {keys.time!r} is {time_type}, expected Date or Datetime")
    if window is not None:
        day = pl.col(keys.time) if time_type == pl.Date else pl.col(keys.time).dt.date()
        frame = frame.filter(day.is_between(window.start, window.end))
    frame = frame.sort(*keys.columns, maintain_order=True)
    if frame.height and frame.select(pl.struct(*keys.columns).is_duplicated().any()).item():
        raise DataError(f"{where} returned duplicate ({keys}) rows; each key must appear once")
    return frame


def _metadata(node: HashedFeature, graph: FeatureGraph, frame: pl.DataFrame, window: DataWindow | None,
              seeds: Mapping[str, int], params: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        metadata.CODE_HASH: node.code_hash,
        metadata.GRAPH_HASH: node.graph_hash,
        metadata.DATA_HASH: hash_table(frame),
        metadata.SEEDS: dict(seeds),
        metadata.PARAMS: dict(params),
        metadata.TIME_COLUMN: graph.keys.time,
        metadata.PROJECT_ROOT: graph.project_root,
        metadata.ROW_COUNT: frame.height,
    }
    if window is not None:
        meta[metadata.WINDOW] = str(window)
    return meta


def _windowed_config(node: HashedFeature) -> dict[str, dg.Field] | None:
    """Run config of a node: only the window of a windowed node.

    Declared params are *not* run config: they are part of the code hash, and a run that overrode
    one would store data under a graph hash that does not describe it (a deploy contract could not
    tell the difference). Changing a param is a code change: a new graph.
    """
    if node.spec.partitioned:
        return None
    return {"window": dg.Field(
        str, is_required=True,
        description="Inclusive data window START..END (ISO days), e.g. 2010-01-04..2011-12-30.",
    )}


def _call_args(node: HashedFeature, params: Mapping[str, Any], window: DataWindow,
               seed_label: str) -> tuple[dict[str, Any], dict[str, int]]:
    spec = node.spec
    kwargs: dict[str, Any] = dict(params)
    seeds = {name: int(params[name]) for name in spec.seed_params}
    if spec.wants_window:
        kwargs["window"] = window
    if spec.wants_seed:
        kwargs["seed"] = seeds["seed"] = derive_seed(node.graph_hash, seed_label, spec.key)
    return kwargs, seeds


class _Builder:
    """Builds the assets of one graph on one calendar with one translator."""

    def __init__(self, graph: FeatureGraph, calendar: Calendar, translator: FeatureAssetsTranslator) -> None:
        self.graph, self.calendar, self.translator = graph, calendar, translator

    def _common(self, node: HashedFeature) -> dict[str, Any]:
        t = self.translator
        key = t.get_asset_key(node)
        # the project root is also declared on the definition: build_definitions gives it to the store, so reads
        # compare with the environment of the project that writes (its uv.lock), not the working directory's
        declared = {**t.get_metadata(node), metadata.PROJECT_ROOT: self.graph.project_root}
        return {"key": key, "code_version": node.graph_hash, "group_name": t.get_group_name(node),
                "description": t.get_description(node), "metadata": declared, "kinds": {"polars"},
                "config_schema": _windowed_config(node)}

    def _emit(self, node: HashedFeature, window: DataWindow, label: str,
              inputs: Mapping[str, pl.DataFrame], extra: Mapping[str, Any] | None = None) -> dg.Output[pl.DataFrame]:
        spec = node.spec
        params = dict(spec.params)
        kwargs, seeds = _call_args(node, params, window, label)
        result = canonical_frame(spec.fn(**inputs, **kwargs), node, window, self.graph.keys)
        meta = {**_metadata(node, self.graph, result, window, seeds, params), **dict(extra or {})}
        # Dagster gives every partition of one run the same data version: the output's content hash (for a
        # one-partition run exactly that partition's hash). An identical re-run keeps it: nothing goes stale.
        with warnings.catch_warnings():  # Output(data_version=...) is beta; content-addressed versions are the point
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.Output(result, data_version=dg.DataVersion(meta[metadata.DATA_HASH]), metadata=meta)

    def partitioned(self, node: HashedFeature) -> dg.AssetsDefinition:
        graph, calendar = self.graph, self.calendar
        ins = {name: dg.AssetIn(key=self.translator.get_asset_key(graph[up.key]),
                                partition_mapping=calendar.partition_mapping(up))
               for name, up in node.spec.upstream.items()}

        @dg.asset(ins=ins, partitions_def=calendar.partitions_def, backfill_policy=dg.BackfillPolicy.single_run(),
                  **self._common(node))
        @platform_failures
        def _asset(context: dg.AssetExecutionContext, **inputs: pl.DataFrame) -> dg.Output[pl.DataFrame]:
            window = window_of(context, calendar)
            keys = context.partition_key_range
            label = keys.start if keys.start == keys.end else str(window)
            # the IO manager splits a range into partitions and records each one's hash in its manifest
            return self._emit(node, window, label, inputs)

        return _asset

    def windowed(self, node: HashedFeature) -> dg.AssetsDefinition:
        graph, calendar, translator = self.graph, self.calendar, self.translator

        @dg.asset(deps=[translator.get_asset_key(graph[k]) for k in node.spec.upstream_keys],
                  required_resource_keys={"feature_store"}, **self._common(node))
        @platform_failures
        def _asset(context: dg.AssetExecutionContext) -> dg.Output[pl.DataFrame]:
            window = DataWindow.parse(context.op_execution_context.op_config["window"])
            store = context.resources.feature_store.get_store()
            inputs: dict[str, pl.DataFrame] = {}
            upstream: list[dict[str, str]] = []
            for name, up in node.spec.upstream.items():
                before, after = calendar.offsets(up)
                keys = calendar.keys_with_offsets(window, before, after)
                frame, manifests = store.read_many(translator.store_key(graph[up.key]), keys, window=window)
                inputs[name] = frame
                upstream += [{"key": m.asset_key, "partition": m.partition, "data_hash": m.data_hash}
                             for m in manifests]
            return self._emit(node, window, str(window), inputs, {metadata.UPSTREAM: upstream})

        return _asset


def build_feature_assets(
    graph: FeatureGraph,
    *,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    key_prefix: str | Sequence[str] = (),
    group_name: str | None = None,
    translator: FeatureAssetsTranslator | None = None,
) -> list[dg.AssetsDefinition]:
    """One Dagster asset per feature node, ``code_version`` = graph hash.

    Args:
        graph: the hashed feature graph.
        partitions_def: the graph's calendar: any time-window partitions of a day or longer
            (``DailyPartitionsDefinition``, ``WeeklyPartitionsDefinition``, business days as
            ``TimeWindowPartitionsDefinition(cron_schedule="0 0 * * 1-5", ...)``).
        key_prefix: asset key prefix of every node (ignored when ``translator`` is given).
        group_name: group of every node, default each node's own (ignored when ``translator`` is given).
        translator: full control over keys, groups, descriptions and metadata.

    Raises:
        ConfigurationError: the partitions are not time-windowed or shorter than a day, or both a
            translator and a prefix/group were given.

    Example:
        >>> assets = build_feature_assets(graph, partitions_def=dg.DailyPartitionsDefinition("2020-01-01"),
        ...                               key_prefix="team_a")
    """
    if not isinstance(graph, FeatureGraph):
        raise ConfigurationError(f"build_feature_assets needs a FeatureGraph, got {type(graph).__name__}")
    if translator is not None and (key_prefix or group_name):
        raise ConfigurationError("pass key_prefix/group_name or a translator, not both: the translator decides keys")
    builder = _Builder(graph, Calendar(partitions_def), translator or FeatureAssetsTranslator(key_prefix, group_name))
    with warnings.catch_warnings():  # single-run backfills, data versions and early lookbacks are beta APIs
        warnings.simplefilter("ignore", dg.BetaWarning)
        return [(builder.partitioned if n.spec.partitioned else builder.windowed)(n) for n in graph]
