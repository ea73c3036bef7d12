"""Find a live signal and what was true when it was written. Pure store and ledger logic: no Dagster, no MLflow.

How it works, and why: docs/architecture.md, "ml_platform/trace/resolve.py".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from ml_platform.champions.entry import LedgerEntry
from ml_platform.errors import (
    ConfigurationError,
    ManifestError,
    NoChampionInForce,
    SignalNotFound,
    TraceBroken,
)
from ml_platform.io.manifest import Manifest
from ml_platform.io.recorded_lineage import RecordedLineage, recorded_lineage
from ml_platform.io.store import PinnedStore
from ml_platform.keys import FrameKeys
from ml_platform.trace.record import StoredVersion

__all__ = [
    "LIVE_SIGNALS",
    "SIGNAL_MODEL_COLUMNS",
    "InForce",
    "Instrument",
    "broken",
    "entry_in_force",
    "find_row",
    "locate_partition",
    "missing_day",
    "select_version",
    "signal_keys",
    "signal_model",
    "stored_version",
    "traced_lineage",
    "written_at",
]

#: The asset name :func:`~ml_platform.model_assets.build_model_assets` gives the live signals (under any prefix).
LIVE_SIGNALS = "live_signals"
#: The columns the live-signal asset adds to every row: which registered model and version scored it.
SIGNAL_MODEL_COLUMNS = ("model_name", "model_version")

Instrument = str | Mapping[str, object]


def written_at(manifest: Manifest) -> dt.datetime:
    """The manifest's write time (UTC)."""
    return dt.datetime.fromisoformat(manifest.written_at).astimezone(dt.UTC)


def signal_keys(keys: Iterable[str]) -> tuple[str, ...]:
    """Every store key holding live signals (an asset named ``live_signals``, under any key prefix)."""
    return tuple(k for k in keys if k.rpartition("/")[2] == LIVE_SIGNALS)


def _days_of(store: PinnedStore, key: str) -> list[tuple[str, dt.date, dt.date]]:
    """``(partition, first day, last day)`` of every partition of ``key``, in time order."""
    found = []
    for _, partition in store.locations(key):
        if partition is None:
            continue
        try:
            day = dt.date.fromisoformat(partition)
            found.append((partition, day, day))
        except ValueError:  # not a daily key: the manifest's window says which days it covers
            try:
                window = store.history(key, partition)[0].window
            except (ManifestError, IndexError):
                continue
            if window is not None:
                found.append((partition, window.start, window.end))
    return sorted(found, key=lambda item: (item[1], item[0]))


def locate_partition(store: PinnedStore, key: str, day: dt.date) -> str | None:
    """The partition of ``key`` whose days include ``day`` (``None``: no such partition is stored)."""
    if store.exists(key, day.isoformat()) or store.history_entries(key, day.isoformat()):
        return day.isoformat()
    for partition, start, end in _days_of(store, key):
        if start <= day <= end:
            return partition
    return None


def missing_day(target: str, day: dt.date, keys: Sequence[str], store: PinnedStore,
                first_champion: LedgerEntry | None) -> SignalNotFound:
    """The error for a day no live-signal partition of ``keys`` covers, saying what does exist."""
    days = sorted({(s, e) for key in keys for _, s, e in _days_of(store, key)})
    where = ", ".join(keys) if keys else "(no live-signal asset)"
    if not days:
        if first_champion is None:
            return NoChampionInForce(f"{target!r} has never had a champion of record and no live signal is stored "
                                     f"({where} under {store.base}): promote a version, then materialize "
                                     "live_signals")
        return SignalNotFound(f"no live signal of {target!r} is stored under {store.base} ({where}): materialize "
                              "live_signals for the days to trace")
    first, last = days[0][0], days[-1][1]
    champion = ("" if first_champion is None else
                f"; its first champion of record was version {first_champion.to_version} (ledger entry "
                f"{first_champion.seq}, {first_champion.recorded_at.isoformat(timespec='seconds')})")
    if day < first:
        return NoChampionInForce(
            f"{target!r} has no live signal for {day}: it is before any champion's signals - the stored live "
            f"signals ({where}) begin on {first}{champion}. Trace a day from {first} on")
    if day > last:
        return SignalNotFound(f"{target!r} has no live signal for {day} yet: the latest stored ({where}) is for "
                              f"{last}; materialize live_signals for {day} first")
    before = max(e for s, e in days if e < day)
    after = min(s for s, e in days if s > day)
    return SignalNotFound(f"{target!r} has no live signal for {day} ({where}): no partition covers that day (not a "
                          f"trading day of the calendar, or never materialized); the nearest are {before} and {after}")


