"""Garbage collection: roots, retention, upstream closure, dry run, the CLI and Dagster's records in verify."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner

from ml_platform.cli import main
from ml_platform.errors import ConfigurationError, ManifestError
from ml_platform.io.gc import collect
from ml_platform.io.manifest import UpstreamRef, WriteFacts
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import verify_store

DAY = "2012-01-03"


def frame(value: float) -> pl.DataFrame:
    return pl.DataFrame({"value": [value, value + 1.0]})


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    return PinnedStore(tmp_path / "storage")


def chain(store: PinnedStore, shift: float) -> tuple[str, str, str]:
    """prices -> feature -> training set, each recording its input's data hash; returns the three hashes."""
    prices = store.write("market/prices", DAY, frame(shift))
    feature = store.write("features/momentum", DAY, frame(shift + 10),
                          WriteFacts(upstream=(UpstreamRef("market/prices", DAY, prices.data_hash),)))
    training = store.write("training_set", None, frame(shift + 20),
                           WriteFacts(upstream=(UpstreamRef("features/momentum", DAY, feature.data_hash),)))
    return prices.data_hash, feature.data_hash, training.data_hash


def readable(store: PinnedStore, hashes: tuple[str, str, str]) -> list[bool]:
    out = []
    for (key, partition), data_hash in zip(
        [("market/prices", DAY), ("features/momentum", DAY), ("training_set", None)], hashes, strict=True
    ):
        try:
            store.read(key, partition, data_hash=data_hash)
            out.append(True)
        except ManifestError:
            out.append(False)
    return out


def test_an_extra_root_keeps_its_whole_upstream_and_the_rest_goes(store: PinnedStore) -> None:
    """Finding 2: the exact bytes behind a registered version survive rewrites and gc."""
    registered = chain(store, 0.0)
    unregistered = chain(store, 100.0)
    current = chain(store, 200.0)
    report = collect(store, [registered[2]], keep_days=0, grace_seconds=0)
    assert readable(store, registered) == [True, True, True]
    assert readable(store, current) == [True, True, True]
    assert readable(store, unregistered) == [False, False, False]
    assert len(report.objects) == 3 and len(report.history) == 3
    assert all(r.ok for r in verify_store(store))


def test_retention_keeps_recent_history_and_dry_run_deletes_nothing(store: PinnedStore) -> None:
    old = chain(store, 0.0)
    chain(store, 1.0)
    assert collect(store, keep_days=1, grace_seconds=0).deleted == []  # written today: within retention
    dry = collect(store, keep_days=0, grace_seconds=0, dry_run=True)
    assert len(dry.objects) == 3 and dry.dry_run
    assert readable(store, old) == [True, True, True]
    assert collect(store, keep_days=0, grace_seconds=3600).objects == []  # every object is younger than the grace
    real = collect(store, keep_days=0, grace_seconds=0)
    assert real.deleted == dry.deleted
    assert readable(store, old) == [False, False, False]


def test_gc_refuses_bad_roots_and_settings(store: PinnedStore) -> None:
    with pytest.raises(ConfigurationError, match="gc extra root 'nope'"):
        collect(store, ["nope"])
    with pytest.raises(ConfigurationError, match="must be >= 0"):
        collect(store, keep_days=-1)


