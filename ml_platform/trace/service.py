"""``trace_signal``: one live signal traced back to everything that made it, as recorded at the time.

How it works, and why: docs/architecture.md, "ml_platform/trace/service.py".
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from ml_platform.champions.location import open_ledger
from ml_platform.environment import EnvironmentPolicy, capture_environment, diff_environments
from ml_platform.errors import ConfigurationError, MLPlatformError, TraceError
from ml_platform.io.manifest import Manifest, UpstreamRef
from ml_platform.io.recorded_lineage import RecordedLineage
from ml_platform.io.store import PinnedStore
from ml_platform.keys import FrameKeys
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.schema import FeatureSchema
from ml_platform.registry.store import ModelRegistry
from ml_platform.settings import Settings
from ml_platform.trace import resolve
from ml_platform.trace.evidence import read_evidence
from ml_platform.trace.locate import LocatedSignal, locate_signal, read_verified
from ml_platform.trace.recompute import recompute_signal
from ml_platform.trace.record import (
    ChampionEntry,
    FeatureRow,
    ModelFacts,
    Recomputation,
    SignalValue,
    StoredVersion,
    TraceRecord,
)
from ml_platform.window import parse_day

__all__ = ["Beneath", "ModelInput", "trace_signal"]


@dataclass(frozen=True)
class ModelInput:
    """The lineage beneath the signal (and every manifest on it), and the model-input version it scored."""

    lineage: RecordedLineage
    manifests: Mapping[tuple[str, str | None, str], Manifest]
    manifest: Manifest
    frame: pl.DataFrame
    row: FeatureRow


@dataclass(frozen=True)
class Beneath:
    """The stored versions beneath the signal: the model input and features from the signal down, the sources."""

    features: tuple[StoredVersion, ...]
    sources: tuple[StoredVersion, ...]


def _open(settings: Settings | None, store: PinnedStore | None,
          registry: ModelRegistry | None) -> tuple[PinnedStore, ModelRegistry]:
    if store is not None and registry is not None:
        return store, registry
    settings = settings or Settings.from_env(os.environ)
    return (store or PinnedStore(settings.storage, policy=EnvironmentPolicy.OFF),
            registry or ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location))


def _trace_day(day: str | dt.date, instrument: resolve.Instrument) -> dt.date:
    """The signal's day, the arguments checked before anything is opened."""
    when = parse_day(day, what="day") if isinstance(day, str) else day
    if not isinstance(when, dt.date) or isinstance(when, dt.datetime):
        raise ConfigurationError(f"day must be an ISO date or a datetime.date, got {day!r}")
    if isinstance(instrument, str) and not instrument.strip():
        raise ConfigurationError("instrument must be a non-empty value, e.g. --instrument AAPL")
    return when


def champion_in_force(registry: ModelRegistry, signal: LocatedSignal) -> resolve.InForce:
    """The ledger entry that made the signal's model version champion, in force when the signal was
    written; the model's chain is verified first."""
    with open_ledger(registry, read_only=True) as ledger:
        ledger.verify(signal.model)  # a tampered chain cannot say who promoted what: LedgerTampered names the entry
        history = ledger.history(signal.model)
    return resolve.entry_in_force(signal.model, history, resolve.written_at(signal.manifest), signal.version)


def _model_input_ref(manifest: Manifest) -> UpstreamRef:
    refs = list(manifest.upstream)
    same_day = [r for r in refs if r.partition == manifest.partition]
    if len(same_day) == 1:
        return same_day[0]
    if len(refs) == 1:
        return refs[0]
    if not refs:
        raise TraceError(f"live signal {manifest.label} records no model-input version it scored (written by an "
                         "ml_platform that did not record them); its features cannot be followed by data hash - "
                         "rematerialize live_signals for that day to trace it")
    raise TraceError(f"live signal {manifest.label} records {len(refs)} upstream versions and none of its own "
                     f"partition: {[f'{r.key} {r.partition}' for r in refs]}")


def trace_model_input(store: PinnedStore, signal: LocatedSignal, schema: FeatureSchema, keys: FrameKeys,
                      day: dt.date, instrument: resolve.Instrument, *, verify: bool) -> ModelInput:
    """Walk the lineage beneath the signal (every object re-read when ``verify``) and read the model-input
    row it scored, which must hold every input column of the contract's ``schema``."""
    lineage, manifests = resolve.traced_lineage(store, signal.manifest, verify=verify)
    ref = _model_input_ref(signal.manifest)
    manifest = manifests[(ref.key, ref.partition, ref.data_hash)]
    frame = read_verified(store, manifest, f"{signal.label}'s model input {manifest.label}")
    values = resolve.find_row(frame, keys, day, instrument, label=f"model input {manifest.label}")
    missing = [name for name in schema.names if name not in values]
    if missing:
        raise TraceError(f"model input {manifest.label} lacks the contract's input column(s) {missing}")
    row = FeatureRow(ref.key, ref.partition, ref.data_hash, tuple((name, values[name]) for name in schema.names),
                     tuple((f.name, f.type) for f in schema))
    return ModelInput(lineage, manifests, manifest, frame, row)


