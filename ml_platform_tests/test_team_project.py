"""A second team's project that is not the example: the library assumes none of the example's choices.

``ml_platform_tests/projects/team_b`` is copied into a git repository of its own, committed, and
imported from there, as a team's checkout would be. It differs from the example in every way the issue
names: business-day partitions, ``session``/``ticker`` keys, the ``team_b`` asset key prefix, a
scikit-learn model, lookbacks stated in partitions, and its own prices file. It goes through
materialize -> train -> register -> promote (shortcut) -> live signals; then a real edit of one of its
feature files is committed and the old champion is refused at load with ``ContractViolation``.

The materialization is the session's shared one (``team_b_features``, also under ``trace/test_trace.py``);
this module goes on from a copy of it: its own checkout at the same commit and its own home.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from ml_platform import (
    ContractViolation,
    DataWindow,
    FrameKeys,
    GraphError,
    Lifecycle,
    ModelRegistry,
    PinnedStore,
    Settings,
    build_definitions,
    build_feature_assets,
)
from ml_platform.cli import main
from ml_platform.testing import champion_shortcut
from ml_platform_tests.lifecycles.team_b import (
    FEATURES,
    TEAM_B_GROUP,
    TeamBFeatures,
    git,
    imported_team_b,
)

TRAINING = DataWindow.parse("2021-02-01..2021-12-31")
LIVE = DataWindow.parse("2022-01-03..2022-01-31")

# heavy (an end-to-end lifecycle); shares team_b_features with trace/test_trace.py on one xdist worker
pytestmark = [pytest.mark.slow, pytest.mark.beside, pytest.mark.xdist_group(TEAM_B_GROUP)]


@dataclass(frozen=True)
class TeamRepo:
    root: Path
    commit: str
    home: Path  # the module's own home: a copy of the shared features' (store, MLflow, Dagster instance)


@pytest.fixture(scope="module")
def team_repo(team_b_features: TeamBFeatures, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamRepo]:
    """team_b in a git repository of its own (a copy of the shared one), importable as ``team_b``."""
    copy = team_b_features.copy(tmp_path_factory.mktemp("team_b_project"))
    with imported_team_b(copy.checkout):
        yield TeamRepo(copy.checkout, git(copy.checkout, "rev-parse", "HEAD"), copy.home)


def test_team_project_runs_the_whole_lifecycle_and_refuses_its_own_code_change(
        team_repo: TeamRepo, team_b_features: TeamBFeatures) -> None:
    with dg.instance_for_test(temp_dir=str(team_repo.home / "dagster")) as dagster_instance:
        _whole_lifecycle(team_repo, team_b_features, dagster_instance)


def _whole_lifecycle(team_repo: TeamRepo, team_b_features: TeamBFeatures,
                     dagster_instance: dg.DagsterInstance) -> None:
    from team_b.definitions import MODEL_NAME, PREFIX, team_definitions
    from team_b.features import build_graph

    settings = Settings.local(team_repo.home / ".ml_platform")
    assert team_repo.commit == team_b_features.commit and team_b_features.window == FEATURES
    graph = build_graph()
    assert graph.keys == FrameKeys("session", ("ticker",))
    assert graph.project_root == str(team_repo.root.resolve())
    defs = team_definitions(settings, graph)
    keys = {key.to_user_string() for a in defs.assets for key in a.keys}
    assert {"team_b/quotes", "team_b/model_inputs", "team_b/trained_model", "team_b/live_signals"} <= keys
    life = Lifecycle(defs, graph, dagster_instance, key_prefix=PREFIX)
    store = PinnedStore(settings.storage)

    # materialize (the shared team_b_features did, over FEATURES, from this same commit): business days only,
    # lookbacks in sessions (a Monday reads the previous Friday)
    monday = store.read("team_b/ret_1", "2021-03-01")
    assert [u.partition for u in monday.manifest.upstream] == ["2021-02-26", "2021-03-01"]
    assert monday.frame.columns == ["session", "ticker", "ret_1"] and monday.frame["ret_1"].null_count() == 0
    assert not any(m.partition == "2021-02-27" for m in store.manifests("team_b/quotes"))  # a Saturday
    # every manifest names the team's own git commit, not the library's
    assert {m.git_commit for m in store.manifests("team_b/model_inputs")} == {team_repo.commit}

    # train and register a scikit-learn model; its contract carries the team's keys and commit
    life.training_set(TRAINING)
    result = life.train(trained_by="team-b-ci")
    meta = result.asset_materializations_for_node("team_b__trained_model")[-1].metadata
    version = meta["ml_platform/model_version"].value
    registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
    contract = registry.load_contract(MODEL_NAME, version)
    assert contract.model_format.startswith("ml_platform.sklearn/")
    assert contract.keys == graph.keys
    assert contract.git_commit == team_repo.commit
    assert contract.feature_graph_hash == graph["model_inputs"].graph_hash
    assert list(contract.feature_schema.names) == ["session", "ticker", "mom", "vol"]
    # the version tags the training set's manifest hash: an anchor the store cannot rewrite alone
    [training_key] = store.keys_holding(contract.training_set_data_hash)
    training_manifest = store.manifest(training_key, None, contract.training_set_data_hash)
    tags = registry.model_version(MODEL_NAME, version).tags
    assert tags["ml_platform.training_set_manifest_hash"] == training_manifest.manifest_hash

    # promote (the shortcut), then live signals through the contract check
    champion_shortcut(registry, MODEL_NAME, version)
    life.live(LIVE)
    live_keys = [m.partition for m in store.manifests("team_b/live_signals")]
    signals, _ = store.read_many("team_b/live_signals", live_keys)
    assert signals["session"].n_unique() == len(live_keys) == 21  # business days of 2022-01-03..2022-01-31
    assert set(signals["model_version"]) == {version}
    assert abs(signals["weight"].abs().sum() - len(live_keys)) < 1e-9  # unit gross exposure per session
    # each day's signals record the one model-input version they scored, by data hash
    for day in live_keys:
        (ref,) = store.manifest("team_b/live_signals", day).upstream
        assert (ref.key, ref.partition) == ("team_b/model_inputs", day)
        assert ref.data_hash == store.manifest("team_b/model_inputs", day).data_hash

    # verify cross-checks the registry: the registered version's training set must still be stored
    cli = ["verify", "--base-dir", settings.storage, "--tracking-uri", settings.tracking_uri, "--no-dagster"]
    checked = CliRunner().invoke(main, cli)
    assert checked.exit_code == 0, checked.output
    assert f"registry:{MODEL_NAME} v{version}" in checked.output and "against the model registry" in checked.output
    training_object = Path(store.object_path(contract.training_set_data_hash))
    kept = training_object.read_bytes()
    training_object.unlink()
    lost = CliRunner().invoke(main, cli)
    assert lost.exit_code == 1 and "this registered version was trained on is not in the store" in lost.output
    training_object.write_bytes(kept)

    # a real edit of the team's feature file, committed: the momentum lookback goes from 10 to 12 sessions
    features_py = team_repo.root / "team_b" / "features.py"
    features_py.write_text(features_py.read_text().replace("MOMENTUM_SESSIONS = 10", "MOMENTUM_SESSIONS = 12"))
    git(team_repo.root, "-c", "user.name=Team B", "-c", "user.email=b@example.com", "commit", "-qam", "mom 12")
    edited_module = importlib.reload(sys.modules["team_b.features"])
    edited = edited_module.build_graph()
    changed = {n.key for n in graph if n.graph_hash != edited[n.key].graph_hash}
    assert changed == {"momentum", "model_inputs", "train_rows"}
    edited_life = Lifecycle(team_definitions(settings, edited), edited, dagster_instance, key_prefix=PREFIX)
    edited_life.features(LIVE, targets=["model_inputs"])
    with pytest.raises(ContractViolation, match="feature graph"):
        edited_life.live(LIVE)


def test_two_projects_share_one_definitions_without_key_collisions(team_repo: TeamRepo, tmp_path: Path) -> None:
    from quant_alpha.features import build_graph as example_graph
    from quant_alpha.project import project_assets
    from team_b.definitions import team_assets

    settings = Settings.local(tmp_path / ".ml_platform")
    defs = build_definitions(settings, assets=[*project_assets(example_graph("sample")), *team_assets()])
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey(["team_b", "trained_model"]) in graph.get_all_asset_keys()
    assert dg.AssetKey(["trained_model"]) in graph.get_all_asset_keys()


def test_two_graphs_without_prefixes_are_refused_naming_the_colliding_keys(team_repo: TeamRepo,
                                                                          tmp_path: Path) -> None:
    from team_b.definitions import CALENDAR
    from team_b.features import build_graph

    graph = build_graph()
    twice = [*build_feature_assets(graph, partitions_def=CALENDAR), *build_feature_assets(graph, partitions_def=CALENDAR)]
    with pytest.raises(GraphError, match=r"asset key collision: .*model_inputs.*key_prefix"):
        build_definitions(Settings.local(tmp_path / ".ml_platform"), assets=twice)
    assert not (tmp_path / ".ml_platform").exists()  # nothing written


def test_dagster_validates_a_workspace_holding_both_projects(team_repo: TeamRepo, tmp_path: Path) -> None:
    """Two code locations, the example and team_b, in one workspace: Dagster's own validation passes."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - python_module:\n      module_name: quant_alpha.definitions\n      attribute: defs\n"
        "      location_name: quant_alpha\n"
        f"  - python_module:\n      module_name: team_b.definitions\n      attribute: defs\n"
        f"      location_name: team_b\n      working_directory: {team_repo.root}\n"
    )
    env = {**os.environ, "DAGSTER_HOME": str(home), "ML_PLATFORM_HOME": str(tmp_path / ".ml_platform")}
    done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w",
                           str(workspace)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful for code location quant_alpha" in done.stderr + done.stdout
    assert "Validation successful for code location team_b" in done.stderr + done.stdout
