"""The manifest JSON schema: round trip and validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ml_platform.environment import EnvironmentLock, capture_environment
from ml_platform.errors import ConfigurationError, ManifestError
from ml_platform.io.manifest import MANIFEST_SCHEMA, Manifest, UpstreamRef, WriteFacts, WriterVersions
from ml_platform.window import DataWindow


def make_manifest(**overrides: Any) -> Manifest:
    lock = capture_environment()
    fields: dict[str, Any] = {
        "asset_key": "features/momentum",
        "partition": "2012-01-03",
        "data_hash": "xxh3_128:" + "a" * 32,
        "code_hash": "sha256:" + "b" * 64,
        "graph_hash": "sha256:" + "c" * 64,
        "upstream": (UpstreamRef("market/prices", "2012-01-02", "xxh3_128:" + "d" * 32),),
        "environment": lock,
        "environment_hash": lock.hash,
        "seeds": {"default": 42, "bootstrap": 7},
        "window": DataWindow.parse("2012-01-03"),
        "git_commit": "0" * 40,
        "git_dirty": True,
        "run_id": "run-1",
        "written_at": "2024-05-01T12:00:00.000001+00:00",
        "writer": WriterVersions.current(),
        "rows": 500,
        "data_file": "xxh3_128-" + "a" * 32 + ".parquet",
        "params": {"lookback": 20, "nested": {"a": [1, 2]}},
        "file_hash": "xxh3_128:" + "e" * 32,
        "file_size": 1234,
    }
    fields.update(overrides)
    return Manifest(**fields)


def test_json_round_trip_is_exact() -> None:
    manifest = make_manifest()
    text = manifest.to_json()
    again = Manifest.from_json(text, source="test")
    assert again == manifest
    assert again.to_json() == text
    data = json.loads(text)
    assert data["schema_version"] == MANIFEST_SCHEMA
    assert data["git"] == {"commit": "0" * 40, "dirty": True}
    assert data["seeds"] == {"bootstrap": 7, "default": 42}
    assert data["window"] == {"start": "2012-01-03", "end": "2012-01-03"}
    assert data["upstream"] == [
        {"key": "market/prices", "partition": "2012-01-02", "data_hash": "xxh3_128:" + "d" * 32}
    ]
    assert data["environment"]["packages"]["polars"]


def test_compact_form_parses_to_the_same_manifest() -> None:
    manifest = make_manifest(partition=None, window=None, code_hash=None, graph_hash=None, run_id=None)
    assert Manifest.from_json(manifest.to_json(indent=None), source="footer") == manifest


def test_embedded_form_drops_only_the_file_facts() -> None:
    manifest = make_manifest()
    embedded = manifest.embedded_form()
    assert embedded.file_hash is None and embedded.file_size is None
    assert json.loads(embedded.to_json())["file"] is None
    assert embedded != manifest and embedded == make_manifest(file_hash=None, file_size=None)


def test_embedded_json_is_the_compact_embedded_form_and_survives_the_sidecar_round_trip() -> None:
    manifest = make_manifest()
    assert manifest.embedded_json() == manifest.embedded_form().to_json(indent=None).encode()
    # a reader rebuilds the manifest from the indented sidecar: the footer bytes must come out equal
    sidecar = Manifest.from_json(manifest.to_json(), source="sidecar")
    assert sidecar.embedded_json() == manifest.embedded_json()
    assert make_manifest(rows=501).embedded_json() != manifest.embedded_json()


def test_writer_versions_are_looked_up_once_per_process() -> None:
    assert WriterVersions.current() is WriterVersions.current()


@pytest.mark.parametrize("version", ["ml_platform.manifest/v1", "ml_platform.manifest/v4"])
def test_unknown_schema_version_is_refused(version: str) -> None:
    """A v1 manifest (the old mutable layout) is refused by name, as is any future version."""
    data = json.loads(make_manifest().to_json())
    data["schema_version"] = version
    with pytest.raises(ManifestError, match=rf"/some/path has schema version .{version}.*reads only .ml_platform.manifest/v3"):
        Manifest.from_dict(data, source="/some/path")


def test_a_v2_manifest_is_refused_by_name_as_unhashed() -> None:
    """v2 records no hash over its provenance: it is refused by name, saying what to do."""
    data = json.loads(make_manifest().to_json())
    for name in ("previous", "manifest_scheme", "manifest_hash"):
        del data[name]
    data["schema_version"] = "ml_platform.manifest/v2"
    with pytest.raises(ManifestError, match=r"/old has schema version .ml_platform.manifest/v2., whose provenance "
                                            r"fields .* no hash covers.*reads only .ml_platform.manifest/v3.*"
                                            r"Migrate the store with `ml-platform migrate-store`.*or re-materialize"):
        Manifest.from_dict(data, source="/old")


def _edit(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for name in parents:
        data = data[int(name)] if isinstance(data, list) else data[name]
    data[int(last) if isinstance(data, list) else last] = value


#: one well-formed edit of every field a manifest records (each must break its own hash)
EVERY_FIELD_EDIT = [
    ("code_hash", "sha256:" + "f" * 64),
    ("graph_hash", None),
    ("seeds", {"default": 43, "bootstrap": 7}),
    ("seeds.bootstrap", 8),
    ("rows", 499),
    ("git.commit", "1" * 40),
    ("git.dirty", False),
    ("upstream.0.data_hash", "xxh3_128:" + "9" * 32),
    ("upstream.0.partition", "2012-01-01"),
    ("upstream", []),
    ("window", {"start": "2012-01-02", "end": "2012-01-03"}),
    ("run_id", "run-2"),
    ("written_at", "2024-05-01T12:00:00.000002+00:00"),
    ("writer.polars", "0.0.1"),
    ("params.lookback", 21),
    ("file.size", 1235),
    ("file.hash", "xxh3_128:" + "0" * 32),
    ("previous", "sha256:" + "1" * 64),
    ("partition", "2012-01-04"),
    ("asset_key", "features/other"),
]


@pytest.mark.parametrize(("path", "value"), EVERY_FIELD_EDIT, ids=[path for path, _ in EVERY_FIELD_EDIT])
def test_an_edit_of_any_field_breaks_the_manifest_hash(path: str, value: Any) -> None:
    """Every field is under the manifest's own hash: a well-formed edit of any one is refused on parse."""
    data = json.loads(make_manifest().to_json())
    _edit(data, path, value)
    with pytest.raises(ManifestError, match=r"m\.json of features/\w+ partition [0-9-]+: its fields hash to "
                                            r"sha256:[0-9a-f]{64}, but it records manifest_hash .*edited.*"
                                            r"`ml-platform verify`"):
        Manifest.from_dict(data, source="m.json")


