"""Environment acceptances: an image upgrade accepted on the record, and nothing else loading under ``strict``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from dagster import DagsterEventType, DagsterInstance
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_platform.cli import main
from ml_platform.environment import (
    EnvironmentLock,
    EnvironmentPolicy,
    accept_environment,
    capture_environment,
    decide_environment,
    parse_acceptance,
)
from ml_platform.errors import AcceptanceTampered, ConfigurationError, EnvironmentMismatch
from ml_platform.io import PinnedStore
from ml_platform.io.acceptances import read_acceptances, record_acceptance
from ml_platform.io.manager import PinnedIOManager
from ml_platform_tests.io.test_manager import (
    error_text,
    materializations,
    momentum,
    price_frame,
    prices,
    run,
    universe,
    universe_summary,
)

NOW = dt.datetime(2026, 12, 8, 3, 0, tzinfo=dt.UTC)
DAYS = ["2012-01-02", "2012-01-03", "2012-01-04"]


def with_polars(lock: EnvironmentLock, version: str) -> EnvironmentLock:
    return dataclasses.replace(lock, packages=tuple((n, version if n == "polars" else v) for n, v in lock.packages))


@pytest.fixture
def running() -> EnvironmentLock:
    return capture_environment()


@pytest.fixture
def old(running: EnvironmentLock) -> EnvironmentLock:
    return with_polars(running, "0.0.1")


def test_an_acceptance_records_both_locks_their_diff_who_when_and_its_hash(old: EnvironmentLock,
                                                                           running: EnvironmentLock) -> None:
    record = accept_environment(old, running, "polars patch release; re-ran the golden set", "alice", NOW)
    assert (record.from_lock, record.to_lock) == (old.hash, running.hash)
    assert any(line.startswith("package polars: 0.0.1 -> ") for line in record.differences)
    assert record.accepted_at == "2026-12-08T03:00:00+00:00" and record.sha256.startswith("sha256:")
    found = parse_acceptance(record.to_json(), "mem", record.file_name)
    assert found.acceptance == record and found.problem is None
    with pytest.raises(ConfigurationError, match="nothing to accept"):
        accept_environment(running, running, "why", "alice", NOW)
    with pytest.raises(ConfigurationError, match="rationale is empty"):
        accept_environment(old, running, "  \n", "alice", NOW)


def test_an_edited_or_renamed_record_accepts_nothing(old: EnvironmentLock, running: EnvironmentLock) -> None:
    record = accept_environment(old, running, "reviewed", "alice", NOW)
    edited = {**record.to_dict(), "rationale": "reviewed, honestly"}
    found = parse_acceptance(json.dumps(edited).encode(), "mem", record.file_name)
    assert found.acceptance is None and "edited after it was recorded" in str(found.problem)
    assert found.claims == (old.hash, running.hash)  # what a load would rely on, so it can be refused by name
    renamed = parse_acceptance(record.to_json(), "mem", "0" * 64 + ".json")
    assert renamed.acceptance is None and "renamed" in str(renamed.problem)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_change_to_a_stored_record_stops_it_verifying(data: st.DataObject, old: EnvironmentLock,
                                                          running: EnvironmentLock) -> None:
    record = accept_environment(old, running, "reviewed", "alice", NOW)
    raw = bytearray(record.to_json())
    at = data.draw(st.integers(0, len(raw) - 1))
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != raw[at]))
    raw[at] = byte
    found = parse_acceptance(bytes(raw), "mem", record.file_name)  # never raises
    if found.acceptance is not None:  # only whitespace between JSON tokens may change and still verify
        assert found.acceptance == record


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_to_a_problem_never_an_exception(raw: bytes) -> None:
    found = parse_acceptance(raw, "mem", "x.json")
    assert found.acceptance is None and found.problem


def test_strict_passes_only_the_exact_accepted_pair(old: EnvironmentLock, running: EnvironmentLock) -> None:
    newer = with_polars(running, "99.0.0")
    a_to_b = accept_environment(old, running, "reviewed", "alice", NOW)
    b_to_c = accept_environment(running, newer, "reviewed", "alice", NOW)
    files = [parse_acceptance(r.to_json(), "mem", r.file_name) for r in (a_to_b, b_to_c)]
    verdict = decide_environment(old, running, "strict", "prices", files)
    assert verdict.acceptance == a_to_b and not verdict.diff.is_empty
    with pytest.raises(EnvironmentMismatch, match=f"ml-platform environment accept --from {old.hash}"):
        decide_environment(old, newer, "strict", "prices", files)  # no chains: A under C is not accepted
    with pytest.raises(EnvironmentMismatch, match=f"ml-platform environment accept --from {old.hash}"):
        decide_environment(old, running, "strict", "prices", [])
    assert decide_environment(old, running, EnvironmentPolicy.WARN, "prices", []).acceptance is None  # warn unchanged


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def old_store(tmp_path: Path, old: EnvironmentLock) -> Path:
    """Prices of three days written by the old image (its lock differs from this process's in polars)."""
    base = tmp_path / "storage"
    writer = PinnedStore(base, environment=old)
    for day in DAYS:
        writer.write("market/prices", day, price_frame([day]))
    return base


def test_accept_lets_a_strict_load_pass_and_names_the_acceptance(
        old_store: Path, old: EnvironmentLock, tmp_path: Path, dagster_instance: DagsterInstance) -> None:
    strict = PinnedIOManager(base_dir=str(old_store), environment_policy="strict")
    refused = run([prices, momentum], strict, dagster_instance, partition_key="2012-01-04", selection=[momentum],
                  raise_on_error=False)
    assert not refused.success
    assert f"ml-platform environment accept --from {old.hash}" in error_text(refused, "momentum")

    why = tmp_path / "why.txt"
    why.write_text("polars patch release: the golden set reproduced bit-exactly\n")
    code, out, err = _invoke("environment", "accept", "--from", old.hash[7:19], "--rationale-file", str(why),
                             "--storage", str(old_store), "--by", "alice")
    assert code == 0, err
    assert f"accepted: {old.hash} -> {capture_environment().hash}" in out and "package polars: 0.0.1 -> " in out
    (record,) = [found.acceptance for found in PinnedStore(old_store).acceptance_files()]
    assert record is not None and record.rationale == why.read_text() and record.accepted_by == "alice"

    result = run([prices, momentum], strict, dagster_instance, partition_key="2012-01-04", selection=[momentum])
    metadata = materializations(result)[("momentum", "2012-01-04")]
    assert f"loaded under environment acceptance {record.sha256}" in metadata["ml_platform/environment_diff"]
    code, out, _ = _invoke("environment", "list", "--storage", str(old_store))
    assert code == 0 and f"applies   {record.sha256}  {old.hash} -> " in out
    code, again, _ = _invoke("environment", "accept", "--from", old.hash, "--rationale-file", str(why),
                             "--storage", str(old_store), "--by", "alice")
    assert code == 0 and "accepted:" in again  # a new record (its own time), never over the first


def test_a_tampered_acceptance_is_refused_and_reported_by_verify(
        old_store: Path, old: EnvironmentLock, running: EnvironmentLock, dagster_instance: DagsterInstance) -> None:
    store = PinnedStore(old_store, policy="strict")
    path, created = record_acceptance(store.filesystem, accept_environment(old, running, "reviewed", "alice", NOW))
    assert created
    assert store.read("market/prices", "2012-01-03").acceptances  # it verifies: the load passes on it
    code, out, _ = _invoke("verify", "--base-dir", str(old_store), "--no-dagster", "--no-registry",
                           "--environment-policy", "strict")
    assert code == 0 and "accepted by sha256:" in out

    record = json.loads(Path(path).read_text())
    Path(path).write_text(json.dumps({**record, "rationale": "nobody reviewed this"}))
    with pytest.raises(AcceptanceTampered, match="does not verify .*edited after it was recorded"):
        store.read("market/prices", "2012-01-03")
    strict = PinnedIOManager(base_dir=str(old_store), environment_policy="strict")
    result = run([prices, momentum], strict, dagster_instance, partition_key="2012-01-04", selection=[momentum],
                 raise_on_error=False)
    assert not result.success and "ACCEPTANCE_TAMPERED" in error_text(result, "momentum")
    code, out, err = _invoke("verify", "--base-dir", str(old_store), "--no-dagster", "--no-registry")
    assert code == 1 and "environment/acceptances" in out and "does not verify" in err
    code, _, err = _invoke("environment", "list", "--storage", str(old_store))
    assert code == 1 and "TAMPERED" in err


def test_an_acceptance_for_another_running_lock_does_not_apply(old_store: Path, old: EnvironmentLock,
                                                               running: EnvironmentLock) -> None:
    record_acceptance(PinnedStore(old_store).filesystem, accept_environment(old, running, "reviewed", "alice", NOW))
    elsewhere = PinnedStore(old_store, policy="strict", environment=with_polars(running, "99.0.0"))
    with pytest.raises(EnvironmentMismatch, match="environment accept --from"):
        elsewhere.read("market/prices", "2012-01-03")
    assert len(read_acceptances(elsewhere.filesystem)) == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "xyz"], r"--from 'xyz': give an environment hash or a prefix of at least 8 hex"),
    (["--from", "ffffffffffff"], r"--from ffffffffffff: no artefact .* \(recorded environments: sha256:"),
    (["--from", "sha256:" + "0" * 64, "--storage", "/nonexistent/store"], r"no storage at /nonexistent/store"),
    (["--rationale-file", "/nonexistent/why.txt"], r"--rationale-file /nonexistent/why.txt: cannot be read"),
    (["--rationale-file", "EMPTY"], r"--rationale-file .* is empty: say why"),
])
def test_accept_refuses_bad_input_with_one_line_and_exit_2(old_store: Path, old: EnvironmentLock, tmp_path: Path,
                                                           args: list[str], message: str) -> None:
    why, empty = tmp_path / "why.txt", tmp_path / "empty.txt"
    why.write_text("reviewed\n")
    empty.write_text("\n")
    given_args = {"--from": old.hash, "--rationale-file": str(why), "--storage": str(old_store)}
    for name, value in zip(args[::2], args[1::2], strict=True):
        given_args[name] = str(empty) if value == "EMPTY" else value
    code, out, err = _invoke("environment", "accept", *[x for pair in given_args.items() for x in pair])
    assert code == 2 and not out
    assert err.count("\n") == 1 and err.startswith("error: [CONFIGURATION_ERROR] ")
    assert re.search(message, err), err
    assert PinnedStore(old_store).acceptance_files() == []


