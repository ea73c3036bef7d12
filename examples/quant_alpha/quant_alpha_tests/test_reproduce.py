"""Reproduce the example's model bit-exactly from its registry record, by a real Dagster backfill.

"Production" trains the example's ridge from a fresh clone of this repository at commit A, with
uncommitted changes (a comment in the feature code, an untracked file: the diff is stored at
registration), then serves it as champion over live days after its training window. The clone then
moves on to commit B: those changes committed, an ancestor feature's code changed and a library
downgraded in ``uv.lock``. ``reproduce_version`` checks A out into a work directory with the recorded diff
applied, syncs a virtual environment from A's lock, runs it as the code location of an isolated Dagster
(webserver + daemon), seeds the recorded market data as delivered, backfills every other recorded
partition through the daemon, retrains, scores the live days again, and certifies. Production's store,
registry versions and Dagster instance are compared before and after.

Between the live days the vendor re-delivers the bars of the training window's last day: the days
served after it read the revised bars through their lookbacks, so they are reproduced in a second pass
(the revision seeded, only what differs backfilled again) and must match too.

The clone at A and its features are the session's shared ``example_features`` (also under
``test_lifecycle.py``); production goes on from a copy of them: its own clone and its own home.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from mlflow import MlflowClient
from quant_alpha.project import TRAINER

from ml_platform import DataWindow
from ml_platform.errors import ConfigurationError, ReproductionFailed
from ml_platform.reproduce.certificate import CERTIFICATE_TAG, VERDICT_TAG
from ml_platform.reproduce.service import REPRODUCES_TAG, reproduce_version
from ml_platform.reproduce.signals import served_signals
from ml_platform.testing import champion_shortcut
from quant_alpha_tests.example_features import EXAMPLE_GROUP, ExampleFeatures, clone_graph
from quant_alpha_tests.lifecycle_fixtures import Deployment, TrainedVersion

# shares example_features with test_lifecycle.py on one xdist worker
pytestmark = [pytest.mark.slow, pytest.mark.daemon, pytest.mark.xdist_group(EXAMPLE_GROUP)]

FEATURES = DataWindow.parse("2011-07-01..2011-12-09")
TRAINING = DataWindow.parse("2011-07-01..2011-11-30")
LIVE = DataWindow.parse("2011-12-01..2011-12-09")
BEFORE_REVISION = DataWindow.parse("2011-12-01..2011-12-05")
AFTER_REVISION = DataWindow.parse("2011-12-06..2011-12-09")
REVISED_DAY = "2011-11-30"  # in the training window, and in the lookbacks of the days after the revision
_GIT = ("git", "-c", "user.name=repro test", "-c", "user.email=repro@test")


@dataclass(frozen=True)
class Production:
    dep: Deployment
    trained: TrainedVersion
    clone: Path
    tmp: Path


def _heads(dep: Deployment) -> dict[tuple[str, str | None], str]:
    return {(m.asset_key, m.partition): m.data_hash for m in dep.store.manifests()}


def _vendor_revision(dep: Deployment, day: str) -> None:
    """The vendor re-delivers one instrument's bars of ``day`` (a newer version beside the delivered one),
    and the features of the days after the revision are recomputed over their lookbacks from it."""
    from ml_platform import WriteFacts

    delivered = dep.store.read("market_bars", day)
    first = delivered.frame["instrument"][0]
    revised = delivered.frame.with_columns(
        [pl.when(pl.col("instrument") == first).then(pl.col(c) * 1.01).otherwise(pl.col(c)).alias(c)
         for c in ("close", "adj_close")])
    m = delivered.manifest
    dep.store.write("market_bars", day, revised, WriteFacts(
        code_hash=m.code_hash, graph_hash=m.graph_hash, seeds=m.seeds, window=m.window,
        params={**m.params, "vendor_revision": f"market_bars_{day}.csv"}))
    for span, keys in dep.life.plan(AFTER_REVISION, targets=["feature_matrix"]):
        computed = [k for k in keys if k != "market_bars"]  # the source keeps the delivered versions
        if computed:
            dep.life.materialize(computed, span)


@pytest.fixture(scope="module")
def production(example_features: ExampleFeatures, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Production]:
    """Production goes on from a copy of the session's example features: its own clone (the same commit A and
    uncommitted changes, from which those features were computed) and its own home."""
    assert example_features.window.start <= FEATURES.start and FEATURES.end <= example_features.window.end
    tmp = tmp_path_factory.mktemp("repro")
    own = example_features.copy(tmp, clone=True)
    clone = own.clone
    features = clone / "examples" / "quant_alpha" / "quant_alpha" / "features.py"
    assert "# trained from a dirty tree\ndef momentum(" in features.read_text() and (clone / "NOTES.md").is_file()
    with dg.instance_for_test(temp_dir=str(own.dagster_home)) as instance:
        dep = Deployment.create(own.settings, instance, clone_graph(clone), TRAINER)
        # the features over FEATURES: materialized by the shared example_features, from this same tree
        dep.life.training_set(TRAINING)
        trained = dep.train(validation_fraction=0.25, trained_by="analyst@research")
        champion_shortcut(dep.registry, trained.model_name, trained.version)
        dep.life.live(BEFORE_REVISION, model_name=trained.model_name)
        _vendor_revision(dep, REVISED_DAY)
        dep.life.live(AFTER_REVISION, model_name=trained.model_name)
        # commit B: the work committed, an ancestor feature's code changed, a library downgraded in the lock
        source = features.read_text()
        assert "VOL_WINDOW = 21" in source
        features.write_text(source.replace("VOL_WINDOW = 21", "VOL_WINDOW = 42"))
        subprocess.run(["uv", "lock", "--upgrade-package", "six==1.16.0"], cwd=clone, check=True, timeout=300,
                       capture_output=True)
        subprocess.run([*_GIT, "add", "--all"], cwd=clone, check=True, timeout=60)
        subprocess.run([*_GIT, "commit", "--quiet", "-m", "B: vol window 42, six 1.16.0"], cwd=clone, check=True,
                       timeout=60)
        yield Production(dep, trained, clone, tmp)


@pytest.mark.timeout(1800)  # the daemon's backfill loop ticks every 30 s, and make test runs it beside the rest
def test_a_model_is_reproduced_bit_exactly_by_a_daemon_backfill_and_certified(production: Production) -> None:
    dep, trained = production.dep, production.trained
    heads, runs = _heads(dep), len(dep.instance.get_runs())
    work = production.tmp / "work"
    lines: list[str] = []
    outcome = reproduce_version(trained.model_name, trained.version, workdir=work, registry=dep.registry,
                                store=dep.store, repo=production.clone, say=lines.append)
    cert = outcome.certificate
    assert cert.bit_exact, cert.summary()
    counts = cert.counts()
    assert counts["model"] == (1, 1) and counts["training_set"] == (1, 1) and counts["environment"] == (1, 1)
    assert counts["partition"][0] == counts["partition"][1] > 500
    # every live day it served, scored again: the days after the revision in a pass of their own
    assert counts["signals"][0] == counts["signals"][1] == len(served_signals(dep.store, trained.model_name, trained.version)) >= 5
    assert cert.facts["passes"] == 2 and len(outcome.backfill_ids) == 2, cert.facts
    second = cert.facts["backfills"][1]  # type: ignore[index]
    assert 0 < second["partitions"] < cert.facts["backfills"][0]["partitions"], second  # type: ignore[index]
    assert any("recorded diff of uncommitted changes" in line for line in lines), lines

    # the backfill ran in the work directory's own instance, through the daemon, tagged
    with dg.DagsterInstance.from_config(str(work / "dagster")) as isolated:
        for backfill_id in outcome.backfill_ids:
            backfill = isolated.get_backfill(backfill_id)
            assert backfill is not None and backfill.tags[REPRODUCES_TAG] == f"{trained.model_name}:{trained.version}"
            assert isolated.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))

    # production untouched: the same heads, no new run; the certificate beside the version
    assert _heads(dep) == heads and len(dep.instance.get_runs()) == runs
    client = MlflowClient(tracking_uri=dep.settings.tracking_uri, registry_uri=dep.settings.tracking_uri)
    version = client.get_model_version(trained.model_name, trained.version)
    assert version.tags[VERDICT_TAG] == "true" and version.tags[CERTIFICATE_TAG].startswith("runs:/")
    assert json.loads((work / "certificate.json").read_text())["bit_exact"] is True


def test_bad_input_is_refused_and_writes_nothing(production: Production) -> None:
    dep, trained = production.dep, production.trained
    taken = production.tmp / "taken"
    (taken / "keep.txt").parent.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(ConfigurationError, match="exists and is not empty"):
        reproduce_version(trained.model_name, trained.version, workdir=taken, registry=dep.registry, store=dep.store,
                          repo=production.clone)
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    fresh = production.tmp / "never"
    import tempfile

    # a folder under /tmp: inside no repository, even when the tests themselves run inside a checkout
    with tempfile.TemporaryDirectory(prefix="no_git_") as plain, \
            pytest.raises(ReproductionFailed, match="not inside a git repository"):
        reproduce_version(trained.model_name, trained.version, workdir=fresh, registry=dep.registry,
                          store=dep.store, repo=plain)
    assert not fresh.exists()
    from ml_platform.errors import ModelNotFound

    with pytest.raises(ModelNotFound):
        reproduce_version(trained.model_name, "99", workdir=fresh, registry=dep.registry, store=dep.store,
                          repo=production.clone)
    assert not fresh.exists()


def test_an_altered_stored_partition_is_named_before_anything_starts(production: Production) -> None:
    """Runs last: it damages one recorded object of production (then puts it back)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml_platform.io.layout import object_rel

    dep, trained = production.dep, production.trained
    manifest = dep.store.manifest("momentum", "2011-09-15")
    path = Path(dep.store.base) / object_rel(manifest.data_hash)
    original = path.read_bytes()
    table = pq.read_table(path)
    column = table.column("mom_21d").to_pylist()
    column[0] = (column[0] or 0.0) + 1e-9
    pq.write_table(table.set_column(table.schema.get_field_index("mom_21d"), "mom_21d", pa.array(column)), path)
    work = production.tmp / "altered"
    try:
        with pytest.raises(ReproductionFailed, match=r"momentum partition 2011-09-15 \(xxh3_128:"):
            reproduce_version(trained.model_name, trained.version, workdir=work, registry=dep.registry,
                              store=dep.store, repo=production.clone)
    finally:
        path.write_bytes(original)
    assert not work.exists()
