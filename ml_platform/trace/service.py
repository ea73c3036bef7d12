"""``trace_signal``: one live signal traced back to everything that made it, as recorded at the time.

Opens the store and the registry (given, or from the deployment settings like every ``ml-platform``
command), then:

1. finds the live-signal partition of the day and picks its **first recorded version** (or the one in
   force ``as_of``, or of ``data_hash``), reads it back verified and takes the instrument's row;
2. reads the model version the row names, its verified deploy contract, and the ledger entry that made
   it champion, in force at the version's write time (the chain verified first);
3. walks the recorded lineage beneath the signal by data hash down to the sources, re-reading every
   object and checking its bytes against the file hash and size recorded when it was written
   (:meth:`~ml_platform.io.store.PinnedStore.verify_bytes`), and reads the model-input row the model scored;
4. optionally recomputes the signal in this process and compares it bit for bit.
"""

from __future__ import annotations

import datetime as dt
import os

import polars as pl

from ml_platform.champions.catalog import champion_of_record
from ml_platform.champions.location import open_ledger
from ml_platform.environment import EnvironmentPolicy, capture_environment, diff_environments
from ml_platform.errors import (
    ConfigurationError,
    IntegrityError,
    ManifestError,
    MLPlatformError,
    ModelNotFound,
    SignalNotFound,
    TraceError,
)
from ml_platform.io.layout import validate_key
from ml_platform.io.manifest import Manifest, UpstreamRef
from ml_platform.io.store import PinnedStore
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.store import ModelRegistry
from ml_platform.settings import Settings
from ml_platform.trace import resolve
from ml_platform.trace.evidence import read_evidence
from ml_platform.trace.recompute import recompute_signal
from ml_platform.trace.record import (
    ChampionEntry,
    FeatureRow,
    ModelFacts,
    SignalValue,
    StoredVersion,
    TraceRecord,
)
from ml_platform.window import parse_day

__all__ = ["trace_signal"]


def _open(settings: Settings | None, store: PinnedStore | None,
          registry: ModelRegistry | None) -> tuple[PinnedStore, ModelRegistry]:
    if store is not None and registry is not None:
        return store, registry
    settings = settings or Settings.from_env(os.environ)
    return (store or PinnedStore(settings.storage, policy=EnvironmentPolicy.OFF),
            registry or ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location))


def _read(store: PinnedStore, manifest: Manifest, what: str) -> pl.DataFrame:
    """A version read back by its data hash and verified (bytes, content hash), whatever the environment."""
    try:
        table, _ = store.load_verified(manifest.asset_key, manifest.partition, manifest=manifest,
                                       data_hash=manifest.data_hash)
    except (ManifestError, IntegrityError) as exc:
        raise resolve.broken(what, [(manifest.label, manifest.data_hash, str(exc))], store) from exc
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _is_signal_key(stored_keys: list[str], target: str) -> bool:
    try:
        validate_key(target)
    except ConfigurationError:
        return False
    return target in stored_keys


