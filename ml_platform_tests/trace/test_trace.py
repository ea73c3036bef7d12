"""``trace_signal`` and ``ml-platform trace`` on a real project (team_b, not the example), real Dagster and MLflow.

One module-scoped history, built with real materializations on one Dagster instance and one MLflow store:

* version 1 is trained and made champion (the champion shortcut of ml_platform.testing); live signals for days A;
* version 2 is trained with another validation split and promoted by alice, approved by bob, with a rationale and a
  report stored beside it in MLflow; live signals for days B, and days A **rematerialized** under it;
* a rollback by carol returns to version 1; live signals for days C;
* a real edit of team_b's feature code is committed and the features of A..C are rematerialized.

Every trace must still name the model, ledger entry, features and hashes of its own day.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from xml.etree import ElementTree

import dagster as dg
import pytest
from click.testing import CliRunner

from ml_platform import (
    DataWindow,
    Lifecycle,
    ModelNotFound,
    ModelRegistry,
    NoChampionInForce,
    PinnedStore,
    Settings,
    SignalNotFound,
    TraceBroken,
    trace_signal,
)
from ml_platform.champions.service import ChampionService
from ml_platform.cli import main
from ml_platform.environment import BuildProvenance
from ml_platform.io.layout import object_rel
from ml_platform.registry.boundary import sha256_of
from ml_platform.registry.run_files import artifact_ref, log_files
from ml_platform.testing import champion_shortcut
from ml_platform.trace.report import (
    lineage_svg,
    render_html,
    render_markdown,
    trace_summary,
    write_trace_report,
)
from ml_platform_tests.harness.mlflow_template import seed_tracking_uri
from ml_platform_tests.lifecycles.team_b import TEAM_B_GROUP, WHO, TeamBFeatures, git, imported_team_b

FEATURES = DataWindow.parse("2021-02-01..2021-06-30")  # inside the shared team_b_features' window
TRAINING_1 = DataWindow.parse("2021-02-01..2021-05-28")
LIVE_A = DataWindow.parse("2021-06-01..2021-06-04")
LIVE_B = DataWindow.parse("2021-06-07..2021-06-11")
LIVE_C = DataWindow.parse("2021-06-14..2021-06-18")
DAY_A, DAY_B, DAY_C = "2021-06-02", "2021-06-09", "2021-06-16"
TICKER = "ALPH"
SIGNALS = "team_b/live_signals"
#: the digest of the image the lifecycle runs in (ML_PLATFORM_IMAGE_DIGEST), recorded with what it writes
IMAGE_DIGEST = "sha256:" + "5e" * 32
RATIONALE = "# Promote v2\n\nShorter training window; validation Sharpe within tolerance. Approved by bob.\n"

# an end-to-end lifecycle; shares team_b_features with test_team_project.py on one xdist worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(TEAM_B_GROUP)]


@dataclass(frozen=True)
class History:
    settings: Settings
    store: PinnedStore
    registry: ModelRegistry
    model: str
    v1: str
    v2: str
    #: (key, partition) -> data hash of the head, as it was when day A's signal was first written
    day_a: dict[tuple[str, str | None], str]
    day_a_graph_hash: str
    day_a_signal_hash: str
    rationale_ref: str
    edited_graph_hash: str


def _version(result: dg.ExecuteInProcessResult) -> str:
    return str(result.asset_materializations_for_node("team_b__trained_model")[-1].metadata[
        "ml_platform/model_version"].value)


@pytest.fixture(scope="module")
def history(team_b_features: TeamBFeatures, tmp_path_factory: pytest.TempPathFactory,
            mlflow_template: Path) -> Iterator[History]:
    """The history, built on a copy of the session's team_b features (its own checkout at commit A and home)."""
    assert team_b_features.window.start <= FEATURES.start and FEATURES.end <= team_b_features.window.end
    copy = team_b_features.copy(tmp_path_factory.mktemp("team_b_trace"))
    with imported_team_b(copy.checkout), dg.instance_for_test(temp_dir=str(copy.dagster_home)) as instance:
        yield _build(copy.checkout, WHO, instance, copy.home, mlflow_template)


