"""Thin Dagster wrapper: turn a hashed :class:`~ml_platform.features.graph.FeatureGraph` into assets.

Every asset gets its node's **graph hash as its ``code_version``**, so Dagster's own staleness status
("unsynced: code version changed") marks a node and every descendant the moment an ancestor's code
changes, and a materialization gets its output's **data hash as its ``DataVersion``**, so an identical
re-run does not propagate staleness. (Dagster assigns one data version to all partitions of a run; a
one-day run's data version is that day's hash, and each partition's own hash is in its metadata.) Materialization metadata shows code hash, graph hash, data hash
and row count; the :class:`~ml_platform.io.PinnedIOManager` adds the manifest facts.

Partitioned nodes are daily and run a whole partition range in one run (``BackfillPolicy.single_run``);
upstream history for point-in-time lookbacks arrives through ``TimeWindowPartitionMapping``. Windowed
(unpartitioned) nodes such as the training set read their upstream partitions for a configured window
through the ``feature_store`` resource.
"""


import datetime as dt
import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

from ml_platform.environment import derive_seed
from ml_platform.errors import DataError
from ml_platform.features.graph import FeatureGraph, HashedFeature
from ml_platform.lineage.data_hash import hash_table
from ml_platform.market.generator import DEFAULT_ORIGIN
from ml_platform.window import DataWindow

#: Daily partitions from the first day of the synthetic generator's history (the real sample starts later,
#: on 2000-03-01: asking it for earlier days fails with an error naming its coverage).
DAILY = dg.DailyPartitionsDefinition(start_date=DEFAULT_ORIGIN.isoformat())
PREFIX = "ml_platform/"


def window_of(context: dg.AssetExecutionContext) -> DataWindow:
    """The inclusive calendar-day window of a (single or range) daily-partitioned run."""
    tw = context.partition_time_window
    return DataWindow(tw.start.date(), (tw.end - dt.timedelta(days=1)).date())


def canonical_frame(frame: object, node: HashedFeature, window: DataWindow | None) -> pl.DataFrame:
    """Check a feature function's result and bring it to canonical form (window rows, sorted, unique)."""
    where = f"feature {node.key!r} ({node.function})"
    if not isinstance(frame, pl.DataFrame):
        raise DataError(f"{where} returned {type(frame).__name__}; feature functions must return a polars DataFrame")
    missing = [c for c in ("date", "instrument") if c not in frame.columns]
    if missing:
        raise DataError(f"{where} returned no {missing} column(s); every feature frame is keyed by date and instrument")
    if frame.schema["date"] != pl.Date:
        raise DataError(f"{where}: column 'date' is {frame.schema['date']}, expected Date")
    if window is not None:
        frame = frame.filter(pl.col("date").is_between(window.start, window.end))
    frame = frame.sort("date", "instrument", maintain_order=True)
    if frame.height and frame.select(pl.struct("date", "instrument").is_duplicated().any()).item():
        raise DataError(f"{where} returned duplicate (date, instrument) rows; each key must appear once")
    return frame


def _metadata(node: HashedFeature, frame: pl.DataFrame, window: DataWindow | None, seeds: Mapping[str, int],
              params: Mapping[str, Any]) -> dict[str, Any]:
    data_hash = hash_table(frame)
    meta: dict[str, Any] = {
        f"{PREFIX}code_hash": node.code_hash,
        f"{PREFIX}graph_hash": node.graph_hash,
        f"{PREFIX}data_hash": data_hash,
        f"{PREFIX}seeds": dict(seeds),
        f"{PREFIX}params": dict(params),
        "dagster/row_count": frame.height,
    }
    if window is not None:
        meta[f"{PREFIX}window"] = str(window)
    return meta


def _config_schema(node: HashedFeature) -> dict[str, dg.Field] | None:
    """Run config of a node: only the window of a windowed node.

    Declared params are *not* run config: they are part of the code hash, and a run that overrode
    one would store data under a graph hash that does not describe it (a deploy contract could not
    tell the difference). Changing a param is a code change: a new graph, e.g. ``build_graph(source=...)``.
    """
    if node.spec.partitioned:
        return None
    return {"window": dg.Field(
        str, is_required=True,
        description="Inclusive data window START..END (ISO days), e.g. 2010-01-04..2011-12-30.",
    )}


