"""`ml-platform verify` and `ml-platform env` through click's CliRunner."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from ml_platform.cli import main
from ml_platform.cli.store import env, verify
from ml_platform.environment import capture_environment
from ml_platform.io.store import PinnedStore

KEY = "features/momentum"
DAY = "2012-01-03"


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    store = PinnedStore(tmp_path / "storage")
    for day in [DAY, "2012-01-04"]:
        store.write(KEY, day, pl.DataFrame({"x": list(range(1000)), "day": [day] * 1000}))
    store.write("universe", None, pl.DataFrame({"symbol": ["A", "B"]}))
    return store


def test_verify_passes_on_an_intact_store(store: PinnedStore) -> None:
    result = CliRunner().invoke(verify, ["--base-dir", store.base, "--no-dagster"])
    assert result.exit_code == 0, result.output
    assert result.output.count("\nok ") == 3
    assert "3 artefact(s)" in result.output and "3 ok, 0 failed" in result.output


@pytest.mark.parametrize("state", ["an empty folder", "no folder"])
def test_a_dagster_home_from_the_environment_without_an_instance_is_noted_not_created(
        store: PinnedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    """DAGSTER_HOME inherited from the environment (not named by --dagster-home) that holds no instance: the
    store is verified alone, the output says so, and no instance is created there."""
    home = tmp_path / "dagster"
    if state == "an empty folder":
        home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    result = CliRunner().invoke(verify, ["--base-dir", store.base])
    assert result.exit_code == 0, result.output
    reason = "holds no Dagster instance" if state == "an empty folder" else "does not exist"
    assert f"(not cross-checked against Dagster: DAGSTER_HOME={home} {reason})" in result.output
    assert (sorted(home.iterdir()) == []) if state == "an empty folder" else not home.exists()


def test_verify_fails_after_a_byte_flip(store: PinnedStore) -> None:
    path = Path(store.data_path(store.manifest(KEY, "2012-01-04")))
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    result = CliRunner().invoke(verify, ["--base-dir", store.base, "--no-dagster"])
    assert result.exit_code == 1
    assert "CORRUPT  features/momentum  2012-01-04" in result.output
    assert "2 ok, 1 failed" in result.output
    assert str(path) in result.output  # the full message names the file ...
    assert f"  manifest: {store.manifest_path(KEY, '2012-01-04')}" in result.output  # ... and its manifest
    one = CliRunner().invoke(verify, [KEY, "--partition", DAY, "--base-dir", store.base])
    assert one.exit_code == 0 and "1 artefact(s)" in one.output


def test_verify_of_an_unknown_asset_is_bad_input_listing_the_known_ones(store: PinnedStore) -> None:
    result = CliRunner().invoke(main, ["verify", "nothing_here", "--base-dir", store.base, "--no-dagster"])
    assert result.exit_code == 2, result.output
    assert "unknown asset key 'nothing_here'" in result.output
    assert "known keys: features/momentum, universe" in result.output


def test_verify_without_storage_says_where_it_looked(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["verify", "--base-dir", str(tmp_path / "absent")])
    assert result.exit_code == 2 and "no storage at" in result.output    # bad input, not a failed artefact


def test_verify_under_strict_fails_on_an_environment_difference(store: PinnedStore, tmp_path: Path) -> None:
    lock = capture_environment()
    old = dataclasses.replace(
        lock, packages=tuple((n, "0.0.1" if n == "polars" else v) for n, v in lock.packages)
    )
    PinnedStore(store.base, environment=old).write("old_env", None, pl.DataFrame({"x": [1]}))
    warned = CliRunner().invoke(verify, ["--base-dir", store.base])
    assert warned.exit_code == 0  # warn: reported only, each difference on its own line
    running_polars = lock.package_versions["polars"]
    explained = [
        "old_env: 1 environment difference(s), stored -> running:",
        f"  package polars: 0.0.1 -> {running_polars}",
        f"  manifest: {store.manifest_path('old_env', None)}",
    ]
    assert "\n".join(explained) in warned.output
    strict = CliRunner().invoke(verify, ["--base-dir", store.base, "--environment-policy", "strict"])
    assert strict.exit_code == 1 and "ENV-MISMATCH  old_env" in strict.output


def test_env_show_json_round_trips_and_diff_shows_a_changed_package(tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(env, ["show", "--json"])
    assert shown.exit_code == 0
    record = json.loads(shown.output)
    assert record["hash"] == capture_environment().hash
    same = tmp_path / "same.json"
    same.write_text(shown.output)
    assert runner.invoke(env, ["diff", str(same), "running"]).exit_code == 0

    running_polars = record["packages"]["polars"]
    record["packages"]["polars"] = "2.0.0"
    del record["hash"]
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(record))
    result = runner.invoke(env, ["diff", "running", str(changed)])
    assert result.exit_code == 1
    assert f"package polars: {running_polars} -> 2.0.0" in result.output


def test_env_diff_reads_manifests_and_explains_objects(store: PinnedStore) -> None:
    manifest_path = store.manifest_path(KEY, DAY)
    result = CliRunner().invoke(env, ["diff", manifest_path, "running"])
    assert result.exit_code == 0 and "identical" in result.output
    data_path = store.data_path(store.manifest(KEY, DAY))
    refused = CliRunner().invoke(env, ["diff", manifest_path, data_path])
    assert refused.exit_code == 2 and "pass the partition's HEAD.json" in refused.output


def test_env_diff_refuses_edited_or_unknown_inputs(tmp_path: Path) -> None:
    record = capture_environment().to_dict()
    record["hash"] = "sha256:" + "0" * 64
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(record))
    result = CliRunner().invoke(env, ["diff", str(edited), "running"])
    assert result.exit_code == 2 and "the lock was edited" in result.output
    missing = CliRunner().invoke(env, ["diff", str(tmp_path / "nope.json"), "running"])
    assert missing.exit_code == 2 and "neither 'running' nor a file" in missing.output


def test_env_show_human_readable() -> None:
    result = CliRunner().invoke(env, ["show"])
    assert result.exit_code == 0
    assert result.output.startswith(f"environment  {capture_environment().hash}")
    assert f"  polars=={pl.__version__}" in result.output


def test_verify_says_when_dagster_home_does_not_exist_and_refuses_a_named_one(
        store: PinnedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no_dagster_here"
    monkeypatch.setenv("DAGSTER_HOME", str(missing))
    result = CliRunner().invoke(main, ["verify", "--base-dir", store.base])
    assert f"not cross-checked against Dagster: DAGSTER_HOME={missing} does not exist" in result.output
    named = CliRunner().invoke(main, ["verify", "--base-dir", store.base, "--dagster-home", str(missing)])
    assert named.exit_code == 2 and "no Dagster instance at" in named.output
