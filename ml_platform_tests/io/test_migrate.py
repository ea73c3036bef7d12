"""Migrating a store of ``ml_platform.manifest/v2`` (no manifest hash) to v3: refused until migrated, then exact."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from ml_platform.cli import main
from ml_platform.errors import ManifestError
from ml_platform.io.manifest import Manifest
from ml_platform.io.migrate import migrate_store
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyStatus, verify_store

KEY = "features/momentum"
DAY = "2012-01-03"


def frame(shift: float) -> pl.DataFrame:
    return pl.DataFrame({"day": [DAY] * 3, "value": [1.0 + shift, 2.0, 3.0]})


def manifests(store: PinnedStore) -> list[Path]:
    return sorted(path for path in Path(store.base, "refs").rglob("*.json"))


def as_v2(store: PinnedStore) -> dict[Path, str]:
    """Rewrite every manifest as ml_platform v2 wrote it (no chain, no manifest hash); the v3 texts before."""
    before = {}
    for path in manifests(store):
        before[path] = path.read_text()
        record = json.loads(before[path])
        for name in ("previous", "manifest_scheme", "manifest_hash"):
            del record[name]
        record["schema_version"] = "ml_platform.manifest/v2"
        path.write_text(json.dumps(record, indent=2, sort_keys=True))
    return before


@pytest.fixture
def store(tmp_path: Path) -> PinnedStore:
    store = PinnedStore(tmp_path / "storage")
    store.write(KEY, DAY, frame(0.0))
    store.write(KEY, DAY, frame(1.0))
    store.write("universe", None, pl.DataFrame({"symbol": ["A"]}))
    return store


def test_a_v2_store_is_refused_by_name_until_migrated_then_reads_exactly_as_written(store: PinnedStore) -> None:
    before = as_v2(store)
    with pytest.raises(ManifestError, match=r"ml_platform\.manifest/v2.*no hash covers.*`ml-platform migrate-store`"):
        store.read(KEY, DAY)
    assert {row.status for row in verify_store(store)} == {VerifyStatus.MANIFEST}
    dry = migrate_store(store, dry_run=True)
    assert len(dry.migrated) == 5 and all(path.read_text() != text for path, text in before.items())
    result = CliRunner().invoke(main, ["migrate-store", "--base-dir", store.base])
    assert result.exit_code == 0, result.output
    assert "migrated 5 manifest(s), refused 0, 0 already ml_platform.manifest/v3" in result.output
    # the v3 form of an unedited v2 manifest is exactly the one v3 writes: same chain, same hash
    assert {path: path.read_text() for path in before} == before
    history = store.history(KEY, DAY)
    assert history[1].previous == history[0].manifest_hash and history[0].previous is None
    assert [row.status for row in verify_store(store)] == [VerifyStatus.OK, VerifyStatus.OK]
    again = migrate_store(store)
    assert (again.migrated, again.refused, again.current) == ((), (), 5)


def test_a_v2_head_edited_unlike_its_history_copy_is_named_after_migration(store: PinnedStore) -> None:
    as_v2(store)
    head = Path(store.manifest_path(KEY, DAY))
    head.write_text(head.read_text().replace('"rows": 3', '"rows": 2'))
    migrate_store(store)
    [row] = [row for row in verify_store(store) if not row.ok]
    assert row.status is VerifyStatus.TAMPERED and "differently, in: previous, rows" in row.detail


def test_a_v2_version_whose_data_does_not_verify_stays_v2_and_is_named(store: PinnedStore) -> None:
    old = store.history(KEY, DAY)[0]
    as_v2(store)
    path = Path(store.data_path(old))
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    result = CliRunner().invoke(main, ["migrate-store", "--base-dir", store.base])
    assert result.exit_code == 1, result.output
    assert "its data does not verify as it records, so it is not certified" in result.output
    assert "migrated 4 manifest(s), refused 1" in result.output
    entry = Path(store.base, store.history_entries(KEY, DAY)[0][0])
    assert json.loads(entry.read_text())["schema_version"] == "ml_platform.manifest/v2"
    assert store.read(KEY, DAY).frame.equals(frame(1.0))  # the head's chain starts after the refused version
    assert Manifest.from_json(Path(store.manifest_path(KEY, DAY)).read_text(), source="head").previous is None


def test_a_v2_version_whose_object_is_gone_is_migrated_with_a_warning(store: PinnedStore) -> None:
    """Its record is still what was written; the lost object is verify's to report, as for any version."""
    old = store.history(KEY, DAY)[0]
    as_v2(store)
    Path(store.data_path(old)).unlink()
    report = migrate_store(store)
    assert (len(report.migrated), report.refused) == (5, ())
    [lost] = report.lost
    assert lost.startswith(str(Path(store.base, store.history_entries(KEY, DAY)[0][0]))) and "is missing" in lost
    assert [row.status for row in verify_store(store) if not row.ok] == [VerifyStatus.MISSING_OBJECT]
