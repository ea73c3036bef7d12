"""Recorded lineage, source seeding as delivered, comparison and the certificate, on real stores and MLflow.

A small production store is written the way the IO manager writes it: a source ``bars`` per day, a
feature ``f`` per day reading ``bars`` of the day and the day before, and a training set reading ``f``
over three days, each manifest naming its upstream versions by data hash.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from mlflow import MlflowClient

from ml_platform import FrameKeys, PinnedStore
from ml_platform.errors import ReproductionFailed
from ml_platform.io.layout import object_rel
from ml_platform.io.manifest import UpstreamRef, WriteFacts
from ml_platform.io.recorded_lineage import recorded_lineage
from ml_platform.reproduce.certificate import CERTIFICATE_TAG, VERDICT_TAG, certificate_of
from ml_platform.reproduce.compare import (
    ComparisonKind,
    compare_bytes,
    compare_partition,
    compare_partitions,
    first_difference,
)
from ml_platform.reproduce.passes import plan_passes
from ml_platform.reproduce.publish import store_certificate
from ml_platform.reproduce.sources import seed_sources

KEYS = FrameKeys("day", ("name",))
DAYS = ("2024-01-02", "2024-01-03", "2024-01-04")


def _bars(day: str, bump: float = 0.0) -> pl.DataFrame:
    return pl.DataFrame({"day": [day] * 2, "name": ["A", "B"], "px": [10.0 + bump, 20.0]}).with_columns(
        pl.col("day").str.to_date())


def _ref(manifest) -> UpstreamRef:  # type: ignore[no-untyped-def]
    return UpstreamRef(manifest.asset_key, manifest.partition, manifest.data_hash)


def write_production(store: PinnedStore) -> dict[str, object]:
    bars = {d: store.write("bars", d, _bars(d), WriteFacts(code_hash="sha256:" + "1" * 64)) for d in DAYS}
    feats = {}
    for i, d in enumerate(DAYS):
        ups = [bars[d]] + ([bars[DAYS[i - 1]]] if i else [])
        frame = _bars(d).with_columns((pl.col("px") * 2).alias("f")).select("day", "name", "f")
        feats[d] = store.write("f", d, frame, WriteFacts(upstream=tuple(_ref(m) for m in ups)))
    train = pl.concat([store.read("f", d).frame for d in DAYS])
    root = store.write("train", None, train, WriteFacts(upstream=tuple(_ref(feats[d]) for d in DAYS)))
    return {"bars": bars, "f": feats, "train": root}


@pytest.fixture
def production(tmp_path: Path) -> tuple[PinnedStore, dict[str, object]]:
    store = PinnedStore(tmp_path / "production")
    return store, write_production(store)


def test_the_lineage_names_every_recorded_version_down_to_the_sources(production) -> None:  # type: ignore[no-untyped-def]
    store, written = production
    root = written["train"]
    lineage = recorded_lineage(store, "train", None, root.data_hash)
    assert lineage.complete and lineage.root is not None and lineage.root.data_hash == root.data_hash
    assert lineage.keys() == ("train", "f", "bars")
    assert lineage.partitions_of("bars") == DAYS and lineage.partitions_of("f") == DAYS
    assert {(s.key, s.partition) for s in lineage.sources()} == {("bars", d) for d in DAYS}
    assert len(lineage.computed()) == 3


def test_the_lineage_follows_the_recorded_versions_not_a_later_revision(production, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, written = production
    recorded = written["bars"]["2024-01-03"].data_hash
    store.write("bars", "2024-01-03", _bars("2024-01-03", bump=0.5))  # the vendor revised that day since
    lineage = recorded_lineage(store, "train", None, written["train"].data_hash)
    assert {s.data_hash for s in lineage.sources() if s.partition == "2024-01-03"} == {recorded}

    target = PinnedStore(tmp_path / "repro")
    report = seed_sources(store, target, lineage, key_map=lambda k: f"repro/{k}")
    assert len(report) == 3
    seeded = target.read("repro/bars", "2024-01-03")
    assert seeded.manifest.data_hash == recorded and seeded.frame["px"].to_list() == [10.0, 20.0]
    assert seeded.manifest.environment_hash == written["bars"]["2024-01-03"].environment_hash
    assert store.manifest("bars", "2024-01-03").data_hash != recorded  # production untouched: still the revision


def test_the_same_bytes_rewritten_from_a_revision_are_two_versions_each_reader_follows_its_own(  # type: ignore[no-untyped-def]
        production) -> None:
    """``f`` of a day reads the bars of the day before but its value does not: after the vendor revises
    that day, ``f`` is rewritten with the same bytes from the revision. A signal scored before the
    revision read the delivered bars beneath it; one scored after read the revision."""
    store, written = production
    d3, d4 = DAYS[2], "2024-01-05"
    bars4 = store.write("bars", d4, _bars(d4))

    def f_of(day: str) -> pl.DataFrame:
        return _bars(day).with_columns((pl.col("px") * 2).alias("f")).select("day", "name", "f")

    f4 = store.write("f", d4, f_of(d4), WriteFacts(upstream=(_ref(bars4), _ref(written["bars"][d3]))))
    f3 = written["f"][d3]
    early = store.write("sig", d4, f_of(d4).with_columns(pl.lit(1.0).alias("s")),
                        WriteFacts(upstream=(_ref(f3), _ref(f4))))
    revised = store.write("bars", d3, _bars(d3, bump=0.5))  # the vendor revises the day before
    f4_again = store.write("f", d4, f_of(d4), WriteFacts(upstream=(_ref(bars4), _ref(revised))))
    assert f4_again.data_hash == f4.data_hash  # the same bytes, from other inputs
    late = store.write("sig", "2024-01-08", f_of(d4).with_columns(pl.lit(2.0).alias("s")),
                       WriteFacts(upstream=(_ref(f4_again),)))

    lineage = recorded_lineage(store, "train", None, written["train"].data_hash,
                               also=[(m.asset_key, m.partition, m.data_hash) for m in (early, late)])
    assert lineage.complete
    twins = [p for p in lineage.partitions if p.key == "f" and p.partition == d4]
    assert len(twins) == 2 and twins[0].provenance != twins[1].provenance
    assert {u.data_hash for p in twins for u in p.upstream if u.partition == d3} == {
        written["bars"][d3].data_hash, revised.data_hash}
    assert lineage.partitions_of("f") == (*DAYS, d4)  # each partition named once

    served = [p for p in lineage.partitions if p.key == "sig"]
    plan = plan_passes(lineage, served)
    assert plan.unplaceable == ()  # the early day read one version of everything, as recorded
    first, second = plan.passes
    assert [d.partition for d in first.live_days] == [d4]  # with the training set: it read the delivered bars
    assert [d.partition for d in second.live_days] == ["2024-01-08"]
    assert [(p.key, p.partition, p.data_hash) for p in second.seeded] == [("bars", d3, revised.data_hash)]
    assert second.rebuilt == ()  # f of d4 is the same bytes: the first pass's head already


def test_a_collected_object_is_named_and_nothing_is_seeded(production, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, written = production
    gone = written["bars"]["2024-01-02"]
    (Path(store.base) / object_rel(gone.data_hash)).unlink()
    lineage = recorded_lineage(store, "train", None, written["train"].data_hash)
    assert not lineage.complete
    assert [(v.key, v.partition, v.data_hash) for v in lineage.lost] == [("bars", "2024-01-02", gone.data_hash)]
    target = PinnedStore(tmp_path / "repro")
    with pytest.raises(ReproductionFailed, match=r"bars partition 2024-01-02 \(xxh3_128:[0-9a-f]+\)"):
        seed_sources(store, target, lineage)
    assert not (tmp_path / "repro").exists() or not any((tmp_path / "repro").rglob("*.parquet"))


def test_an_unknown_root_is_lost_and_seeding_into_production_is_refused(production) -> None:  # type: ignore[no-untyped-def]
    store, written = production
    lineage = recorded_lineage(store, "train", None, "xxh3_128:" + "0" * 32)
    assert lineage.root is None and len(lineage.lost) == 1 and "no stored version" in lineage.lost[0].reason
    good = recorded_lineage(store, "train", None, written["train"].data_hash)
    with pytest.raises(ReproductionFailed, match="is the production store"):
        seed_sources(store, PinnedStore(store.base), good)


def test_comparison_names_node_partition_column_and_row(production, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store, written = production
    lineage = recorded_lineage(store, "train", None, written["train"].data_hash)
    repro = PinnedStore(tmp_path / "repro")
    for d in DAYS:
        frame = store.read("f", d).frame
        if d == "2024-01-03":
            frame = frame.with_columns(pl.when(pl.col("name") == "B").then(pl.col("f") + 1e-12)
                                       .otherwise(pl.col("f")).alias("f"))
        repro.write("f", d, frame)
    results = compare_partitions(store, repro, [p for p in lineage.partitions if p.key == "f"], keys=KEYS)
    assert [r.equal for r in results] == [True, False, True]
    bad = results[1]
    assert bad.subject == "f partition 2024-01-03" and bad.kind == ComparisonKind.PARTITION
    assert "column 'f' at row 1" in bad.difference and "name='B'" in bad.difference
    assert "40.0" in bad.difference and "40.000000000001" in bad.difference

    missing = compare_partition(store, repro, next(p for p in lineage.partitions if p.key == "bars"), keys=KEYS)
    assert not missing.equal and missing.reproduced is None and missing.difference.startswith("not reproduced")


@pytest.mark.parametrize(("change", "expected"), [
    (lambda f: f.drop("f"), "columns differ: missing ['f']"),
    (lambda f: f.with_columns(pl.col("f").cast(pl.Float32)), "column 'f': type Float64 recorded, Float32"),
    (lambda f: f.head(1), "2 rows recorded, 1 reproduced"),
    (lambda f: f.select("f", "day", "name"), "column order differs"),
])
def test_first_difference_in_shape(change, expected: str) -> None:  # type: ignore[no-untyped-def]
    frame = pl.DataFrame({"day": [1, 1], "name": ["A", "B"], "f": [1.0, 2.0]})
    assert expected in first_difference(frame, change(frame), KEYS)


def test_first_difference_treats_nulls_and_nans_as_equal_and_aligns_rows_by_keys() -> None:
    a = pl.DataFrame({"day": [1, 1, 2], "name": ["A", "B", "A"], "f": [math.nan, None, 3.0]})
    assert first_difference(a, a.reverse(), KEYS) is None
    assert first_difference(a, a.reverse(), None) is not None  # by position the rows differ
    b = a.with_columns(pl.Series("f", [math.nan, 0.0, 3.0]))
    assert "name='B'" in first_difference(a, b, KEYS)


def test_bytes_compare_and_the_certificate_names_the_first_difference() -> None:
    same = compare_bytes(ComparisonKind.MODEL, "model sha256", "sha256:aa", "sha256:aa")
    other = compare_bytes(ComparisonKind.MODEL, "model sha256", "sha256:aa", "sha256:bb")
    none = compare_bytes(ComparisonKind.SIGNALS, "signals", "xxh3_128:1", None)
    assert same.equal and not other.equal and not none.equal
    ok = certificate_of([same], model="m", version="3", commit="abc")
    assert ok.bit_exact and ok.exit_code == 0 and "bit-exactly" in ok.verdict()
    bad = certificate_of([same, other, none], model="m", version="3", commit="abc")
    assert not bad.bit_exact and bad.exit_code == 1 and bad.first_difference is other
    assert "first difference in model model sha256: recorded sha256:aa, reproduced sha256:bb" in bad.verdict()
    data = json.loads(bad.to_json())
    assert data["bit_exact"] is False and data["counts"] == {"model": {"equal": 1, "compared": 2},
                                                              "signals": {"equal": 0, "compared": 1}}
    assert "| model | model sha256 | `sha256:aa` | `sha256:bb` |" in bad.summary()
    assert not certificate_of([], model="m", version="3", commit=None).bit_exact  # nothing compared proves nothing


def test_the_certificate_is_stored_beside_the_version_and_tagged(tmp_path: Path, dagster_instance: dg.DagsterInstance,
                                                                  mlflow_template: Path) -> None:
    from ml_platform_tests.promotion.conftest import MODEL, make_project

    project = make_project(tmp_path, dagster_instance, mlflow_template=mlflow_template)
    version = project.register()
    cert = certificate_of([compare_bytes(ComparisonKind.MODEL, "model sha256", "sha256:aa", "sha256:aa")],
                          model=MODEL, version=version, commit=None, facts={"workdir": str(tmp_path)})
    stored = store_certificate(project.registry, cert, stamp="20240101T000000Z")
    client = MlflowClient(tracking_uri=project.registry.tracking_uri, registry_uri=project.registry.registry_uri)
    tags = client.get_model_version(MODEL, version).tags
    assert tags[CERTIFICATE_TAG] == f"{stored.json_ref} {stored.sha256}" and tags[VERDICT_TAG] == "true"
    run_id = client.get_model_version(MODEL, version).run_id
    local = client.download_artifacts(run_id, "reproduction/20240101T000000Z/certificate.json", str(tmp_path / "dl"))
    assert json.loads(Path(local).read_text())["bit_exact"] is True


def test_a_record_lacking_what_reproduction_needs_is_refused_by_name(tmp_path: Path,
                                                                      dagster_instance: dg.DagsterInstance,
                                                                      mlflow_template: Path) -> None:
    """Older registrations: no git commit, a dirty tree without its diff, no training parameters, no lock hash."""
    import dataclasses

    from ml_platform.errors import ModelNotFound
    from ml_platform.reproduce.record import ReproductionRecord
    from ml_platform_tests.promotion.conftest import MODEL, make_project

    project = make_project(tmp_path, dagster_instance, mlflow_template=mlflow_template)
    registry = project.registry
    first = project.register()  # registered without a commit
    with pytest.raises(ReproductionFailed, match=f"'{MODEL}' version {first} records no git commit"):
        ReproductionRecord.from_registry(registry, MODEL, first)
    model, contract = registry.load_model(MODEL, first), registry.load_contract(MODEL, first)

    def register(params: dict[str, object], diff: bytes | None = None, **changes: object) -> str:
        changed = dataclasses.replace(contract, model_version=None, **changes)  # type: ignore[arg-type]
        return registry.register(model_name=MODEL, model=model, contract=changed, params=params, metrics={},
                                 code_snapshot={"train_rows": "def train_rows(): ..."}, git_diff=diff).version

    from ml_platform.registry import entities
    commit = "a" * 40
    dirty = register({}, b"diff --git a/x b/x\n", git_commit=commit, git_dirty=True)
    # registered before diffs were stored: dirty, without the diff's tag
    MlflowClient(tracking_uri=registry.tracking_uri, registry_uri=registry.registry_uri).delete_model_version_tag(
        MODEL, dirty, entities.GIT_DIFF_SHA256_TAG)
    with pytest.raises(ReproductionFailed, match=r"uncommitted changes at aaaaaaaaaaaa but records no diff of them "
                                                 r"\(registered by an older ml_platform\)"):
        ReproductionRecord.from_registry(registry, MODEL, dirty)
    no_params = register({"seed": 0}, git_commit=commit)
    with pytest.raises(ReproductionFailed,
                       match=r"records no training parameter\(s\) \['validation_fraction', 'embargo_days'\] "
                             r"\(an older registration\)"):
        ReproductionRecord.from_registry(registry, MODEL, no_params)
    from ml_platform.environment import EnvironmentLock

    no_lock = {**contract.environment_lock, "uv_lock_hash": None}
    unlocked = register({"seed": 0, "validation_fraction": 0.25, "embargo_days": 1}, git_commit=commit,
                        environment_lock=no_lock, environment_hash=EnvironmentLock.from_dict(no_lock).hash)
    with pytest.raises(ReproductionFailed, match="records no uv.lock hash"):
        ReproductionRecord.from_registry(registry, MODEL, unlocked)
    complete = register({"seed": 7, "validation_fraction": 0.25, "embargo_days": 1}, git_commit=commit)
    record = ReproductionRecord.from_registry(registry, MODEL, complete)
    assert record.commit == commit and record.training_config["seed"] == 7 and record.git_diff is None
    with pytest.raises(ModelNotFound):
        ReproductionRecord.from_registry(registry, MODEL, "99")
    with pytest.raises(ModelNotFound):
        ReproductionRecord.from_registry(registry, "no_such_model", "1")
