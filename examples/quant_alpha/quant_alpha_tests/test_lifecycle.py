"""The lifecycle end to end on real components: Dagster on SQLite, the pinned store, MLflow on SQLite.

The features over a short window of the bundled real sample are the session's shared ``example_features``
(also under ``test_reproduce.py``); this module copies their home once and adds a training set and version 1
of the model (``trained``). The one test that only reads shares that home; every test that runs anything
works on a copy of it of its own (``lifecycle``). Tests that change state (the training set, feature
partitions) still put it back in a ``finally`` and check that they did.

Windows (real AAPL, GOOG, IBM, MSFT prices; FB only lists in 2012-05):

* features 2011-09-01..2011-12-30 (plus the history their lookbacks pull in);
* training set 2011-09-01..2011-11-30 (63 trading days: 45 train, 2 embargo, 16 validation);
* live signals 2011-12-01..2011-12-30 (21 trading days).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from quant_alpha.features import FEATURE_COLUMNS, MODEL_INPUT_NODE
from quant_alpha.market.schema import KEYS

from ml_platform import RidgeTrainer
from ml_platform.errors import ContractViolation, DataError, IntegrityError, ModelNotFound, WindowError
from ml_platform.io.manifest import Manifest
from ml_platform.models.signals import to_signals
from ml_platform.registry import entities
from ml_platform.settings import Settings
from ml_platform.testing import champion_shortcut
from ml_platform.window import DataWindow
from ml_platform_tests.lifecycles.homes import copy_home
from quant_alpha_tests.example_features import EXAMPLE_GROUP, ExampleFeatures
from quant_alpha_tests.lifecycle_fixtures import (
    Deployment,
    TrainedVersion,
    data_hashes,
    last_run,
    materialized_keys,
    read_window,
    run_ids,
    variant_graph,
)

# shares example_features with test_reproduce.py on one xdist worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(EXAMPLE_GROUP)]

FEATURES = DataWindow.parse("2011-09-01..2011-12-30")
TRAINING = DataWindow.parse("2011-09-01..2011-11-30")
LIVE = DataWindow.parse("2011-12-01..2011-12-30")
LIVE_TRADING_DAYS = 21                                   # December 2011: 22 weekdays less Monday the 26th
VARIANT = DataWindow.parse("2011-12-12..2011-12-23")     # where the edited feature code is served
SHORT_TRAINING = DataWindow.parse("2011-11-01..2011-11-14")  # 10 trading days
SHORT_LIVE = DataWindow.parse("2011-12-29..2011-12-30")
MODEL = "alpha_ridge"
MIN_DAYS = 40
TRAINED_BY = "e2e-analyst@research"
TRAIN_CONFIG = {"validation_fraction": 0.25, "trained_by": TRAINED_BY}
TRAINER = RidgeTrainer(alpha=10.0, min_days=MIN_DAYS)


@dataclass(frozen=True)
class TrainedDeployment:
    """A deployment with features, a training set and version 1 registered."""

    dep: Deployment
    first: TrainedVersion
    training_set_hash: str


@dataclass(frozen=True)
class TrainedHome:
    """The module's home once version 1 is registered (its Dagster instance closed): copied, never written."""

    home: Path
    first: TrainedVersion
    training_set_hash: str


