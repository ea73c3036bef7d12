"""Reads what the checks judge: the Dagster instance (materializations, runs), the store and the registry.

The checks themselves are pure (:mod:`~ml_platform.monitoring.infra`, :mod:`~ml_platform.monitoring.drift`);
this module turns one moment of the deployment into their inputs. Every read is bounded: the newest
few partitions of the calendar, one materialization record per asset, the champion's window.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass

import dagster as dg
import polars as pl

from ml_platform.champions import LedgerEntry
from ml_platform.champions.location import open_ledger
from ml_platform.champions.service import ChampionService
from ml_platform.errors import DataError, IntegrityError, MLPlatformError, ModelNotFound, RegistryError
from ml_platform.features.calendar import Calendar
from ml_platform.io.store import PinnedStore
from ml_platform.models.signals import to_signals
from ml_platform.monitoring import infra
from ml_platform.monitoring.drift import DriftEvaluation, daily_performance, evaluate_drift
from ml_platform.monitoring.wiring import MonitoredAsset, MonitoringWiring
from ml_platform.registry.contract import DeployContract, schema_differences
from ml_platform.registry.schema import FeatureSchema
from ml_platform.registry.store import ModelRegistry
from ml_platform.window import DataWindow

__all__ = ["DriftObservation", "infra_outcomes", "newest_of", "newest_partition", "observe_drift", "recent_partitions"]

_TAIL = 8  # calendar partitions looked at from now backwards to find the expected one


def asset_key(path: str) -> dg.AssetKey:
    return dg.AssetKey(path.split("/"))


def recent_partitions(calendar: Calendar, now: dt.datetime, count: int = _TAIL) -> list[tuple[str, dt.date]]:
    """The newest ``count`` partitions that exist at ``now`` (key and session day), oldest first."""
    pd = calendar.partitions_def
    found: list[tuple[str, dt.date]] = []
    with dg.partition_loading_context(now):
        window = pd.get_last_partition_window()
        while window is not None and len(found) < count:
            key = pd.get_partition_key_range_for_time_window(window).start
            if pd.has_partition_key(key):  # an excluded day (a holiday) is no partition
                found.append((key, infra.session_day(calendar.window_of_key(key), calendar.min_days)))
            window = pd.get_prev_partition_window(window.start)
    return found[::-1]


def _materialization(instance: dg.DagsterInstance, asset: MonitoredAsset,
                     partition: str | None) -> dg.EventLogRecord | None:
    records_filter = dg.AssetRecordsFilter(asset_key=asset_key(asset.asset),
                                           asset_partitions=None if partition is None else [partition])
    records = instance.fetch_materializations(records_filter, limit=1).records
    return records[0] if records else None


def _run_facts(record: dg.RunRecord) -> infra.RunFacts:
    tags = record.dagster_run.tags
    partition = tags.get("dagster/partition")
    if partition is None and "dagster/asset_partition_range_start" in tags:
        partition = f"{tags['dagster/asset_partition_range_start']}..{tags.get('dagster/asset_partition_range_end')}"
    return infra.RunFacts(record.dagster_run.run_id, record.dagster_run.status.value, partition,
                      record.start_time, record.end_time)


def _champion(registry: ModelRegistry, model: str) -> LedgerEntry | None:
    with open_ledger(registry) as ledger:
        return ledger.head(model)


@functools.lru_cache(maxsize=64)
def _contract(registry: ModelRegistry, model: str, version: str) -> DeployContract:
    return registry.load_contract(model, version)


def _schema_outcome(instance: dg.DagsterInstance, store: PinnedStore, registry: ModelRegistry,
                    wiring: MonitoringWiring) -> infra.InfraOutcome:
    asset = wiring.model_input
    head = _champion(registry, wiring.model_name)
    newest = _materialization(instance, asset, None)
    partition = None if newest is None or newest.partition_key is None else newest.partition_key
    if head is None or partition is None:
        return infra.check_schema(asset.asset, partition, [], model=None if head is None else wiring.model_name,
                              version=None if head is None else head.to_version)
    contract = _contract(registry, wiring.model_name, head.to_version)
    manifest = store.manifest(asset.store_key, partition)
    frame = store.read(asset.store_key, partition).frame
    differences = []
    if manifest.graph_hash != contract.feature_graph_hash:
        differences.append(f"feature_graph_hash: contract {contract.feature_graph_hash} != stored {manifest.graph_hash}")
    missing_keys = [c for c in contract.keys.columns if c not in frame.columns]
    if missing_keys:
        differences.append(f"keys: {missing_keys} missing from the stored partition")
    differences.extend(schema_differences(contract, FeatureSchema.from_polars(frame)))  # as live_signals builds it
    return infra.check_schema(asset.asset, partition, differences, model=wiring.model_name, version=head.to_version)


def _ledger_anchor_outcome(registry: ModelRegistry, model: str) -> infra.InfraOutcome:
    try:
        with ChampionService.open(registry) as service:
            return infra.check_ledger_anchor(service.check_anchor(model))  # two reads: the head, its anchor
    except (MLPlatformError, OSError) as exc:  # the ledger or MLflow cannot be read: page
        return infra.InfraOutcome(infra.InfraCheckKind.LEDGER_ANCHOR, f"ledger/{model}", False,
                                  f"the champion ledger of {model!r} could not be checked against its anchor: {exc}",
                                  details={"error": str(exc)})


def infra_outcomes(instance: dg.DagsterInstance, store: PinnedStore, registry: ModelRegistry,
                   wiring: MonitoringWiring, calendar: Calendar, now: dt.datetime) -> list[infra.InfraOutcome]:
    """Every infra check of the project at ``now``: freshness and latency of each monitored asset, the
    model input's schema against the champion's contract, the ledger head against its anchor, and the
    scheduled job's run."""
    expected = infra.expected_partition(recent_partitions(calendar, now), wiring.session, wiring.slo, now)
    outcomes: list[infra.InfraOutcome] = []
    for asset in wiring.monitored:
        record = None if expected is None else _materialization(instance, asset, expected.key)
        outcomes.append(infra.check_freshness(asset.asset, expected, [] if record is None else [expected.key], now))
        run = None
        if record is not None and record.run_id:
            run_record = instance.get_run_record_by_id(record.run_id)
            run = None if run_record is None else _run_facts(run_record)
        outcomes.append(infra.check_latency(asset.asset, expected, run, wiring.slo))
    try:
        outcomes.append(_schema_outcome(instance, store, registry, wiring))
    except (MLPlatformError, OSError) as exc:  # the champion's contract or the partition cannot be read: page
        outcomes.append(infra.InfraOutcome(infra.InfraCheckKind.SCHEMA, wiring.model_input.asset, False,
                                       f"the schema of {wiring.model_input.asset} could not be checked: {exc}",
                                       details={"error": str(exc)}))
    outcomes.append(_ledger_anchor_outcome(registry, wiring.model_name))
    if wiring.scheduled_job is not None:
        runs: list[infra.RunFacts] = []
        if expected is not None:
            records = instance.get_run_records(dg.RunsFilter(job_name=wiring.scheduled_job,
                                                             tags={"dagster/partition": expected.key}), limit=20)
            runs = [_run_facts(r) for r in records]
        outcomes.append(infra.check_scheduled_run(wiring.scheduled_job, expected, runs, wiring.slo, now))
    return outcomes