def _build(root: Path, who: tuple[str, ...], instance: dg.DagsterInstance, home: Path,
           mlflow_template: Path) -> History:
    from team_b.definitions import MODEL_NAME, PREFIX, team_definitions
    from team_b.features import build_graph

    settings = replace(Settings.local(home / ".ml_platform"), provenance=BuildProvenance(image_digest=IMAGE_DIGEST))
    seed_tracking_uri(mlflow_template, settings.tracking_uri)  # migrated once per session, not here
    graph = build_graph()
    life = Lifecycle(team_definitions(settings, graph), graph, instance, key_prefix=PREFIX)
    store = PinnedStore(settings.storage)
    registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
    # the features over FEATURES were materialized by the shared team_b_features, from this same commit
    life.training_set(TRAINING_1)
    v1 = _version(life.train(trained_by="team-b-ci"))
    champion_shortcut(registry, MODEL_NAME, v1, actor="team-b-ci", reason="first champion")
    life.live(LIVE_A)
    day_a = {(m.asset_key, m.partition): m.data_hash for key in ("quotes", "ret_1", "momentum", "volatility",
                                                                  "model_inputs", "live_signals")
             for m in store.manifests(f"team_b/{key}")}

    v2 = _version(life.train(trained_by="team-b-ci", validation_fraction=0.2))  # another model on the same set
    run_id = registry.model_version(MODEL_NAME, v2).run_id
    report = json.dumps({"challenger": v2, "sharpe": 1.1}).encode()
    log_files(registry, run_id, "promotion/trace", {"rationale.md": RATIONALE.encode(), "report.json": report})
    service = ChampionService.open(registry)
    try:
        rationale_ref = artifact_ref(run_id, "promotion/trace/rationale.md")
        service.promote(MODEL_NAME, v2, actor="alice", approver="bob", reason="v2 validated better",
                        report_ref=artifact_ref(run_id, "promotion/trace/report.json"),
                        report_sha256=sha256_of(report), rationale_ref=rationale_ref,
                        rationale_sha256=sha256_of(RATIONALE.encode()))
        life.live(LIVE_B)
        life.live(LIVE_A)  # a later rematerialization of days A, under the new champion
        service.rollback(MODEL_NAME, to=v1, reason="desk prefers v1", actor="carol")
        life.live(LIVE_C)
    finally:
        service.close()

    features_py = root / "team_b" / "features.py"  # a real code change, committed, then rematerialized
    features_py.write_text(features_py.read_text().replace("MOMENTUM_SESSIONS = 10", "MOMENTUM_SESSIONS = 12"))
    git(root, *who, "commit", "-qam", "momentum 12")
    edited = importlib.reload(sys.modules["team_b.features"]).build_graph()
    edited_life = Lifecycle(team_definitions(settings, edited), edited, instance, key_prefix=PREFIX)
    edited_life.features(DataWindow(LIVE_A.start, LIVE_C.end), targets=["model_inputs"])
    return History(settings, store, registry, MODEL_NAME, v1, v2, day_a, graph["model_inputs"].graph_hash,
                   day_a[(SIGNALS, DAY_A)], rationale_ref, edited["model_inputs"].graph_hash)


def _trace(h: History, day: str, **kwargs):  # type: ignore[no-untyped-def]
    return trace_signal(kwargs.pop("target", h.model), day, kwargs.pop("instrument", TICKER), store=h.store,
                        registry=h.registry, **kwargs)


