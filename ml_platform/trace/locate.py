"""Where a traced signal is: the live-signal version of a day, of a store key or of a model's rows.

Reads the store (every version read back verified) and, to name an unknown model or the first
champion of a day before any signal, the registry and the ledger.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from ml_platform.champions.catalog import champion_of_record
from ml_platform.champions.location import open_ledger
from ml_platform.errors import (
    ConfigurationError,
    IntegrityError,
    ManifestError,
    ModelNotFound,
    SignalNotFound,
)
from ml_platform.io.layout import validate_key
from ml_platform.io.manifest import Manifest
from ml_platform.io.store import PinnedStore
from ml_platform.registry.store import ModelRegistry
from ml_platform.trace import resolve

__all__ = ["LocatedSignal", "locate_signal", "read_verified"]


@dataclass(frozen=True)
class LocatedSignal:
    """The live-signal version to trace: its manifest, the partition's other versions, its rows read back
    verified, and the model version those rows name."""

    manifest: Manifest
    others: tuple[tuple[str, str], ...]
    frame: pl.DataFrame
    model: str
    version: str

    @property
    def label(self) -> str:
        return f"live signal {self.manifest.label}"


def read_verified(store: PinnedStore, manifest: Manifest, what: str) -> pl.DataFrame:
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


def locate_signal(store: PinnedStore, registry: ModelRegistry, target: str, day: dt.date, *,
                  stored_keys: list[str], as_of: dt.datetime | None, data_hash: str | None) -> LocatedSignal:
    """The live-signal version to trace: of the store key ``target``, or the one live-signal asset whose
    rows of ``day`` name the model ``target``; refuses none or several, saying what exists."""
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
    found: list[LocatedSignal] = []
    elsewhere: list[str] = []
    for key in keys:
        partition = resolve.locate_partition(store, key, day)
        if partition is None:
            continue
        manifest, others = resolve.select_version(store, key, partition, as_of=as_of, data_hash=data_hash)
        recorded_model = manifest.params.get(resolve.SIGNAL_MODEL_COLUMNS[0])  # recorded by newer live_signals assets
        if model_mode and recorded_model is not None and recorded_model != target:
            elsewhere.append(f"{manifest.label} (model {recorded_model!r})")
            continue
        frame = read_verified(store, manifest, f"live signal {manifest.label}")
        name, version = resolve.signal_model(frame, f"live signal {manifest.label}")
        if model_mode and name != target:
            elsewhere.append(f"{manifest.label} (model {name!r})")
            continue
        found.append(LocatedSignal(manifest, others, frame, name, version))
    if len(found) > 1:
        raise SignalNotFound(f"several live-signal assets hold signals of {target!r} for {day}: "
                             f"{[f.manifest.label for f in found]}; trace one of them by its store key")
    if found:
        return found[0]
    if elsewhere:
        raise SignalNotFound(f"no live signal of {target!r} for {day}: that day's live signals are of other models "
                             f"({'; '.join(elsewhere)})")
    first = None
    if model_mode:
        with open_ledger(registry, read_only=True) as ledger:
            entries = ledger.history(target)
        first = entries[0] if entries else None
    raise resolve.missing_day(target, day, keys, store, first)