def stored_beneath(store: PinnedStore, signal: Manifest, lineage: RecordedLineage,
                   manifests: Mapping[tuple[str, str | None, str], Manifest]) -> Beneath:
    """Every version beneath the signal once (the same bytes over two lineages are listed once): the model
    input first, then features by node from the signal down, then sources; partitions in time order."""
    roots = {(u.key, u.partition, u.data_hash) for u in signal.upstream}
    features: list[StoredVersion] = []
    sources: list[StoredVersion] = []
    shown: set[tuple[str, str | None, str]] = set()
    for part in lineage.partitions:
        ident = part.ident
        if part is lineage.root or ident in shown:
            continue
        shown.add(ident)
        role = "source" if part.is_source else "model_input" if ident in roots else "feature"
        (sources if part.is_source else features).append(resolve.stored_version(store, manifests[ident], role))
    order = {key: i for i, key in enumerate(lineage.keys())}
    features.sort(key=lambda v: (v.role != "model_input", order[v.key], v.partition or ""))
    sources.sort(key=lambda v: (order[v.key], v.partition or ""))
    return Beneath(tuple(features), tuple(sources))


def _model_facts(contract: DeployContract) -> ModelFacts:
    lock = contract.environment
    summary = {"python": f"{lock.python_implementation} {lock.python_version}", "platform": lock.platform,
               "uv_lock_hash": lock.uv_lock_hash, "packages": len(lock.package_versions)}
    data = contract.to_dict()
    data.pop("environment_lock", None)
    return ModelFacts(
        name=contract.model_name, version=str(contract.model_version), model_sha256=contract.model_sha256,
        model_format=contract.model_format, feature_graph_hash=contract.feature_graph_hash,
        input_columns=tuple(contract.feature_schema.names), training_window=str(contract.training_window),
        validation_window=str(contract.validation_window),
        training_set_data_hash=contract.training_set_data_hash, seeds=dict(contract.seeds),
        environment_hash=contract.environment_hash, uv_lock_hash=lock.uv_lock_hash, environment=summary,
        git_commit=contract.git_commit, git_dirty=contract.git_dirty, trained_by=contract.trained_by,
        created_at=contract.created_at.isoformat(), contract_sha256=contract.sha256, contract=data)


def _training_set(store: PinnedStore, contract: DeployContract,
                  listed: list[tuple[str, bool]]) -> tuple[StoredVersion | None, str | None]:
    data_hash = contract.training_set_data_hash
    try:
        holders = store.keys_holding(data_hash, listed)
        key = holders[0] if holders else None
        if key is None:
            return None, (f"the model's training set ({data_hash}) is no longer stored under {store.base} (collected "
                          "by gc, or trained elsewhere); `ml-platform reproduce` needs it")
        manifest = store.manifest(key, None, data_hash=data_hash)
    except MLPlatformError as exc:
        return None, f"the model's training set ({data_hash}) is not readable here: {exc}"
    return resolve.stored_version(store, manifest, "training_set"), None


def trace_notes(signal: LocatedSignal, in_force: resolve.InForce, model_input: Manifest, feature_graph_hash: str,
                training_problem: str | None) -> tuple[str, ...]:
    """What a reader of the trace must know: a champion moved while scoring, a model input computed by
    another feature graph than the contract's, other versions of the day, a training set no longer stored."""
    notes = []
    if in_force.note:
        notes.append(in_force.note)
    if model_input.graph_hash != feature_graph_hash:
        notes.append(f"the model input {model_input.label} was computed by feature graph "
                     f"{model_input.graph_hash}, not the {feature_graph_hash} of the model's contract")
    if signal.others:
        notes.append(f"{signal.manifest.label} has {len(signal.others)} other recorded version(s) (rematerialized: "
                     f"{', '.join(f'{w} {h}' for w, h in signal.others)}); this trace follows the version written "
                     f"at {signal.manifest.written_at}")
    if training_problem:
        notes.append(training_problem)
    return tuple(notes)


def champion_entry(registry: ModelRegistry, store: PinnedStore, signal: LocatedSignal,
                   in_force: resolve.InForce) -> ChampionEntry:
    """The champion of record's ledger entry with its report and rationale read back and checked; an
    altered or missing document is refused by name."""
    entry = in_force.entry
    report = read_evidence(registry, entry.report_ref, entry.report_sha256, text=False)
    rationale = read_evidence(registry, entry.rationale_ref, entry.rationale_sha256, text=True)
    bad = [(f"the {what} of ledger entry {entry.seq}", doc.sha256, f"{doc.ref}: {doc.problem}")
           for what, doc in (("report", report), ("rationale", rationale)) if doc is not None and doc.problem]
    if bad:
        raise resolve.broken(f"{signal.label}: the champion of record's evidence", bad, store)
    return ChampionEntry(
        model=signal.model, seq=entry.seq, kind=entry.kind, from_version=entry.from_version,
        to_version=entry.to_version, actor=entry.actor, approver=entry.approver, reason=entry.reason,
        recorded_at=entry.recorded_at.isoformat(timespec="microseconds"), entry_hash=entry.entry_hash,
        override=entry.override,
        in_force_until=None if in_force.until is None else in_force.until.isoformat(timespec="microseconds"),
        chain_verified=True, report=report, rationale=rationale, note=in_force.note)