@dataclass(frozen=True)
class DriftObservation:
    """The champion's live returns against its validation, at one moment.

    Attributes:
        model / version: The champion of record evaluated (``version`` ``None``: no champion).
        promoted_at: When it became champion.
        evaluation: The drift statistics (or the reason nothing was judged).
        validated / live: The daily performance frames compared (for the research report).
        time_column: Their time column.
    """

    model: str
    version: str | None
    promoted_at: dt.datetime | None
    evaluation: DriftEvaluation
    validated: pl.DataFrame
    live: pl.DataFrame
    time_column: str


@functools.lru_cache(maxsize=16)
def _validated(registry: ModelRegistry, store: PinnedStore, wiring: MonitoringWiring, version: str) -> pl.DataFrame:
    """Daily performance of ``version`` over its validation window, from its recorded training set."""
    contract = _contract(registry, wiring.model_name, version)
    rows = store.read(wiring.training.store_key, None, data_hash=contract.training_set_data_hash).frame
    window = contract.validation_window
    time = wiring.keys.time
    rows = rows.filter(pl.col(time).cast(pl.Date).is_between(window.start, window.end))
    if rows.height == 0:
        return pl.DataFrame()
    model = registry.load_model(wiring.model_name, version)
    signals = to_signals(model.predict(rows), wiring.keys)
    return daily_performance(signals, rows.select(*wiring.keys.columns, wiring.label_column),
                             label_column=wiring.label_column, keys=wiring.keys)