def _build_partitioned(node: HashedFeature) -> dg.AssetsDefinition:
    spec = node.spec
    ins = {
        name: dg.AssetIn(
            key=dg.AssetKey(up.key),
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-up.lookback_days, end_offset=up.lookahead_days,
                allow_nonexistent_upstream_partitions=True,
            ),
        )
        for name, up in spec.upstream.items()
    }

    @dg.asset(
        name=spec.key, ins=ins, partitions_def=DAILY, code_version=node.graph_hash, group_name=spec.group,
        description=spec.description or None, backfill_policy=dg.BackfillPolicy.single_run(),
        config_schema=_config_schema(node), metadata=_definition_metadata(node), kinds={"polars"},
    )
    def _asset(context: dg.AssetExecutionContext, **inputs: pl.DataFrame) -> dg.Output[pl.DataFrame]:
        window = window_of(context)
        params = dict(spec.params)
        label = context.partition_key if window.days == 1 else str(window)
        kwargs, seeds = _call_args(node, params, window, label)
        frame = canonical_frame(spec.fn(**inputs, **kwargs), node, window)
        # the IO manager splits the range into days and records each day's hash in its manifest and in
        # that partition's materialization metadata
        meta = _metadata(node, frame, window, seeds, params)
        # Dagster gives every partition of one run the same data version: the output's content hash (for a
        # one-day run exactly that partition's hash). An identical re-run keeps it, so nothing goes stale.
        return dg.Output(frame, data_version=dg.DataVersion(meta[f"{PREFIX}data_hash"]), metadata=meta)

    return _asset


def _build_windowed(node: HashedFeature) -> dg.AssetsDefinition:
    spec = node.spec

    @dg.asset(
        name=spec.key, deps=[dg.AssetKey(k) for k in spec.upstream_keys], code_version=node.graph_hash,
        group_name=spec.group, description=spec.description or None, config_schema=_config_schema(node),
        required_resource_keys={"feature_store"}, metadata=_definition_metadata(node), kinds={"polars"},
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.Output[pl.DataFrame]:
        window = DataWindow.parse(context.op_execution_context.op_config["window"])
        params = dict(spec.params)
        store = context.resources.feature_store.get_store()
        inputs: dict[str, pl.DataFrame] = {}
        upstream: list[dict[str, str]] = []
        for name, up in spec.upstream.items():
            span = window.shift(before=up.lookback_days, after=up.lookahead_days)
            keys = [d.isoformat() for d in span if DAILY.has_partition_key(d.isoformat())]
            frame, manifests = store.read_many(up.key, keys)
            inputs[name] = frame
            upstream += [{"key": m.asset_key, "partition": m.partition, "data_hash": m.data_hash} for m in manifests]
        kwargs, seeds = _call_args(node, params, window, str(window))
        frame = canonical_frame(spec.fn(**inputs, **kwargs), node, window)
        meta = _metadata(node, frame, window, seeds, params)
        meta[f"{PREFIX}upstream"] = upstream
        return dg.Output(frame, data_version=dg.DataVersion(meta[f"{PREFIX}data_hash"]), metadata=meta)

    return _asset


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


def _definition_metadata(node: HashedFeature) -> dict[str, Any]:
    return {
        f"{PREFIX}code_hash": node.code_hash,
        f"{PREFIX}graph_hash": node.graph_hash,
        f"{PREFIX}function": node.function,
        f"{PREFIX}source": dg.MetadataValue.path(f"{node.file}:{node.line}"),
        f"{PREFIX}upstream": list(node.spec.upstream_keys),
    }


def build_feature_assets(graph: FeatureGraph) -> list[dg.AssetsDefinition]:
    """One Dagster asset per feature node, ``code_version`` = graph hash.

    Example:
        >>> defs = dg.Definitions(
        ...     assets=build_feature_assets(FEATURE_GRAPH),
        ...     resources={"io_manager": PinnedIOManager(base_dir=".ml_platform/storage"),
        ...                "feature_store": PinnedStoreResource(base_dir=".ml_platform/storage")},
        ... )
    """
    with warnings.catch_warnings():  # single-run backfills and lookbacks before the first day are beta APIs
        warnings.simplefilter("ignore", dg.BetaWarning)
        return [(_build_partitioned if n.spec.partitioned else _build_windowed)(n) for n in graph]


# Output(data_version=...) is beta in Dagster 1.13; content-addressed data versions are the point here.
warnings.filterwarnings("ignore", message=".*data_version.*", category=dg.BetaWarning)