def test_an_edited_environment_with_its_recomputed_hash_breaks_the_manifest_hash() -> None:
    """The environment and its hash edited together still break the manifest's own hash."""
    data = json.loads(make_manifest().to_json())
    lock = capture_environment().to_dict()
    lock["packages"]["polars"] = "0.0.1"
    data["environment"] = lock
    data["environment_hash"] = EnvironmentLock.from_dict(lock).hash
    with pytest.raises(ManifestError, match="its fields hash to"):
        Manifest.from_dict(data, source="m.json")


def test_the_manifest_hash_covers_exactly_the_recorded_fields_and_names_its_scheme() -> None:
    from ml_platform.io.manifest import manifest_digest

    manifest = make_manifest()
    record = manifest.to_dict()
    assert record["manifest_scheme"] == "ml_platform.manifest_hash/v1"
    assert record["manifest_hash"] == manifest.manifest_hash == manifest_digest(record)
    assert manifest_digest({**record, "manifest_hash": "ignored"}) == manifest.manifest_hash
    assert make_manifest(previous=manifest.manifest_hash).manifest_hash != manifest.manifest_hash
    record["manifest_scheme"] = "ml_platform.manifest_hash/v9"
    with pytest.raises(ManifestError, match=r"manifest_hash/v9.*this ml_platform can verify "
                                            r"ml_platform\.manifest_hash/v1"):
        Manifest.from_dict(record, source="future")