def test_gc_command_prints_what_it_would_delete_and_exit_codes(store: PinnedStore, tmp_path: Path) -> None:
    chain(store, 0.0)
    chain(store, 1.0)
    args = ["gc", "--base-dir", store.base, "--no-registry", "--keep-days", "0", "--grace-seconds", "0"]
    dry = CliRunner().invoke(main, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.output.count("would delete /") == 6 and "would delete 3 object(s)" in dry.output
    real = CliRunner().invoke(main, args)
    assert real.exit_code == 0 and "deleted 3 object(s)" in real.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "deleted 0 object(s)" in again.output
    assert CliRunner().invoke(main, ["gc", "--base-dir", str(tmp_path / "absent"), "--no-registry"]).exit_code == 2
    assert CliRunner().invoke(main, [*args, "--keep-days", "-1"]).exit_code == 2


def test_verify_exit_codes(store: PinnedStore, tmp_path: Path) -> None:
    manifest = store.write("features/momentum", DAY, frame(0.0))
    base = ["verify", "--base-dir", store.base, "--no-dagster"]
    assert CliRunner().invoke(main, base).exit_code == 0
    assert CliRunner().invoke(main, [*base[:1], "features/momentum\n", *base[1:]]).exit_code == 2
    assert CliRunner().invoke(main, ["verify", "--base-dir", str(tmp_path / "absent")]).exit_code == 2
    Path(store.data_path(manifest)).unlink()
    failed = CliRunner().invoke(main, base)
    assert failed.exit_code == 1 and "MISSING-OBJECT" in failed.output


def test_verify_cross_checks_dagster_materializations(tmp_path: Path) -> None:
    """A partition Dagster recorded as materialized but the store has no trace of is UNRECORDED."""
    from ml_platform.io.manager import PinnedIOManager

    home = tmp_path / "dagster_home"
    home.mkdir()
    storage = tmp_path / "storage"
    partitions = dg.DailyPartitionsDefinition(start_date="2012-01-02", end_date="2012-01-06")

    @dg.asset(partitions_def=partitions, key_prefix=["market"])
    def prices(context) -> pl.DataFrame:
        return pl.DataFrame({"day": [context.partition_key]})

    instance = dg.DagsterInstance.from_config(str(home))
    try:
        for day in ["2012-01-02", "2012-01-03"]:
            result = dg.materialize([prices], partition_key=day, instance=instance,
                                    resources={"io_manager": PinnedIOManager(base_dir=str(storage))})
            assert result.success
    finally:
        instance.dispose()
    store = PinnedStore(storage)
    args = ["verify", "--base-dir", str(storage), "--dagster-home", str(home)]
    ok = CliRunner().invoke(main, args)
    assert ok.exit_code == 0 and "cross-checked against the Dagster instance" in ok.output, ok.output
    for rel in list(store.filesystem.list_files("refs/market/prices/@2012-01-03")):
        store.filesystem.delete(rel)  # every trace of the partition in the store
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "UNRECORDED  market/prices  2012-01-03" in result.output
    assert "Dagster recorded market/prices partition 2012-01-03 as materialized" in result.output
    assert CliRunner().invoke(main, [*args, "--no-dagster"]).exit_code == 0  # the store alone cannot know


def test_a_history_entry_kept_by_the_grace_period_keeps_its_object(store: PinnedStore) -> None:
    """keep_days shorter than the grace period: a young history entry outlives the retention window, so the
    object it names must outlive it too, even when the object itself is old (content written long before)."""
    import os
    import time

    old = store.write("features/a", "2012-01-03", frame(1.0))
    object_path = Path(store.data_path(old))
    hours_ago = time.time() - 7200
    os.utime(object_path, (hours_ago, hours_ago))  # the bytes have been in the store for two hours
    store.write("features/a", "2012-01-03", frame(2.0))  # the entry of frame(1.0) is now history, written seconds ago
    report = collect(store, keep_days=0, grace_seconds=3600)
    assert str(object_path) not in " ".join(report.deleted) and object_path.exists()
    assert [r.status.value for r in verify_store(store)] == ["ok"]
    assert store.read("features/a", "2012-01-03", data_hash=old.data_hash).frame.equals(frame(1.0))


def test_verify_names_a_damaged_dagster_event_log_instead_of_a_traceback(tmp_path: Path) -> None:
    """A materialization record cut short in the instance's SQLite index (a disk or copy accident)."""
    import sqlite3

    from ml_platform.io.manager import PinnedIOManager

    home, storage = tmp_path / "dagster_home", tmp_path / "storage"
    home.mkdir()

    @dg.asset(key_prefix=["market"])
    def prices() -> pl.DataFrame:
        return pl.DataFrame({"day": [DAY]})

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert dg.materialize([prices], instance=instance,
                              resources={"io_manager": PinnedIOManager(base_dir=str(storage))}).success
    args = ["verify", "--base-dir", str(storage), "--dagster-home", str(home)]
    assert CliRunner().invoke(main, args).exit_code == 0
    with sqlite3.connect(home / "history" / "runs" / "index.db") as index:
        index.execute("UPDATE asset_keys SET last_materialization = substr(last_materialization, 1, 40)")

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert f"the event log of the Dagster instance at {home} is damaged (reading asset market/prices)" in result.output
    assert "JSONDecodeError" in result.output and "ml-platform verify --no-dagster" in result.output
    assert "dagster instance info" in result.output and "Traceback" not in result.output
    assert CliRunner().invoke(main, [*args, "--no-dagster"]).exit_code == 0  # the store alone is still verifiable
