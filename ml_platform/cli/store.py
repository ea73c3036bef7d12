"""``ml-platform verify``, ``ml-platform gc`` and ``ml-platform env``: check and collect stored artefacts.

How it works, and why: docs/architecture.md, "ml_platform/cli/store.py".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ml_platform.cli.locations import defs_option, registry_location, store_location
from ml_platform.cli.models import check_registry_exists
from ml_platform.cli.params import MAX_ARGUMENT, BoundedText, FiniteNumber, PathText
from ml_platform.environment import EnvironmentLock, EnvironmentPolicy, capture_environment, diff_environments
from ml_platform.errors import (
    ConfigurationError,
    InstanceDamaged,
    MLPlatformError,
    RegistryError,
    WindowError,
)
from ml_platform.io.gc import collect
from ml_platform.io.manifest import MANIFEST_METADATA_KEY, MANIFEST_SCHEMA, Manifest
from ml_platform.io.migrate import migrate_store
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyResult, verify_acceptances, verify_store, verify_training_set
from ml_platform.metadata import MANIFEST_HASH
from ml_platform.redact import redacted_url
from ml_platform.window import parse_day

if TYPE_CHECKING:
    import dagster as dg

__all__ = ["DagsterRecord", "dagster_materialized", "env", "gc", "holds_dagster_instance", "migrate_store_command",
           "registry_roots", "verify"]

#: the metadata key the PinnedIOManager records on every materialization it stores
_MANIFEST_METADATA = "ml_platform/manifest"

_DETAIL_WIDTH = 90


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, ["-" * width for width in widths], *rows]
    ]
    return "\n".join(lines)


def _row(result: VerifyResult) -> list[str]:
    detail = result.detail.splitlines()[0] if result.detail else ""
    if len(detail) > _DETAIL_WIDTH:
        detail = detail[: _DETAIL_WIDTH - 3] + "..."
    return [
        result.status.value.upper() if not result.ok else result.status.value,
        result.key,
        result.partition or "-",
        "-" if result.rows is None else str(result.rows),
        result.data_hash or "-",
        detail,
    ]


def _explanation(result: VerifyResult) -> str:
    """Explain a failed or environment-differing row: its message (or each difference) and its manifest."""
    where = result.key if result.partition is None else f"{result.key} {result.partition}"
    if result.environment_diff.is_empty:
        lines = [f"\n{where}: {result.detail}"]
    else:
        differences = result.environment_diff.differences
        lines = [f"\n{where}: {len(differences)} environment difference(s), stored -> running:"]
        lines += [f"  {difference}" for difference in differences]
    lines.append(f"  manifest: {result.manifest_path}")
    return "\n".join(lines)


@dataclass(frozen=True)
class DagsterRecord:
    """What a Dagster instance recorded of a store.

    Attributes:
        materialized: ``(key, partition)`` of everything recorded as stored, each mapped to the manifest
            hash its latest materialization recorded (``ml_platform/manifest_hash``; None if none).
        by_run: ``(key, partition, run id)`` -> the manifest hash that run's materialization recorded.
    """

    materialized: Mapping[tuple[str, str | None], str | None]
    by_run: Mapping[tuple[str, str | None, str], str]


def holds_dagster_instance(folder: str) -> bool:
    """Whether ``folder`` holds a Dagster instance (its ``dagster.yaml`` or its SQLite run storage)."""
    return any((Path(folder) / name).is_file() for name in ("dagster.yaml", "history/runs.db"))


def dagster_materialized(dagster_home: str, store: PinnedStore) -> DagsterRecord:
    """Everything the Dagster instance at ``dagster_home`` recorded as stored in ``store``, and its manifest hashes.

    An asset counts when its latest materialization carries the PinnedIOManager's
    ``ml_platform/manifest`` metadata under this store's base; each of its materialized partitions
    (or the asset itself, when unpartitioned) must then have a head in the store.

    Raises:
        InstanceDamaged: a record of the instance's event log cannot be read back (names the instance).
    """
    import dagster as dg

    from ml_platform.compat import dagster_record_unreadable

    if not holds_dagster_instance(dagster_home):
        state = "neither dagster.yaml nor history/runs.db" if Path(dagster_home).is_dir() else "no such directory"
        raise ConfigurationError(f"no Dagster instance at {dagster_home} ({state}): "
                                 "name the instance's DAGSTER_HOME, or pass --no-dagster; nothing was created")
    expected: dict[tuple[str, str | None], str | None] = {}
    by_run: dict[tuple[str, str | None, str], str] = {}
    instance = dg.DagsterInstance.from_config(dagster_home)
    asset_key = None
    try:
        for asset_key in instance.get_asset_keys():
            event = instance.get_latest_materialization_event(asset_key)
            materialization = None if event is None else event.asset_materialization
            if materialization is None:
                continue
            recorded = materialization.metadata.get(_MANIFEST_METADATA)
            path = getattr(recorded, "value", None)
            if not isinstance(path, str) or not path.startswith(store.base.rstrip("/") + "/"):
                continue  # not stored by a PinnedIOManager, or by one over another base
            expected.update(_materialized(instance, asset_key, store, by_run))
    except Exception as exc:
        if not dagster_record_unreadable(exc):
            raise
        where = f" (reading asset {asset_key.to_user_string()})" if asset_key is not None else ""
        raise InstanceDamaged(
            f"the event log of the Dagster instance at {dagster_home} is damaged{where}: "
            f"{type(exc).__name__}: {str(exc)[:200]}. Nothing was changed. Verify the store alone with "
            "`ml-platform verify --no-dagster`, and restore the instance's storage from a backup "
            f"(`DAGSTER_HOME={dagster_home} dagster instance info` shows where it is)") from exc
    finally:
        instance.dispose()
    return DagsterRecord(expected, by_run)


def _materialized(instance: dg.DagsterInstance, asset_key: dg.AssetKey, store: PinnedStore,
                  by_run: dict[tuple[str, str | None, str], str]) -> dict[tuple[str, str | None], str | None]:
    """Every materialized ``(key, partition)`` of the asset -> the manifest hash its latest materialization
    recorded in ``store`` (None: not one of this store's, or written before hashes were recorded).

    Adds every materialization's manifest hash to ``by_run``, by key, partition and run id.
    """
    key = "/".join(asset_key.path)
    latest: dict[tuple[str, str | None], str | None] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(asset_key, limit=1000, cursor=cursor)
        for record in page.records:
            materialization = record.asset_materialization
            if materialization is None:
                continue
            path = getattr(materialization.metadata.get(_MANIFEST_METADATA), "value", None)
            anchor = getattr(materialization.metadata.get(MANIFEST_HASH), "value", None)
            ours = isinstance(anchor, str) and isinstance(path, str) and path.startswith(store.base.rstrip("/") + "/")
            if ours:
                by_run.setdefault((key, materialization.partition, record.run_id), anchor)
            # newest first: the first one seen of a partition is its latest
            latest.setdefault((key, materialization.partition), anchor if ours else None)
        if not page.has_more:
            return latest
        cursor = page.cursor


@click.command("verify")
@click.argument("asset", required=False, type=BoundedText(MAX_ARGUMENT))
@click.option("--partition", default=None, type=BoundedText(MAX_ARGUMENT),
              help="Only this partition of ASSET (e.g. 2012-01-03).")
@click.option("--day", default=None, type=BoundedText(MAX_ARGUMENT),
              help="With ASSET and a --partition longer than a day (a month): also print this day's recorded "
                   "content hash (the data hash the day's rows have as a daily partition; checked by verify).")
@click.option(
    "--base-dir",
    default=None, type=PathText(),
    help="The storage directory (or fsspec URI) of the PinnedIOManager; default: from --defs or ML_PLATFORM_* settings.",
)
@click.option(
    "--environment-policy",
    type=click.Choice([p.value for p in EnvironmentPolicy]),
    default=None,
    help="strict: an environment difference is a failure; warn: reported only (default: the deployment's).",
)
@click.option(
    "--dagster-home",
    default=None, type=PathText(),
    help="Cross-check against this Dagster instance's materializations (default: $DAGSTER_HOME, if set).",
)
@click.option("--no-dagster", is_flag=True, help="Do not cross-check against Dagster even if DAGSTER_HOME is set.")
@click.option("--tracking-uri", default=None, type=PathText(),
              help="Cross-check the registry's ready versions: their training data must be stored (default: "
                   "the registry of --defs or of the settings, unless --base-dir names another store; skipped "
                   "when the deployment's registry does not exist yet; one named here must exist).")
@click.option("--no-registry", is_flag=True, help="Do not cross-check against the model registry.")
@click.option("--heads-only", is_flag=True,
              help="The quick pass: read only each head in full (history entries and their objects only listed).")
@defs_option
def verify(asset: str | None, partition: str | None, day: str | None, base_dir: str | None,
           environment_policy: str | None, dagster_home: str | None, no_dagster: bool, tracking_uri: str | None,
           no_registry: bool, heads_only: bool, defs_target: str | None) -> None:
    """Check every stored artefact (or those of ASSET, e.g. features/momentum) against what should exist.

    Each head's object is read in full: byte hash, Parquet decoding, footer, content hash, then its
    environment lock is compared with the running one. Every manifest (head and history) must hash
    to its own manifest hash and every history entry's object is re-hashed (not with --heads-only).
    A partition whose head was deleted, a missing object, an edited manifest and - with a Dagster
    instance - a materialization Dagster recorded that the store does not hold, or whose manifest
    hash the head's chain does not reach, are failures. Exits 0 if all is well, 1 if anything
    failed, 2 on bad input.
    """
    # the registry checked is the store's own deployment's: named, from --defs, or from the same settings
    same_deployment = tracking_uri is not None or defs_target is not None or base_dir is None
    base_dir, environment_policy = store_location(base_dir, environment_policy, defs_target)
    # bad input (no storage, a malformed key) is an MLPlatformError: the ml-platform group exits 2 with one line
    store = PinnedStore(base_dir, policy=environment_policy)
    if not store.filesystem.root_exists():
        raise ConfigurationError(f"no storage at {store.base}; pass --base-dir, --defs, or set ML_PLATFORM_HOME")
    day_line = _day_hash(store, asset, partition, day) if day is not None else None
    home = None if no_dagster else (dagster_home or os.environ.get("DAGSTER_HOME") or None)
    dagster_note = ""
    if home and dagster_home is None and not holds_dagster_instance(home):  # named by --dagster-home: exit 2
        state = "holds no Dagster instance" if Path(home).is_dir() else "does not exist"
        dagster_note = f" (not cross-checked against Dagster: DAGSTER_HOME={home} {state})"
        home = None
    recorded = dagster_materialized(home, store) if home else DagsterRecord({}, {})
    anchors = {location: anchor for location, anchor in recorded.materialized.items() if anchor is not None}
    results = verify_store(store, asset, partition, expected=recorded.materialized, anchors=anchors,
                           run_anchors=recorded.by_run, heads_only=heads_only)
    if asset is None:  # the environment acceptances a strict load may rely on must hash to what they record
        results += verify_acceptances(store)
    registry_note = ""
    if not no_registry and same_deployment and asset is None:
        registered, registry_note = _registered_training_data(store, tracking_uri, defs_target)
        results += registered
    if not results:
        click.echo(f"nothing stored under {store.base}")
        return
    click.echo(
        _table(["STATUS", "ASSET", "PARTITION", "ROWS", "DATA HASH", "DETAIL"], [_row(r) for r in results])
    )
    failed = [result for result in results if not result.ok]
    checked = f" (cross-checked against the Dagster instance at {home})" if home else dagster_note
    checked += registry_note
    click.echo(
        f"\n{len(results)} artefact(s) under {store.base}{checked}: "
        f"{len(results) - len(failed)} ok, {len(failed)} failed"
    )
    for result in results:
        if not result.ok or not result.environment_diff.is_empty:
            click.echo(_explanation(result), err=not result.ok)
    if day_line is not None:
        click.echo(day_line)
    if failed:
        raise click.exceptions.Exit(1)


def _day_hash(store: PinnedStore, asset: str | None, partition: str | None, day: str) -> str:
    """``ASSET partition P day D: <hash>``: the content hash the head records for one day of the partition.

    Raises:
        ConfigurationError: no asset or partition, a malformed day, or a partition recording no day hashes
            or none for that day (the days it records are named).
    """
    if asset is None or partition is None:
        raise ConfigurationError("--day needs an asset and a --partition, e.g. "
                                 "`verify features/momentum --partition 2012-01-01 --day 2012-01-17`")
    try:
        iso = parse_day(day, what="--day").isoformat()
    except WindowError as exc:
        raise ConfigurationError(str(exc)) from exc
    manifest = store.manifest(asset, partition)
    recorded = manifest.day_hashes
    if recorded is None:
        raise ConfigurationError(f"{manifest.label} records no day hashes: its window {manifest.window} is one day "
                                 f"(its data hash {manifest.data_hash} is that day's) or it was written without "
                                 "a time column")
    if iso not in recorded.hashes:
        days = list(recorded.hashes)
        raise ConfigurationError(f"{manifest.label} records no hash for {iso}; it records {days[0]}..{days[-1]}")
    return f"{manifest.label} day {iso}: {recorded.hashes[iso]} (by its time column {recorded.column!r})"


def _registered_training_data(store: PinnedStore, tracking_uri: str | None,
                              defs_target: str | None) -> tuple[list[VerifyResult], str]:
    """One row per ready model version: its training set's object must still be in the store."""
    from ml_platform.registry.store import ModelRegistry, sqlite_database_path

    uri, artifact_location = registry_location(tracking_uri, defs_target)
    database = sqlite_database_path(uri)
    if tracking_uri is None and database is not None and not database.is_file():
        return [], ""  # the deployment's registry does not exist yet; one named by --tracking-uri must
    check_registry_exists(uri)
    registry = ModelRegistry(uri, artifact_location=artifact_location)
    keys = store.list_keys()
    rows = [verify_training_set(store, label, data_hash, anchor, keys)
            for label, data_hash, anchor in _registry_anchors(registry)]
    return rows, f" and against the model registry {redacted_url(uri)}"


def _registry_anchors(registry: object) -> Iterator[tuple[str, str, str | None]]:
    """``(model version, training-set data hash, its manifest hash tagged on the version or None)``."""
    from ml_platform.registry.entities import TRAINING_SET_MANIFEST_HASH_TAG
    from ml_platform.registry.store import ModelRegistry

    assert isinstance(registry, ModelRegistry)
    for summary in registry.list_models():
        for version in summary.versions:
            contract = registry.load_contract(summary.name, version)
            anchor = registry.model_version(summary.name, version).tags.get(TRAINING_SET_MANIFEST_HASH_TAG)
            yield f"{summary.name} v{version}", contract.training_set_data_hash, anchor


def registry_roots(registry: object, store: PinnedStore) -> Iterator[tuple[str, str]]:
    """``(model version, data hash)`` of the training set of every ready version of every model.

    Uses only :class:`~ml_platform.registry.ModelRegistry`'s public, read-only API; GC follows the
    upstream references of the manifests from there.
    """
    from ml_platform.registry.store import ModelRegistry

    assert isinstance(registry, ModelRegistry)
    for summary in registry.list_models():
        for version in summary.versions:
            contract = registry.load_contract(summary.name, version)
            yield f"{summary.name} v{version}", contract.training_set_data_hash


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@click.option("--keep-days", type=FiniteNumber(0, 36_500), default=None,
              help="Keep every version written in the last N days (default 30); heads are always kept.")
@click.option("--grace-seconds", type=FiniteNumber(0, 10 * 365 * 86_400), default=None,
              help="Never delete anything younger than this (default 3600): a concurrent writer may own it.")
@click.option("--base-dir", default=None, type=PathText(),
              help="The storage directory (or fsspec URI); default: from --defs or ML_PLATFORM_* settings.")
@click.option("--tracking-uri", default=None, type=PathText(),
              help="The model registry whose ready versions' training data are roots; default: --defs or settings.")
@click.option("--no-registry", is_flag=True,
              help="Collect without asking the model registry for roots (registered training sets may be lost).")
@defs_option
def gc(dry_run: bool, keep_days: float | None, grace_seconds: float | None, base_dir: str | None,
       tracking_uri: str | None, no_registry: bool, defs_target: str | None) -> None:
    """Delete stored objects that no head, no recent version and no registered model version reaches.

    Roots: every partition's head, every version younger than --keep-days, and the training set of
    every ready model version in the registry, each with everything upstream of it. Orphans of
    interrupted or concurrent writes are collected by the same rule once older than the grace
    period. A registry that does not exist is refused (a typo must not make every registered training
    set unreachable); --no-registry collects without one. Exits 0 on success, 1 if the roots could
    not all be gathered (nothing is deleted), 2 on bad input.
    """
    base_dir, _ = store_location(base_dir, None, defs_target)
    store = PinnedStore(base_dir)
    if not store.filesystem.root_exists():
        raise ConfigurationError(f"no storage at {store.base}; pass --base-dir, --defs, or set ML_PLATFORM_HOME")
    roots: list[str] = []
    if not no_registry:
        from ml_platform.registry.store import ModelRegistry

        uri, artifact_location = registry_location(tracking_uri, defs_target)
        try:
            check_registry_exists(uri)
        except RegistryError as exc:
            raise RegistryError(f"gc refused, nothing deleted: {exc.args[0]}. gc collects only with the roots of "
                                "the registry it is configured with; --no-registry collects without them "
                                "(registered training sets may be lost)") from exc
        registry = ModelRegistry(uri, artifact_location=artifact_location)
        try:
            found = list(registry_roots(registry, store))
        except MLPlatformError as exc:
            click.echo(f"gc refused: the roots in the model registry {redacted_url(uri)} cannot all be read, so nothing is "
                       f"deleted: {exc}", err=True)
            raise click.exceptions.Exit(1) from exc
        roots = [data_hash for _, data_hash in found]
        click.echo(f"{len(found)} registered model version(s) in {redacted_url(uri)} are roots")
    report = collect(store, roots, keep_days=keep_days, grace_seconds=grace_seconds, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for path in report.deleted:
        click.echo(f"{verb} {path}")
    click.echo(f"{verb} {len(report.objects)} object(s), {len(report.history)} expired history entr(ies), "
               f"{len(report.temporaries)} temporar(ies); kept {report.kept_objects} object(s) "
               f"({report.young} unreached but younger than the grace period); {report.reached} data hash(es) "
               f"reached under {store.base}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)


@click.command("migrate-store")
@click.option("--dry-run", is_flag=True, help="Check and report; rewrite nothing.")
@click.option("--base-dir", default=None, type=PathText(),
              help="The storage directory (or fsspec URI); default: from --defs or ML_PLATFORM_* settings.")
@defs_option
def migrate_store_command(dry_run: bool, base_dir: str | None, defs_target: str | None) -> None:
    """Rewrite the store's ml_platform.manifest/v2 manifests as v3: every field under the manifest's own hash.

    Each version's object is read in full (bytes, footer, content hash) before its manifest is
    certified; a version whose data does not verify stays v2 and is named. Run it with no writer
    active, then `ml-platform verify`. Exits 0 if every v2 manifest was migrated, 1 if any was
    refused, 2 on bad input.
    """
    base_dir, _ = store_location(base_dir, None, defs_target)
    store = PinnedStore(base_dir)
    if not store.filesystem.root_exists():
        raise ConfigurationError(f"no storage at {store.base}; pass --base-dir, --defs, or set ML_PLATFORM_HOME")
    report = migrate_store(store, dry_run=dry_run)
    verb = "would migrate" if dry_run else "migrated"
    for path in report.migrated:
        click.echo(f"{verb} {path}")
    for lost in report.lost:
        click.echo(f"warning: {lost}", err=True)
    for refused in report.refused:
        click.echo(f"refused {refused}", err=True)
    click.echo(f"{verb} {len(report.migrated)} manifest(s), refused {len(report.refused)}, "
               f"{report.current} already {MANIFEST_SCHEMA}, under {store.base}")
    if report.refused:
        raise click.exceptions.Exit(1)


@click.group("env")
def env() -> None:
    """Environment locks: show the running one, or diff two."""


def _load_lock(spec: str) -> EnvironmentLock:
    """``running``, a lock JSON (``env show --json``), a manifest JSON, or a Parquet file embedding one."""
    if spec == "running":
        return capture_environment()
    path = Path(spec)
    try:
        is_file = path.is_file()
    except OSError as exc:  # a name too long for the file system, say
        raise ConfigurationError(f"{spec[:200]!r} cannot be a lock file ({exc.strerror})") from exc
    if not is_file:
        raise ConfigurationError(f"{spec[:200]!r} is neither 'running' nor a file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            raw = (pq.read_schema(path).metadata or {}).get(MANIFEST_METADATA_KEY)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{spec} cannot be read as Parquet: {exc}") from exc
        if raw is None:
            raise ConfigurationError(
                f"{spec} carries no ml_platform manifest (a stored object is shared by every version with "
                "its content; pass the partition's HEAD.json or a history entry instead)"
            )
        return Manifest.from_json(raw, source=spec).environment
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{spec} is not a readable JSON file: {exc}") from exc
    if isinstance(data, dict) and "schema_version" in data:
        return Manifest.from_dict(data, source=spec).environment
    lock = EnvironmentLock.from_dict(data)
    recorded = data.get("hash") if isinstance(data, dict) else None
    if recorded is not None and recorded != lock.hash:
        raise ConfigurationError(
            f"{spec} records hash {recorded} but its content hashes to {lock.hash}; "
            "the lock was edited - regenerate it with `ml-platform env show --json`"
        )
    return lock


@env.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the lock as JSON (input for `env diff`).")
def show(as_json: bool) -> None:
    """Print the running environment lock."""
    lock = capture_environment()
    if as_json:
        click.echo(json.dumps({**lock.to_dict(), "hash": lock.hash}, indent=2, sort_keys=True))
        return
    click.echo(f"environment  {lock.hash}")
    click.echo(f"python       {lock.python_implementation} {lock.python_version}")
    click.echo(f"platform     {lock.platform}")
    click.echo(f"uv.lock      {lock.uv_lock_hash or '(absent)'}")
    for lib in lock.blas:
        click.echo(
            f"blas         {lib.internal_api} {lib.version} ({lib.threading_layer}, "
            f"{lib.architecture}, {lib.num_threads} threads)"
        )
    for name, value in lock.env_vars:
        click.echo(f"env          {name}={'(unset)' if value is None else value}")
    click.echo(f"packages     {len(lock.packages)}")
    for name, version in lock.packages:
        click.echo(f"  {name}=={version}")


@env.command("diff")
@click.argument("a", type=PathText())
@click.argument("b", type=PathText())
def diff(a: str, b: str) -> None:
    """Compare environment locks A and B: each 'running', a lock JSON, a manifest JSON or a Parquet file.

    Prints one line per difference (A -> B). Exits 0 when identical, 1 when they differ, 2 on error.
    """
    try:  # handled here too: `env` is also invoked on its own, outside the ml-platform group
        lock_a, lock_b = _load_lock(a), _load_lock(b)
    except MLPlatformError as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(2) from exc
    result = diff_environments(lock_a, lock_b)
    if result.is_empty:
        click.echo(f"identical: {lock_a.hash}")
        return
    click.echo(f"{lock_a.hash} -> {lock_b.hash}: {len(result.differences)} difference(s)")
    for line in result.differences:
        click.echo(f"  {line}")
    raise click.exceptions.Exit(1)