def _live(store: PinnedStore, wiring: MonitoringWiring, calendar: Calendar, version: str, since: dt.date,
          until: dt.date) -> pl.DataFrame:
    """Daily performance of the live signals ``version`` produced from ``since`` to ``until``."""
    window = DataWindow(since, until)
    try:
        keys = calendar.keys_in(window)
    except MLPlatformError:
        return pl.DataFrame()
    stored = [k for k in keys if store.exists(wiring.live_signals.store_key, k)
              and store.exists(wiring.label.store_key, k)]
    if not stored:
        return pl.DataFrame()
    signals, _ = store.read_many(wiring.live_signals.store_key, stored, window=window)
    labels, _ = store.read_many(wiring.label.store_key, stored, window=window)
    signals = signals.filter(pl.col("model_version") == version)
    if signals.height == 0:
        return pl.DataFrame()
    return daily_performance(signals, labels.select(*wiring.keys.columns, wiring.label_column),
                             label_column=wiring.label_column, keys=wiring.keys)


def observe_drift(store: PinnedStore, registry: ModelRegistry, wiring: MonitoringWiring, calendar: Calendar,
                  newest: str) -> DriftObservation:
    """The champion's live window ending at partition ``newest`` against its validation window.

    The live window is the last ``drift_policy.window_days`` calendar partitions up to ``newest``, and in
    it only the rows the champion itself produced (``model_version``): the days before it was promoted,
    or served by another version, are not its returns.
    """
    policy = wiring.drift_policy
    empty = pl.DataFrame()
    head = _champion(registry, wiring.model_name)
    if head is None:
        skipped = DriftEvaluation((), f"model {wiring.model_name!r} has no champion of record: nothing is served, "
                                      "nothing can drift", None, None, 0, 0, policy)
        return DriftObservation(wiring.model_name, None, None, skipped, empty, empty, wiring.keys.time)
    newest_days = calendar.window_of_key(newest)
    end = newest_days.end
    keys = calendar.keys_with_offsets(DataWindow(newest_days.start, newest_days.start), policy.window_days - 1, 0)
    since = calendar.window_of_key(keys[0]).start
    try:
        validated = _validated(registry, store, wiring, head.to_version)
    except (DataError, IntegrityError, ModelNotFound, RegistryError) as exc:  # recorded, never a crash loop
        skipped = DriftEvaluation((), f"the validation metrics of {wiring.model_name} v{head.to_version} cannot be "
                                      f"rebuilt from its recorded training set: {exc}", None, None, 0, 0, policy)
        return DriftObservation(wiring.model_name, head.to_version, head.recorded_at, skipped, empty, empty,
                                wiring.keys.time)
    live = _live(store, wiring, calendar, head.to_version, since, end)
    evaluation = evaluate_drift(validated, live, policy, time_column=wiring.keys.time)
    return DriftObservation(wiring.model_name, head.to_version, head.recorded_at, evaluation, validated, live,
                            wiring.keys.time)


def newest_of(calendar: Calendar, keys: Iterable[str | None]) -> str | None:
    """The latest in time of ``keys`` (by the calendar, not by spelling); ``None`` if there is none."""
    present = [k for k in keys if k]
    return max(present, key=lambda k: calendar.window_of_key(k).start) if present else None


def newest_partition(instance: dg.DagsterInstance, asset: MonitoredAsset, calendar: Calendar) -> str | None:
    """The newest (latest in time) materialized partition of ``asset`` (``None``: never materialized)."""
    return newest_of(calendar, instance.get_materialized_partitions(asset_key(asset.asset)))
