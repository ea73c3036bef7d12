"""load_champion: the contract check at the serving boundary returns a model only when it passes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from ml_platform.champions.serving import load_champion
from ml_platform.environment import capture_environment
from ml_platform.errors import ContractViolation, IntegrityError, ModelNotFound
from ml_platform.keys import FrameKeys
from ml_platform.models import SKLEARN_FORMAT, SignalModel, SklearnSignalModel
from ml_platform.registry import FeatureField, FeatureSchema, LiveFeatureStream
from ml_platform.registry.entities import RegisteredVersion
from ml_platform.registry.store import ModelRegistry
from ml_platform.testing import champion_shortcut
from ml_platform_tests.registry.conftest import (
    GRAPH_HASH,
    OTHER_GRAPH_HASH,
    artifact_file,
    feature_frame,
    feature_schema,
    make_model,
    make_sklearn_model,
)

Register = Callable[..., RegisteredVersion]


def test_load_champion_returns_the_checked_champion(
    registry: ModelRegistry, register: Register, live: LiveFeatureStream
) -> None:
    register("champ_ok")
    second = register("champ_ok", shift=0.7)
    champion_shortcut(registry, "champ_ok", "2")
    loaded = load_champion(registry, "champ_ok", live, policy="strict")
    assert (loaded.name, loaded.version) == ("champ_ok", "2")
    assert loaded.contract == second.contract
    assert loaded.model == make_model(0.7)
    assert loaded.check.environment_differences == ()
    assert loaded.model.predict(feature_frame()).equals(make_model(0.7).predict(feature_frame()))


@pytest.mark.parametrize(
    ("live_stream", "kind"),
    [
        (LiveFeatureStream(OTHER_GRAPH_HASH, feature_schema()), "feature_graph_hash: contract"),
        (LiveFeatureStream(GRAPH_HASH, FeatureSchema(tuple(f for f in feature_schema() if f.name != "mom_21d"))),
         "column mom_21d: missing"),
    ],
)
def test_mismatching_stream_gets_nothing(
    registry: ModelRegistry, register: Register, live_stream: LiveFeatureStream, kind: str
) -> None:
    register("champ_mismatch")
    champion_shortcut(registry, "champ_mismatch", "1")
    with pytest.raises(ContractViolation, match=f"model 'champ_mismatch' version 1 refused(.|\n)*{kind}"):
        load_champion(registry, "champ_mismatch", live_stream, policy="strict")


def test_environment_mismatch_refused_under_strict_and_tolerated_under_warn(
    registry: ModelRegistry, register: Register, live: LiveFeatureStream
) -> None:
    register("champ_env")
    champion_shortcut(registry, "champ_env", "1")
    env = capture_environment()
    other = dataclasses.replace(env, python_version="3.11.0" if env.python_version != "3.11.0" else "3.11.1")
    with pytest.raises(ContractViolation, match="environment: python: cpython"):
        load_champion(registry, "champ_env", live, policy="strict", running_env=other)
    loaded = load_champion(registry, "champ_env", live, policy="warn", running_env=other)
    assert loaded.check.environment_differences == (f"python: cpython {env.python_version} -> cpython {other.python_version}",)


def test_type_change_in_live_stream_is_refused(registry: ModelRegistry, register: Register) -> None:
    register("champ_type")
    champion_shortcut(registry, "champ_type", "1")
    fields = tuple(FeatureField(f.name, "float", f.nullable) if f.name == "vol_21d" else f for f in feature_schema())
    live = LiveFeatureStream(registry.load_contract("champ_type", "1").feature_graph_hash, FeatureSchema(fields))
    with pytest.raises(ContractViolation, match="column vol_21d: type double -> float"):
        load_champion(registry, "champ_type", live, policy="off")


def test_unknown_model_lists_known_names(registry: ModelRegistry, register: Register, live: LiveFeatureStream) -> None:
    register("champ_known")
    with pytest.raises(ModelNotFound, match=r"no registered model 'champ_missing'; known models: \[.*'champ_known'"):
        load_champion(registry, "champ_missing", live, policy="strict")


def test_no_champion_says_to_promote_first(registry: ModelRegistry, register: Register, live: LiveFeatureStream) -> None:
    register("champ_none")
    with pytest.raises(ModelNotFound, match="model 'champ_none' has no champion of record \\('champion'\\): promote a version first"):
        load_champion(registry, "champ_none", live, policy="strict")


def test_tampered_champion_is_not_served(registry: ModelRegistry, register: Register, live: LiveFeatureStream) -> None:
    registered = register("champ_tampered")
    champion_shortcut(registry, "champ_tampered", "1")
    path = artifact_file(registry, registered.run_id, "model/artifacts/signal_model.bin")
    path.write_bytes(make_model(9.0).to_bytes())
    with pytest.raises(IntegrityError, match="'champ_tampered' version 1"):
        load_champion(registry, "champ_tampered", live, policy="strict")


def test_a_scikit_learn_champion_is_served_through_the_protocol(
    registry: ModelRegistry, register: Register, live: LiveFeatureStream
) -> None:
    register("champ_forest")
    register("champ_forest", model=make_sklearn_model())
    champion_shortcut(registry, "champ_forest", "2")
    loaded = load_champion(registry, "champ_forest", live, policy="strict")
    assert isinstance(loaded.model, SignalModel) and isinstance(loaded.model, SklearnSignalModel)
    assert loaded.contract.model_format == loaded.model.format_id == SKLEARN_FORMAT
    expected = make_sklearn_model().predict(feature_frame())
    assert loaded.model.predict(feature_frame())["score"].to_list() == expected["score"].to_list()


def test_a_stream_keyed_otherwise_gets_nothing(registry: ModelRegistry, register: Register) -> None:
    register("champ_keys")
    champion_shortcut(registry, "champ_keys", "1")
    other = LiveFeatureStream(GRAPH_HASH, feature_schema(), FrameKeys("date", ("mom_5d",)))
    with pytest.raises(ContractViolation, match=r"keys: contract \(date, instrument\) != live \(date, mom_5d\)"):
        load_champion(registry, "champ_keys", other, policy="strict")