def _signal_value(signal: LocatedSignal, row: dict[str, object], keys: FrameKeys) -> SignalValue:
    return SignalValue(
        key=signal.manifest.asset_key, partition=str(signal.manifest.partition), time=str(row[keys.time]),
        instrument={e: row[e] for e in keys.entities},
        score=row.get("score"), weight=row.get("weight"),  # type: ignore[arg-type]
        model_name=signal.model, model_version=signal.version, row=dict(row))


def recompute_in_process(registry: ModelRegistry, contract: DeployContract, signal: LocatedSignal, features: pl.DataFrame,
              day: dt.date, instrument: resolve.Instrument, row: dict[str, object]) -> Recomputation:
    """The signal recomputed in this process by the model version (its bytes verified) from the model
    input it scored, compared bit for bit with the stored row."""
    loaded = registry.load_model(signal.model, signal.version)  # bytes verified against the recorded sha256
    differences = diff_environments(contract.environment, capture_environment()).differences
    return recompute_signal(loaded, features, keys=contract.keys, model_name=signal.model, version=signal.version,
                            day=day, instrument=instrument, stored_row=row,
                            stored_data_hash=signal.manifest.data_hash, environment_differences=tuple(differences))


def trace_signal(
    target: str,
    day: str | dt.date,
    instrument: resolve.Instrument,
    *,
    recompute: bool = False,
    as_of: dt.datetime | None = None,
    data_hash: str | None = None,
    verify: bool = True,
    store: PinnedStore | None = None,
    registry: ModelRegistry | None = None,
    settings: Settings | None = None,
) -> TraceRecord:
    """Trace the live signal of ``instrument`` on ``day`` back to everything that made it.

    Args:
        target: a registered model name (its live signals are found in the store by the model name their
            rows carry) or a live-signal store key (``team_b/live_signals``).
        day: the signal's day (ISO ``YYYY-MM-DD`` or a date).
        instrument: the entity value (``"AAPL"``), or ``{column: value}`` for several entity columns.
        recompute: also recompute the signal in this process and compare it bit for bit.
        as_of: trace the version that was the partition's head at that moment (default: the first
            version recorded for the day, i.e. the signal as published).
        data_hash: trace exactly that version of the partition.
        verify: re-read every object on the path and hash its bytes against the recorded file hash (default);
            ``False`` only checks each exists.
        store / registry: the production store and registry; default: from ``settings``.
        settings: default :meth:`Settings.from_env` (``ML_PLATFORM_HOME``, ``ML_PLATFORM_STORAGE``, ...).

    Returns:
        The :class:`~ml_platform.trace.record.TraceRecord`.

    Raises:
        ModelNotFound: ``target`` is neither a stored live-signal asset nor a registered model.
        SignalNotFound: no signal for that day or instrument (what exists is named);
            :class:`~ml_platform.errors.NoChampionInForce` when the day or the signal precedes every champion.
        TraceBroken: a manifest, object or linked document on the path is missing or altered (each named).
        LedgerTampered / IntegrityError: the ledger chain, the contract or the model bytes do not verify.
    """
    when = _trace_day(day, instrument)
    store, registry = _open(settings, store, registry)
    listed = store.list_keys()  # once: the signal keys and the training set's key both come from it
    signal = locate_signal(store, registry, target, when, stored_keys=[key for key, _ in listed], as_of=as_of,
                           data_hash=data_hash)
    in_force = champion_in_force(registry, signal)
    contract = registry.load_contract(signal.model, signal.version)
    row = resolve.find_row(signal.frame, contract.keys, when, instrument, label=signal.label)
    model_input = trace_model_input(store, signal, contract.feature_schema, contract.keys, when, instrument,
                                    verify=verify)
    beneath = stored_beneath(store, signal.manifest, model_input.lineage, model_input.manifests)
    training, problem = _training_set(store, contract, listed)
    notes = trace_notes(signal, in_force, model_input.manifest, contract.feature_graph_hash, problem)
    champion = champion_entry(registry, store, signal, in_force)
    recomputed = recompute_in_process(registry, contract, signal, model_input.frame, when, instrument,
                                      row) if recompute else None
    return TraceRecord(
        target=target, day=when.isoformat(), signal=_signal_value(signal, row, contract.keys),
        signal_version=resolve.stored_version(store, signal.manifest, "signal"), other_versions=signal.others,
        model=_model_facts(contract), champion=champion, feature_row=model_input.row,
        features=beneath.features, sources=beneath.sources, training_set=training, notes=notes,
        recompute=recomputed, traced_at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"))