def test_a_field_this_ml_platform_does_not_write_is_refused_even_under_a_matching_hash() -> None:
    from ml_platform.io.manifest import manifest_digest

    record = make_manifest().to_dict()
    record["note"] = "added by hand"
    record["manifest_hash"] = manifest_digest(record)
    with pytest.raises(ManifestError, match=r"not in the form this ml_platform writes \(extra fields \['note'\]"):
        Manifest.from_dict(record, source="m.json")


def test_previous_must_be_a_manifest_hash() -> None:
    with pytest.raises(ManifestError, match="previous 'sha256:12' is not a manifest hash"):
        make_manifest(previous="sha256:12")


def test_a_manifest_may_only_name_the_object_of_its_own_data_hash() -> None:
    """The v2 form of 'a manifest may only name its own partition's data file'."""
    with pytest.raises(ManifestError, match="not the object of its data hash"):
        make_manifest(data_file="xxh3_128-" + "b" * 32 + ".parquet")
    data = json.loads(make_manifest().to_json())
    data["data_hash"] = "xxh3_128:" + "c" * 32
    with pytest.raises(ManifestError, match="may only name its own data's object"):
        Manifest.from_dict(data, source="m.json")


@pytest.mark.parametrize("field", ["data_hash", "environment", "git", "file", "upstream"])
def test_missing_fields_are_refused(field: str) -> None:
    data = json.loads(make_manifest().to_json())
    del data[field]
    with pytest.raises(ManifestError, match=f"lacks fields \\['{field}'\\]"):
        Manifest.from_dict(data, source="m.json")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rows", -1, "rows must be a non-negative integer"),
        ("data_hash", "", "data_hash must be a non-empty string"),
        ("written_at", "2024-05-01T12:00:00+02:00", "not a UTC timestamp"),
        ("seeds", {"default": "42"}, "seed 'default' must be an integer"),
        ("data_file", "../../etc/passwd.parquet", "not a Parquet file name"),
        ("window", {"start": "2012-01-05", "end": "2012-01-03"}, "after its end"),
    ],
)
def test_malformed_fields_are_refused(field: str, value: Any, message: str) -> None:
    data = json.loads(make_manifest().to_json())
    data[field] = value
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(data, source="m.json")


def test_an_altered_environment_record_is_detected() -> None:
    data = json.loads(make_manifest().to_json())
    data["environment"]["packages"]["polars"] = "0.0.1"
    with pytest.raises(ManifestError, match="does not match its environment record"):
        Manifest.from_dict(data, source="m.json")


def test_invalid_json_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="broken.json is not valid JSON"):
        Manifest.from_json("{not json", source="broken.json")


def test_write_facts_validate_and_freeze() -> None:
    facts = WriteFacts(seeds={"b": 2, "a": 1}, params={"k": [1, 2]})
    assert list(facts.seeds) == ["a", "b"]
    with pytest.raises(TypeError):
        facts.params["k"] = 3  # type: ignore[index]
    with pytest.raises(ConfigurationError, match="JSON-serializable"):
        WriteFacts(params={"x": {1, 2}})
    with pytest.raises(ConfigurationError, match="seed 'a'"):
        WriteFacts(seeds={"a": True})
    with pytest.raises(ConfigurationError, match="DataWindow"):
        WriteFacts(window="2012-01-03..2012-01-04")  # type: ignore[arg-type]


def test_a_manifest_records_the_scheme_of_every_hash_and_refuses_one_it_cannot_recompute() -> None:
    from ml_platform.lineage.schemes import current_schemes

    manifest = make_manifest()
    record = manifest.to_dict()
    assert record["hash_schemes"] == current_schemes() == {
        "code": "ml_platform.code_hash/v1", "graph": "ml_platform.graph_hash/v1",
        "data": "ml_platform.data_hash/v1", "environment": "ml_platform.environment/v1"}
    # a v3 record always carries them (v2 records are refused by name)
    del record["hash_schemes"]
    with pytest.raises(ManifestError, match=r"lacks fields \['hash_schemes'\]"):
        Manifest.from_dict(record, source="old")
    record["hash_schemes"] = {"data": "ml_platform.data_hash/v9"}   # a newer ml_platform wrote it
    with pytest.raises(ManifestError, match="data_hash/v9"):
        Manifest.from_dict(record, source="future")