@pytest.fixture(scope="module")
def trained(example_features: ExampleFeatures, tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    """Features over FEATURES (the shared ones), the training set over TRAINING and version 1, on SQLite."""
    assert example_features.window.start <= FEATURES.start and FEATURES.end <= example_features.window.end
    home = example_features.copy(tmp_path_factory.mktemp("lifecycle")).home
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        dep = Deployment.create(Settings.local(home / ".ml_platform"), instance, trainer=TRAINER)
        dep.life.training_set(TRAINING)
        first = dep.train(**TRAIN_CONFIG)
        return TrainedHome(home, first, dep.store.manifest("training_set", None).data_hash)


def _opened(home: Path, trained: TrainedHome) -> Iterator[TrainedDeployment]:
    with dg.instance_for_test(temp_dir=str(home / "dagster")) as instance:
        dep = Deployment.create(Settings.local(home / ".ml_platform"), instance, trainer=TRAINER)
        yield TrainedDeployment(dep, trained.first, trained.training_set_hash)


@pytest.fixture
def trained_read_only(trained: TrainedHome) -> Iterator[TrainedDeployment]:
    """The module's trained home itself, for a test that only reads it."""
    yield from _opened(trained.home, trained)


@pytest.fixture
def lifecycle(trained: TrainedHome, tmp_path: Path) -> Iterator[TrainedDeployment]:
    """A copy of the module's trained home of the test's own, for a test that changes state."""
    yield from _opened(copy_home(trained.home, tmp_path / "home"), trained)


def test_training_registers_version_1_with_contract_and_code_snapshot(trained_read_only: TrainedDeployment) -> None:
    lifecycle = trained_read_only
    dep, first = lifecycle.dep, lifecycle.first
    assert (first.model_name, first.version) == (MODEL, "1")
    assert "1" in next(m for m in dep.registry.list_models() if m.name == MODEL).versions

    contract = dep.registry.load_contract(MODEL, "1")
    assert contract.model_version == "1"
    assert contract.feature_graph_hash == dep.graph[MODEL_INPUT_NODE].graph_hash
    training, validation = contract.training_window, contract.validation_window
    assert TRAINING.start <= training.start <= training.end < validation.start
    assert validation.start <= validation.end <= TRAINING.end
    stored_set = dep.store.manifest("training_set", None)
    assert stored_set.window == TRAINING
    assert contract.training_set_data_hash == stored_set.data_hash == lifecycle.training_set_hash
    assert contract.model_sha256 == first.model_sha256 == dep.registry.load_model(MODEL, "1").sha256
    assert list(contract.feature_schema.names) == [*KEYS, *FEATURE_COLUMNS]

    # who trained it: in the contract, on the version and as MLflow's own run user
    assert contract.trained_by == TRAINED_BY
    assert dep.mlflow.get_model_version(MODEL, "1").tags[entities.TRAINED_BY_TAG] == TRAINED_BY
    run = dep.mlflow.get_run(first.run_id)
    assert run.data.tags["mlflow.user"] == TRAINED_BY

    # the code snapshot: one source file per feature node, and an index with the hashes it was run with
    listed = {a.path for a in dep.mlflow.list_artifacts(first.run_id, entities.CODE_DIR)}
    assert listed == {f"code/{node.key}.py" for node in dep.graph} | {entities.CODE_INDEX_ARTIFACT}
    code = dep.artifact_dir(first.run_id) / entities.CODE_DIR
    index = json.loads((code / "index.json").read_text())
    for node in dep.graph:
        entry = index[node.key]
        assert (entry["code_hash"], entry["graph_hash"]) == (node.code_hash, node.graph_hash)
        source = (code / f"{node.key}.py").read_text()
        assert f"def {node.spec.fn.__name__}(" in source
        assert f"# graph_hash {node.graph_hash}" in source
    assert "def assemble_matrix(" in (code / "feature_matrix.py").read_text()   # the helpers it reaches too


def test_retraining_from_the_same_training_set_is_bit_identical(lifecycle: TrainedDeployment) -> None:
    dep, first = lifecycle.dep, lifecycle.first
    before = dep.store.manifest("training_set", None)
    again = dep.life.training_set(TRAINING)
    after = dep.store.manifest("training_set", None)
    assert after.run_id == again.run_id != before.run_id          # really recomputed and rewritten
    assert after.data_hash == before.data_hash == lifecycle.training_set_hash

    second = dep.train(**TRAIN_CONFIG)
    assert int(second.version) > int(first.version) and second.run_id != first.run_id
    c1 = dep.registry.load_contract(MODEL, first.version)
    c2 = dep.registry.load_contract(MODEL, second.version)
    assert c1.model_sha256 == c2.model_sha256 == second.model_sha256
    assert (c2.training_window, c2.validation_window) == (c1.training_window, c1.validation_window)
    assert c2.training_set_data_hash == c1.training_set_data_hash
    assert dep.registry.load_model(MODEL, first.version).to_bytes() == \
        dep.registry.load_model(MODEL, second.version).to_bytes()


def test_live_signals_score_every_trading_day_through_the_champion(lifecycle: TrainedDeployment) -> None:
    dep = lifecycle.dep
    champion_shortcut(dep.registry, MODEL, "1")
    result = dep.life.live(LIVE)
    assert result.success

    features = read_window(dep.store, MODEL_INPUT_NODE, LIVE)
    trading_days = set(features["date"])
    assert len(trading_days) == LIVE_TRADING_DAYS
    signals = read_window(dep.store, "live_signals", LIVE)
    assert set(signals["date"]) == trading_days
    assert set(signals["model_name"]) == {MODEL} and set(signals["model_version"]) == {"1"}
    assert set(run_ids(dep.store, "live_signals", LIVE).values()) == {result.run_id}
    # the signals are version 1's scores of exactly these features
    model = dep.registry.load_model(MODEL, "1")
    expected = to_signals(model.predict(features.select(*KEYS, *FEATURE_COLUMNS)), model.keys)
    assert signals.select(expected.columns).equals(expected)

    pnl = read_window(dep.store, "live_pnl", LIVE)
    assert set(pnl["date"]) == trading_days
    assert pnl["pnl"].is_finite().all() and (pnl["n_names"] > 0).all()


def test_changed_feature_code_is_refused_at_load_before_any_signal(lifecycle: TrainedDeployment) -> None:
    dep = lifecycle.dep
    champion_shortcut(dep.registry, MODEL, "1")
    served = dep.life.live(VARIANT)
    signal_runs = run_ids(dep.store, "live_signals", VARIANT)
    pnl_runs = run_ids(dep.store, "live_pnl", VARIANT)
    assert set(signal_runs.values()) == set(pnl_runs.values()) == {served.run_id}
    original_hash = dep.graph[MODEL_INPUT_NODE].graph_hash
    original_data = data_hashes(dep.store, MODEL_INPUT_NODE, VARIANT)

    variant = dep.with_graph(variant_graph(dep.graph))
    variant_hash = variant.graph[MODEL_INPUT_NODE].graph_hash
    assert variant.graph["market_bars"].graph_hash == dep.graph["market_bars"].graph_hash
    assert variant_hash != original_hash
    try:
        variant.rematerialize(VARIANT, "momentum")
        assert {m.graph_hash for m in _manifests(variant, VARIANT)} == {variant_hash}
        assert data_hashes(dep.store, MODEL_INPUT_NODE, VARIANT) != original_data   # the edit changed values

        with pytest.raises(ContractViolation, match=re.escape(
                f"feature_graph_hash: contract {original_hash} != live {variant_hash}")):
            variant.life.live(VARIANT)
        failed = last_run(dep.instance)
        assert failed.status == dg.DagsterRunStatus.FAILURE
        assert materialized_keys(dep.instance, failed.run_id) == set()
        assert run_ids(dep.store, "live_signals", VARIANT) == signal_runs       # not one signal replaced
        assert run_ids(dep.store, "live_pnl", VARIANT) == pnl_runs
    finally:
        dep.rematerialize(VARIANT, "momentum")
    assert {m.graph_hash for m in _manifests(dep, VARIANT)} == {original_hash}
    assert data_hashes(dep.store, MODEL_INPUT_NODE, VARIANT) == original_data       # recomputed bit for bit


def test_training_on_too_few_days_is_refused_naming_the_day_count(lifecycle: TrainedDeployment) -> None:
    dep = lifecycle.dep
    versions = next(m for m in dep.registry.list_models() if m.name == MODEL).versions
    try:
        dep.life.training_set(SHORT_TRAINING)
        # 10 dates: the latest 2 validate, 2 are embargoed, 6 are left to train on
        with pytest.raises(DataError, match=r"too few date values to train: found 6 .*need 40"):
            dep.train(**TRAIN_CONFIG)
        assert next(m for m in dep.registry.list_models() if m.name == MODEL).versions == versions
    finally:
        dep.life.training_set(TRAINING)
    assert dep.store.manifest("training_set", None).data_hash == lifecycle.training_set_hash


def test_live_signals_for_an_unknown_model_list_the_known_ones(lifecycle: TrainedDeployment) -> None:
    dep = lifecycle.dep
    known = r"no registered model 'no_such_model'; known models: \[.*'alpha_ridge'"
    with pytest.raises(ModelNotFound, match=known):
        dep.life.live(SHORT_LIVE, model_name="no_such_model")
    assert materialized_keys(dep.instance, last_run(dep.instance).run_id) == set()


def test_a_tampered_contract_artefact_fails_loading_the_champion(lifecycle: TrainedDeployment) -> None:
    dep = lifecycle.dep
    tampered = dep.train(**TRAIN_CONFIG, model_name="alpha_tampered")
    champion_shortcut(dep.registry, "alpha_tampered", tampered.version)
    path = dep.artifact_dir(tampered.run_id) / Path(entities.CONTRACT_ARTIFACT)
    contract = json.loads(path.read_text())
    contract["validation_window"] = {"start": "2011-01-03", "end": "2011-11-30"}   # claim a longer validation
    path.write_text(json.dumps(contract, sort_keys=True, separators=(",", ":")))

    altered = (r"contract of model 'alpha_tampered' version 1 hashes to sha256:[0-9a-f]+ "
               r"but sha256:[0-9a-f]+ was recorded at registration")
    with pytest.raises(IntegrityError, match=altered):
        dep.life.live(SHORT_LIVE, model_name="alpha_tampered")
    assert materialized_keys(dep.instance, last_run(dep.instance).run_id) == set()
    assert "altered or corrupted" in (dep.registry.show("alpha_tampered", tampered.version)[0].problem or "")


def test_a_malformed_training_window_config_is_refused(lifecycle: TrainedDeployment) -> None:
    dep = lifecycle.dep
    before = dep.store.manifest("training_set", None)
    with pytest.raises(WindowError, match=r"window start '2011-13-01' is not a real calendar day"):
        dep.materialize_with_config("training_set", {"window": "2011-13-01..x"})
    assert dep.store.manifest("training_set", None) == before


def _manifests(dep: Deployment, window: DataWindow) -> list[Manifest]:
    return [dep.store.manifest(MODEL_INPUT_NODE, day.isoformat()) for day in window]