def test_a_signal_from_before_a_promotion_rollback_and_code_change_names_its_own_day(history: History) -> None:
    h = history
    # since then: days A were rematerialized by v2 and the feature code changed; the heads moved
    assert h.store.manifest(SIGNALS, DAY_A).data_hash != h.day_a_signal_hash
    assert h.store.manifest("team_b/model_inputs", DAY_A).graph_hash == h.edited_graph_hash != h.day_a_graph_hash

    record = _trace(h, DAY_A)
    assert (record.signal.model_name, record.signal.model_version) == (h.model, h.v1)
    assert record.signal_version.data_hash == h.day_a_signal_hash and len(record.other_versions) == 1
    assert record.model.version == h.v1 and record.model.training_window.split("..")[0] >= str(TRAINING_1.start)
    assert (record.champion.seq, record.champion.kind, record.champion.actor) == (1, "promotion", "team-b-ci")
    assert record.champion.in_force_until is not None and record.champion.chain_verified
    assert record.champion.report is None and record.champion.rationale is None  # the shortcut links none
    # the features and sources of its own day, by the hashes recorded then, not the edited code's
    mi = record.features[0]
    assert (mi.role, mi.key, mi.partition) == ("model_input", "team_b/model_inputs", DAY_A)
    assert mi.data_hash == h.day_a[("team_b/model_inputs", DAY_A)] and mi.graph_hash == h.day_a_graph_hash
    assert mi.graph_hash == record.model.feature_graph_hash
    for version in (*record.features, *record.sources):
        assert version.data_hash == h.day_a[(version.key, version.partition)], version.label
        assert Path(version.object_path).is_file() and version.code_hash and version.graph_hash
    assert {s.key for s in record.sources} == {"team_b/quotes"} and all(s.role == "source" for s in record.sources)
    assert {f.key for f in record.features} == {"team_b/model_inputs", "team_b/momentum", "team_b/volatility",
                                                "team_b/ret_1"}
    # the feature row the model scored: every input column of the contract, for that ticker and day
    values = dict(record.feature_row.values)
    assert list(values) == list(record.model.input_columns) == ["session", "ticker", "mom", "vol"]
    assert values["ticker"] == TICKER and str(values["session"]) == DAY_A and isinstance(values["mom"], float)
    assert record.feature_row.data_hash == mi.data_hash
    # training facts from the contract
    m = record.model
    assert m.git_commit and not m.git_dirty and m.environment_hash.startswith("sha256:") and m.uv_lock_hash
    assert m.seeds["training"] == 0 and m.training_set_data_hash.startswith("xxh3_128:")
    assert record.training_set is not None and record.training_set.data_hash == m.training_set_data_hash
    # the image digest, recorded beside the commit by the writes of this lifecycle (not by the shared features')
    assert record.signal_version.image_digest == IMAGE_DIGEST and record.training_set.image_digest == IMAGE_DIGEST
    assert mi.image_digest is None and f"image {IMAGE_DIGEST}" in "\n".join(trace_summary(record))
    assert f"`{IMAGE_DIGEST}`" in render_markdown(record)
    tags = h.registry.client.get_model_version(h.model, record.model.version).tags
    assert tags["ml_platform.image_digest"] == IMAGE_DIGEST and tags["ml_platform.git_commit"] == m.git_commit
    assert any("other recorded version" in n for n in record.notes)


def test_a_signal_after_the_promotion_names_promoter_approver_rationale_and_report(history: History) -> None:
    record = _trace(history, DAY_B)
    c = record.champion
    assert record.model.version == history.v2 and (c.seq, c.kind, c.actor, c.approver) == (2, "promotion", "alice",
                                                                                          "bob")
    assert c.reason == "v2 validated better" and c.from_version == history.v1
    assert c.rationale is not None and c.rationale.verified and c.rationale.text == RATIONALE
    assert c.report is not None and c.report.verified and c.report.ref.endswith("report.json")
    assert record.other_versions == ()


def test_a_signal_after_the_rollback_names_the_rollback_entry(history: History) -> None:
    record = _trace(history, DAY_C)
    c = record.champion
    assert record.model.version == history.v1
    assert (c.seq, c.kind, c.actor, c.reason, c.from_version) == (3, "rollback", "carol", "desk prefers v1",
                                                                   history.v2)
    assert c.in_force_until is None  # still the champion of record