def select_version(store: PinnedStore, key: str, partition: str, *, as_of: dt.datetime | None = None,
                   data_hash: str | None = None) -> tuple[Manifest, tuple[tuple[str, str], ...]]:
    """The version of a live-signal partition to trace, and the partition's other versions.

    Default: the **first** recorded version, i.e. the signal as published for that day; a later
    rematerialization (after a promotion, a rollback or a code change) is listed but not followed.

    Args:
        as_of: the version that was the head at that moment (the newest written at or before it).
        data_hash: exactly that version.

    Raises:
        SignalNotFound: no version matches ``as_of`` or ``data_hash`` (the recorded ones are named).
        TraceBroken: the partition's manifests cannot be read.
    """
    label = f"{key} partition {partition}"
    try:
        history = store.history(key, partition)
    except ManifestError as exc:
        raise TraceBroken(f"the recorded versions of live signal {label} cannot be read: {exc}",
                          lost=((label, "?", str(exc)),)) from exc
    if not history:
        raise SignalNotFound(f"live signal {label} has no recorded version under {store.base}")
    recorded = ", ".join(f"{m.written_at} {m.data_hash}" for m in history)
    if data_hash is not None:
        chosen = [m for m in history if m.data_hash == data_hash]
        if not chosen:
            raise SignalNotFound(f"live signal {label} has no version with data hash {data_hash}; its recorded "
                                 f"versions are: {recorded}")
        pick = chosen[0]
    elif as_of is not None:
        if as_of.tzinfo is None:
            raise ConfigurationError(f"as_of must be timezone-aware (e.g. 2024-05-01T12:00:00+00:00), got {as_of!r}")
        chosen = [m for m in history if written_at(m) <= as_of]
        if not chosen:
            raise SignalNotFound(f"live signal {label} had not been written yet at {as_of.isoformat()}; its first "
                                 f"version was written at {history[0].written_at}")
        pick = chosen[-1]
    else:
        pick = history[0]
    others = tuple((m.written_at, m.data_hash) for m in history if m is not pick)
    return pick, others


def signal_model(frame: pl.DataFrame, label: str) -> tuple[str, str]:
    """``(model name, model version)`` the rows of a live-signal partition name (one pair per partition)."""
    missing = [c for c in SIGNAL_MODEL_COLUMNS if c not in frame.columns]
    if missing:
        raise SignalNotFound(f"{label} has no {missing} column: it is not a live-signal asset built by "
                             f"build_model_assets (its columns are {frame.columns})")
    pairs = frame.select(*SIGNAL_MODEL_COLUMNS).unique().rows()
    if len(pairs) != 1:
        raise SignalNotFound(f"{label} holds rows of {len(pairs)} model versions {sorted(map(tuple, pairs))}; "
                             "trace it by model name")
    name, version = pairs[0]
    return str(name), str(version)


def _on_day(frame: pl.DataFrame, keys: FrameKeys, day: dt.date) -> pl.Expr:
    missing = [c for c in keys.columns if c not in frame.columns]
    if missing:
        raise SignalNotFound(f"the frame lacks the key column(s) {missing} (columns {frame.columns})")
    time = frame.schema[keys.time]
    return (pl.col(keys.time) if time == pl.Date else pl.col(keys.time).cast(pl.Date)) == pl.lit(day)


def _match(frame: pl.DataFrame, keys: FrameKeys, day: dt.date, instrument: Instrument) -> pl.DataFrame:
    on_day = _on_day(frame, keys, day)
    if isinstance(instrument, Mapping):
        unknown = sorted(set(instrument) - set(keys.entities))
        if unknown or set(instrument) != set(keys.entities):
            raise ConfigurationError(f"the instrument must name every entity column {list(keys.entities)} and no "
                                     f"other, got {sorted(instrument)}")
        wanted = {str(k): str(v) for k, v in instrument.items()}
    else:
        if len(keys.entities) != 1:
            raise ConfigurationError(f"the rows are keyed by several entity columns {list(keys.entities)}: give the "
                                     "instrument as column=value for each (--instrument COL=VALUE ...)")
        wanted = {keys.entities[0]: str(instrument)}
    condition = on_day
    for column, value in wanted.items():
        condition = condition & (pl.col(column).cast(pl.Utf8) == value)
    return frame.filter(condition)


def find_row(frame: pl.DataFrame, keys: FrameKeys, day: dt.date, instrument: Instrument, *,
             label: str) -> dict[str, object]:
    """The one row of ``instrument`` on ``day`` (by the frame's key columns).

    Raises:
        SignalNotFound: no row (the instruments of that day are named), or several.
        ConfigurationError: the instrument does not fit the key columns.
    """
    rows = _match(frame, keys, day, instrument)
    shown = instrument if isinstance(instrument, str) else ", ".join(f"{k}={v}" for k, v in instrument.items())
    if rows.height == 0:
        on_day = frame.filter(_on_day(frame, keys, day))
        present = sorted({"|".join(str(v) for v in row) for row in on_day.select(*keys.entities).rows()})
        listed = ", ".join(present[:20]) + (f" (+{len(present) - 20} more)" if len(present) > 20 else "")
        raise SignalNotFound(f"{label} has no row for instrument {shown} on {day}; its instruments are: "
                             f"{listed or 'none (an empty day)'}")
    if rows.height > 1:
        raise SignalNotFound(f"{label} has {rows.height} rows for instrument {shown} on {day} (an intraday time "
                             f"column {keys.time!r}?); trace by the asset's partition instead")
    return rows.row(0, named=True)


