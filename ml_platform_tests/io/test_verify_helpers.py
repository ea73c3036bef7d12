"""The helpers behind verify's tamper report: which fields differ, which history entry is the head's own.

test_tamper.py reaches them through verify_store, four calls down: deeper than make mutants' dependency
tracking follows (``dependency_tracking_depth``), so their mutants would count as untested. These pin
them directly, on real files of a real store.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from ml_platform.io.layout import history_name
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import _differing_fields, _history_name, _record


def test_identical_records_differ_nowhere() -> None:
    record = {"a": 1, "b": {"c": [1, 2]}, "manifest_hash": "sha256:x"}
    assert _differing_fields(record, json.loads(json.dumps(record))) == []


def test_nested_fields_are_named_by_their_dotted_path_in_sorted_order() -> None:
    stored = {"z": 1, "seeds": {"numpy": 7, "python": 1}, "upstream": [{"key": "a"}, {"key": "b"}], "rows": 5}
    other = {"z": 1, "seeds": {"numpy": 8, "python": 1}, "upstream": [{"key": "a"}, {"key": "c"}], "rows": 4}
    assert _differing_fields(stored, other) == ["rows", "seeds.numpy", "upstream.1.key"]


def test_a_field_on_one_side_only_is_named() -> None:
    assert _differing_fields({"a": 1, "extra": None, "more": 2}, {"a": 1}) == ["more"]
    assert _differing_fields({"a": 1}, {"a": 1, "b": {"c": 1}}) == ["b"]


def test_the_top_level_manifest_hash_is_left_out_but_a_nested_one_is_compared() -> None:
    assert _differing_fields({"manifest_hash": "sha256:a"}, {"manifest_hash": "sha256:b"}) == []
    nested = _differing_fields({"up": {"manifest_hash": "sha256:a"}}, {"up": {"manifest_hash": "sha256:b"}})
    assert nested == ["up.manifest_hash"]


def test_lists_of_other_lengths_or_kinds_are_named_whole() -> None:
    assert _differing_fields({"u": [1, 2]}, {"u": [1, 2, 3]}) == ["u"]
    assert _differing_fields({"u": [1]}, {"u": {"0": 1}}) == ["u"]
    assert _differing_fields([1, 2], [1, 3]) == ["1"]
    assert _differing_fields(1, 2) == [""]


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    return PinnedStore(tmp_path / "storage")


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"a": 1}', {"a": 1}),
    (b"[1, 2]", None),
    (b"not json", None),
    (b"\xff\xfe", None),
])
def test_a_record_is_a_json_object_or_none(store: PinnedStore, content: bytes, expected: object) -> None:
    Path(store.base, "record.json").parent.mkdir(parents=True, exist_ok=True)
    Path(store.base, "record.json").write_bytes(content)
    assert _record(store, "record.json") == expected


def test_a_missing_record_is_none(store: PinnedStore) -> None:
    store.write("k", None, pl.DataFrame({"x": [1]}))  # the store exists, the file does not
    assert _record(store, "refs/missing/HEAD.json") is None


def test_the_history_name_of_a_record_is_its_entry_name_or_empty() -> None:
    data_hash = "xxh3_128:" + "0" * 32
    written = "2024-01-02T03:04:05.123456+00:00"
    assert _history_name({"written_at": written, "data_hash": data_hash}) == history_name(written, data_hash)
    assert _history_name({"written_at": written}) == ""
    assert _history_name({"data_hash": data_hash}) == ""
    assert _history_name({"written_at": "not a time", "data_hash": data_hash}) == ""
    assert _history_name({"written_at": written, "data_hash": 5}) == ""