def test_a_single_partition_load_names_the_acceptance_in_its_input_metadata(
        tmp_path: Path, old: EnvironmentLock, running: EnvironmentLock, dagster_instance: DagsterInstance) -> None:
    base = tmp_path / "storage"
    PinnedStore(base, environment=old).write("universe", None, pa.table({"symbol": ["A", "B", "C"]}))
    record = accept_environment(old, running, "reviewed", "alice", NOW)
    record_acceptance(PinnedStore(base).filesystem, record)
    strict = PinnedIOManager(base_dir=str(base), environment_policy="strict")
    result = run([universe, universe_summary], strict, dagster_instance, selection=[universe_summary])
    loaded = [event.event_specific_data.metadata  # type: ignore[union-attr]
              for event in result.all_events if event.event_type is DagsterEventType.LOADED_INPUT]
    assert [m["ml_platform/environment_acceptance"].value for m in loaded] == [record.sha256]


def test_acceptances_are_recorded_once_on_an_object_store(old: EnvironmentLock, running: EnvironmentLock) -> None:
    fs = PinnedStore(f"memory://acceptance-{uuid.uuid4().hex}/store").filesystem
    record = accept_environment(old, running, "reviewed", "alice", NOW)
    where, created = record_acceptance(fs, record)
    assert created and where.endswith(f"environment/acceptances/{record.file_name}")
    assert record_acceptance(fs, record) == (where, False)  # the same record again: nothing rewritten
    (found,) = read_acceptances(fs)
    assert found.acceptance == record and found.source == where