def _locate(store: PinnedStore, registry: ModelRegistry, target: str, day: dt.date, *,
            stored_keys: list[str], as_of: dt.datetime | None, data_hash: str | None
            ) -> tuple[Manifest, tuple[tuple[str, str], ...], pl.DataFrame, str, str]:
    """The live-signal version to trace: ``(manifest, other versions, frame, model name, model version)``."""
    if _is_signal_key(stored_keys, target):
        keys: tuple[str, ...] = (target,)
        model_mode = False
    else:
        keys = resolve.signal_keys(stored_keys)
        model_mode = True
        try:
            champion_of_record(registry, target)  # an unknown model: ModelNotFound listing the known ones
        except ModelNotFound as exc:
            raise ModelNotFound(f"{target!r} is neither a live-signal asset stored under {store.base} (those "
                                f"stored: {list(keys) or 'none'}) nor a registered model: {exc}") from exc
    found, elsewhere = [], []
    for key in keys:
        partition = resolve.locate_partition(store, key, day)
        if partition is None:
            continue
        manifest, others = resolve.select_version(store, key, partition, as_of=as_of, data_hash=data_hash)
        recorded_model = manifest.params.get(resolve.SIGNAL_MODEL_COLUMNS[0])  # recorded by newer live_signals assets
        if model_mode and recorded_model is not None and recorded_model != target:
            elsewhere.append(f"{manifest.label} (model {recorded_model!r})")
            continue
        frame = _read(store, manifest, f"live signal {manifest.label}")
        name, version = resolve.signal_model(frame, f"live signal {manifest.label}")
        if model_mode and name != target:
            elsewhere.append(f"{manifest.label} (model {name!r})")
            continue
        found.append((manifest, others, frame, name, version))
    if len(found) > 1:
        raise SignalNotFound(f"several live-signal assets hold signals of {target!r} for {day}: "
                             f"{[f[0].label for f in found]}; trace one of them by its store key")
    if found:
        return found[0]
    if elsewhere:
        raise SignalNotFound(f"no live signal of {target!r} for {day}: that day's live signals are of other models "
                             f"({'; '.join(elsewhere)})")
    first = None
    if model_mode:
        with open_ledger(registry) as ledger:
            entries = ledger.history(target)
        first = entries[0] if entries else None
    raise resolve.missing_day(target, day, keys, store, first)


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
    when = parse_day(day, what="day") if isinstance(day, str) else day
    if not isinstance(when, dt.date) or isinstance(when, dt.datetime):
        raise ConfigurationError(f"day must be an ISO date or a datetime.date, got {day!r}")
    if isinstance(instrument, str) and not instrument.strip():
        raise ConfigurationError("instrument must be a non-empty value, e.g. --instrument AAPL")
    store, registry = _open(settings, store, registry)
    listed = store.list_keys()  # once: the signal keys and the training set's key both come from it
    stored_keys = [key for key, _ in listed]
    manifest, others, frame, model, version = _locate(store, registry, target, when, stored_keys=stored_keys,
                                                      as_of=as_of, data_hash=data_hash)
    label = f"live signal {manifest.label}"
    with open_ledger(registry) as ledger:
        ledger.verify(model)  # a tampered chain cannot say who promoted what: LedgerTampered names the entry
        history = ledger.history(model)
    in_force = resolve.entry_in_force(model, history, resolve.written_at(manifest), version)
    contract = registry.load_contract(model, version)
    keys = contract.keys
    row = resolve.find_row(frame, keys, when, instrument, label=label)

    lineage, manifests = resolve.traced_lineage(store, manifest, verify=verify)
    ref = _model_input_ref(manifest)
    input_manifest = manifests[(ref.key, ref.partition, ref.data_hash)]
    features_frame = _read(store, input_manifest, f"{label}'s model input {input_manifest.label}")
    feature_values = resolve.find_row(features_frame, keys, when, instrument, label=f"model input {input_manifest.label}")
    schema = contract.feature_schema
    missing = [name for name in schema.names if name not in feature_values]
    if missing:
        raise TraceError(f"model input {input_manifest.label} lacks the contract's input column(s) {missing}")
    feature_row = FeatureRow(ref.key, ref.partition, ref.data_hash,
                             tuple((name, feature_values[name]) for name in schema.names),
                             tuple((f.name, f.type) for f in schema))

    roots = {(u.key, u.partition, u.data_hash) for u in manifest.upstream}
    features, sources = [], []
    shown: set[tuple[str, str | None, str]] = set()
    for part in lineage.partitions:
        ident = part.ident
        if part is lineage.root or ident in shown:  # the same bytes over two lineages: listed once
            continue
        shown.add(ident)
        role = "source" if part.is_source else "model_input" if ident in roots else "feature"
        (sources if part.is_source else features).append(resolve.stored_version(store, manifests[ident], role))
    order = {key: i for i, key in enumerate(lineage.keys())}  # nodes from the signal down, partitions in time order
    features.sort(key=lambda v: (v.role != "model_input", order[v.key], v.partition or ""))
    sources.sort(key=lambda v: (order[v.key], v.partition or ""))

    notes = []
    if in_force.note:
        notes.append(in_force.note)
    if input_manifest.graph_hash != contract.feature_graph_hash:
        notes.append(f"the model input {input_manifest.label} was computed by feature graph "
                     f"{input_manifest.graph_hash}, not the {contract.feature_graph_hash} of the model's contract")
    if others:
        notes.append(f"{manifest.label} has {len(others)} other recorded version(s) (rematerialized: "
                     f"{', '.join(f'{w} {h}' for w, h in others)}); this trace follows the version written at "
                     f"{manifest.written_at}")
    training, problem = _training_set(store, contract, listed)
    if problem:
        notes.append(problem)

    entry = in_force.entry
    report = read_evidence(registry, entry.report_ref, entry.report_sha256, text=False)
    rationale = read_evidence(registry, entry.rationale_ref, entry.rationale_sha256, text=True)
    bad = [(f"the {what} of ledger entry {entry.seq}", doc.sha256, f"{doc.ref}: {doc.problem}")
           for what, doc in (("report", report), ("rationale", rationale)) if doc is not None and doc.problem]
    if bad:
        raise resolve.broken(f"{label}: the champion of record's evidence", bad, store)

    champion = ChampionEntry(
        model=model, seq=entry.seq, kind=entry.kind, from_version=entry.from_version, to_version=entry.to_version,
        actor=entry.actor, approver=entry.approver, reason=entry.reason,
        recorded_at=entry.recorded_at.isoformat(timespec="microseconds"), entry_hash=entry.entry_hash,
        override=entry.override,
        in_force_until=None if in_force.until is None else in_force.until.isoformat(timespec="microseconds"),
        chain_verified=True, report=report, rationale=rationale, note=in_force.note)
    signal = SignalValue(
        key=manifest.asset_key, partition=str(manifest.partition), time=str(row[keys.time]),
        instrument={e: row[e] for e in keys.entities},
        score=row.get("score"), weight=row.get("weight"),  # type: ignore[arg-type]
        model_name=model, model_version=version, row=dict(row))

    recomputed = None
    if recompute:
        loaded = registry.load_model(model, version)  # bytes verified against the recorded sha256
        differences = diff_environments(contract.environment, capture_environment()).differences
        recomputed = recompute_signal(loaded, features_frame, keys=keys, model_name=model, version=version,
                                      day=when, instrument=instrument, stored_row=row,
                                      stored_data_hash=manifest.data_hash,
                                      environment_differences=tuple(differences))
    return TraceRecord(
        target=target, day=when.isoformat(), signal=signal,
        signal_version=resolve.stored_version(store, manifest, "signal"), other_versions=others,
        model=_model_facts(contract), champion=champion, feature_row=feature_row, features=tuple(features),
        sources=tuple(sources), training_set=training, notes=tuple(notes), recompute=recomputed,
        traced_at=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"))