@dataclass(frozen=True)
class InForce:
    """The ledger entry that made the signal's version champion, and when it stopped being the record."""

    entry: LedgerEntry
    until: dt.datetime | None
    note: str | None


def entry_in_force(model: str, entries: Sequence[LedgerEntry], at: dt.datetime, version: str) -> InForce:
    """The entry that made ``version`` champion of ``model``, in force at ``at`` (the signal's write time).

    Normally the newest entry recorded at or before ``at``. If the champion moved between the signal run
    loading its champion and writing (the newest entry names another version), the newest earlier entry
    that made ``version`` champion is returned, with a note saying so.

    Raises:
        NoChampionInForce: no entry at or before ``at`` (before any champion), or none made ``version``
            champion by then.
    """
    ordered = sorted(entries, key=lambda e: e.seq)
    before = [e for e in ordered if e.recorded_at <= at]
    stamp = at.isoformat(timespec="microseconds")
    if not before:
        first = (f"its first ledger entry (version {ordered[0].to_version}) was recorded at "
                 f"{ordered[0].recorded_at.isoformat(timespec='seconds')}" if ordered else "its ledger is empty")
        raise NoChampionInForce(f"the signal was written at {stamp}, before any champion of record of {model!r}: "
                                f"{first}. A signal written without a champion of record cannot be attributed; "
                                f"see `ml-platform history {model}`")
    current = before[-1]
    made = [e for e in before if e.to_version == version]
    if not made:
        raise NoChampionInForce(
            f"the signal names {model!r} version {version}, but no ledger entry made version {version} champion "
            f"before it was written ({stamp}); the champion of record then was version {current.to_version} "
            f"(entry {current.seq}). It was not produced by a champion of record; see `ml-platform history {model}`")
    chosen = made[-1]
    later = [e for e in ordered if e.seq > chosen.seq]
    note = None
    if chosen is not current:
        note = (f"the champion of record moved to version {current.to_version} (ledger entry {current.seq}, "
                f"{current.recorded_at.isoformat(timespec='seconds')}) before this signal was written at {stamp}: "
                f"its run had loaded version {version} (entry {chosen.seq}) before the move")
    return InForce(chosen, later[0].recorded_at if later else None, note)


def stored_version(store: PinnedStore, manifest: Manifest, role: str) -> StoredVersion:
    """The record of one version as the trace reports it."""
    return StoredVersion(
        key=manifest.asset_key, partition=manifest.partition, data_hash=manifest.data_hash,
        code_hash=manifest.code_hash, graph_hash=manifest.graph_hash, object_path=store.data_path(manifest),
        file_hash=manifest.file_hash, rows=manifest.rows, written_at=manifest.written_at,
        window=None if manifest.window is None else str(manifest.window), run_id=manifest.run_id,
        git_commit=manifest.git_commit, image_digest=manifest.image_digest,
        upstream=tuple((u.key, u.partition, u.data_hash) for u in manifest.upstream), role=role)


def broken(what: str, lineage_lost: Sequence[tuple[str, str, str]], store: PinnedStore) -> TraceBroken:
    """The error naming every version on the path that cannot be read back, and what to do."""
    named = "; ".join(f"{label} (data hash {h}): {reason}" for label, h, reason in lineage_lost)
    return TraceBroken(
        f"{what}: {len(lineage_lost)} recorded version(s) on its path can no longer be read back as recorded - "
        f"{named}. Restore the named object(s) from a backup of {store.base} (a rematerialized version is a "
        "different version, so the trace of this signal stays broken unless the bytes are the recorded ones); "
        "`ml-platform verify` lists every damaged object", lost=tuple(lineage_lost))


def traced_lineage(store: PinnedStore, signal: Manifest, *, verify: bool = True) -> tuple[RecordedLineage,
                                                                                         dict[tuple[str, str | None,
                                                                                                    str], Manifest]]:
    """The recorded lineage beneath one live-signal version, and the manifest of every version on it.

    Raises:
        TraceBroken: a manifest or object on the path is missing or altered (each one named, with the
            stored reason: path, expected and actual hash).
    """
    manifests: dict[tuple[str, str | None, str], Manifest] = {}
    lineage = recorded_lineage(store, signal.asset_key, signal.partition, signal.data_hash,
                               verify_objects=verify, manifests=manifests)
    if lineage.lost:
        raise broken(f"live signal {signal.label} ({signal.data_hash})",
                     [(v.label, v.data_hash, v.reason) for v in lineage.lost], store)
    return lineage, manifests