def test_a_later_version_of_the_day_is_traced_only_when_asked_for(history: History) -> None:
    first = _trace(history, DAY_A)
    (written, later_hash), = first.other_versions
    later = _trace(history, DAY_A, data_hash=later_hash)
    assert later.model.version == history.v2 and later.champion.seq == 2
    as_of = _trace(history, DAY_A, as_of=dt.datetime.fromisoformat(written) + dt.timedelta(seconds=1))
    assert as_of.signal_version.data_hash == later_hash
    by_key = _trace(history, DAY_A, target=SIGNALS)
    assert by_key.signal_version.data_hash == history.day_a_signal_hash and by_key.model.version == history.v1
    with pytest.raises(SignalNotFound, match="had not been written yet"):
        _trace(history, DAY_A, as_of=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize("day", [DAY_A, DAY_B])
def test_recompute_equals_the_stored_signal_bit_for_bit(history: History, day: str) -> None:
    record = _trace(history, day, recompute=True)
    r = record.recompute
    assert r is not None and r.equal, r
    assert r.score.hex() == record.signal.score.hex() and r.weight.hex() == record.signal.weight.hex()  # type: ignore[union-attr]
    assert r.partition_data_hash == record.signal_version.data_hash
    assert r.reproduce.startswith(f"ml-platform reproduce {history.model} {record.model.version}")


def test_a_tampered_or_missing_object_on_the_path_is_named(history: History) -> None:
    h = history
    momentum = h.day_a[("team_b/momentum", DAY_A)]
    path = Path(h.store.base) / object_rel(momentum)
    kept = path.read_bytes()
    try:
        path.write_bytes(kept[:-40] + bytes(40))
        with pytest.raises(TraceBroken) as caught:
            _trace(h, DAY_A)
        message = str(caught.value)
        assert f"team_b/momentum partition {DAY_A}" in message and momentum in message and str(path) in message
        assert [lost[:2] for lost in caught.value.lost] == [(f"team_b/momentum partition {DAY_A}", momentum)]
    finally:
        path.write_bytes(kept)
    source = h.day_a[("team_b/quotes", DAY_A)]
    source_path = Path(h.store.base) / object_rel(source)
    kept = source_path.read_bytes()
    try:
        source_path.unlink()
        with pytest.raises(TraceBroken, match=rf"team_b/quotes partition {DAY_A} \(data hash {source}\).*missing"):
            _trace(h, DAY_A)
    finally:
        source_path.write_bytes(kept)
    rationale = Path(h.registry.model_version(h.model, h.v2).source.removeprefix("file://")).parent / \
        "promotion" / "trace" / "rationale.md"
    kept = rationale.read_bytes()
    try:
        rationale.write_bytes(kept + b"edited later\n")
        with pytest.raises(TraceBroken, match=r"rationale of ledger entry 2.*altered after the promotion"):
            _trace(h, DAY_B)
    finally:
        rationale.write_bytes(kept)
    assert _trace(h, DAY_A).signal_version.data_hash == h.day_a_signal_hash  # restored: traces again


def test_a_manifest_on_the_path_whose_fields_were_edited_is_refused(history: History) -> None:
    """Forged provenance (a feature version's rows and code hash, in every copy of its manifest) is never reported."""
    h = history
    momentum = h.day_a[("team_b/momentum", DAY_A)]
    folder = Path(h.store.base) / "refs" / "team_b" / "momentum" / f"@{DAY_A}"
    copies = [path for path in folder.rglob("*.json") if json.loads(path.read_text())["data_hash"] == momentum]
    kept = {path: path.read_text() for path in copies}
    assert copies
    try:
        for path, text in kept.items():
            record = json.loads(text)
            record["rows"] -= 1
            record["code_hash"] = "sha256:" + "0" * 64
            path.write_text(json.dumps(record, indent=2, sort_keys=True))
        with pytest.raises(TraceBroken, match=rf"team_b/momentum partition {DAY_A} \(data hash {momentum}\): .*"
                                              r"its fields hash to sha256:\w+, but it records manifest_hash"):
            _trace(h, DAY_A)
    finally:
        for path, text in kept.items():
            path.write_text(text)
    assert _trace(h, DAY_A).signal_version.data_hash == h.day_a_signal_hash  # restored: traces again


def test_missing_signals_and_unknown_models_are_clear_errors(history: History) -> None:
    h = history
    with pytest.raises(SignalNotFound, match=r"no row for instrument NOPE on 2021-06-02; its instruments are: ALPH"):
        _trace(h, DAY_A, instrument="NOPE")
    with pytest.raises(SignalNotFound, match=r"2021-06-05.*not a trading day.*2021-06-04 and 2021-06-07"):
        _trace(h, "2021-06-05")  # a Saturday
    with pytest.raises(SignalNotFound, match=r"no live signal for 2021-06-25 yet: the latest stored .* 2021-06-18"):
        _trace(h, "2021-06-25")
    with pytest.raises(NoChampionInForce, match=r"before any champion.*begin on 2021-06-01.*ledger entry 1"):
        _trace(h, "2021-05-03")
    with pytest.raises(ModelNotFound, match=r"'no_such_model' is neither a live-signal asset.*team_b/live_signals.*"
                                            r"known models: \['team_b_ridge'\]"):
        _trace(h, DAY_A, target="no_such_model")


def test_the_cli_prints_json_and_writes_markdown_and_html_reports(history: History, tmp_path: Path) -> None:
    h = history
    where = ["--base-dir", h.settings.storage, "--tracking-uri", h.settings.tracking_uri]
    done = CliRunner().invoke(main, ["trace", h.model, "--date", DAY_B, "--instrument", TICKER, "--json",
                                     "--recompute", "--out", str(tmp_path / "ticket"), *where])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["schema_version"] == "ml_platform.trace/v1" and data["model"]["version"] == h.v2
    assert data["champion"]["actor"] == "alice" and data["recompute"]["equal"] is True
    assert data["signal"]["weight_hex"] == float.fromhex(data["signal"]["weight_hex"]).hex()
    assert data["lineage"]["edges"] and "team_b/quotes" in data["lineage"]["nodes"]
    markdown = (tmp_path / "ticket" / "trace.md").read_text()
    for heading in ("## Signal", "## Champion of record at the time", "## Model version and deploy contract",
                    "## Feature row scored", "```mermaid", "## Sources (market data as delivered)",
                    "## Recomputation in this process"):
        assert heading in markdown
    assert "> # Promote v2" in markdown and "ml-platform reproduce team_b_ridge" in markdown
    page = (tmp_path / "ticket" / "trace.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "<script" not in page
    assert json.loads((tmp_path / "ticket" / "trace.json").read_text())["day"] == DAY_B

    text = CliRunner().invoke(main, ["trace", SIGNALS, "--date", DAY_C, "--instrument", TICKER, *where])
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith(f"# Trace of the {h.model} v{h.v1} signal for {TICKER} on {DAY_C}")
    bad = CliRunner().invoke(main, ["trace", h.model, "--date", "2021-05-03", "--instrument", TICKER, *where])
    assert bad.exit_code == 2 and "[NO_CHAMPION_IN_FORCE]" in bad.output


def test_reports_render_from_the_record_alone(history: History, tmp_path: Path) -> None:
    record = _trace(history, DAY_A)
    markdown, page = render_markdown(record), render_html(record)
    assert record.signal_version.data_hash in markdown and record.signal_version.data_hash in page
    assert "team-b-ci" in markdown and "first champion" in markdown
    svg = ElementTree.fromstring(lineage_svg(record))  # well-formed: one box per node, one arrow per edge
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert set(record.nodes()) <= set(texts) and f"model {history.model} v{history.v1}" in texts
    assert len(list(svg.iter("{http://www.w3.org/2000/svg}line"))) == len(record.edges()) + 3
    files = write_trace_report(record, tmp_path / "out")
    assert sorted(p.name for p in files.values()) == ["trace.html", "trace.json", "trace.md"]
