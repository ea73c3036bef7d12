"""ModelRegistryResource: the Dagster wiring of the registry, used from a materialized asset."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pytest

from ml_platform.champions.resource import ModelRegistryResource
from ml_platform.errors import ConfigurationError, ContractViolation
from ml_platform.registry import LiveFeatureStream
from ml_platform.registry.entities import RegisteredVersion
from ml_platform.registry.store import ModelRegistry
from ml_platform.testing import champion_shortcut
from ml_platform_tests.registry.conftest import (
    GRAPH_HASH,
    OTHER_GRAPH_HASH,
    feature_frame,
    feature_schema,
    make_model,
)

Register = Callable[..., RegisteredVersion]


def _resource(registry: ModelRegistry, policy: str = "strict") -> ModelRegistryResource:
    return ModelRegistryResource(tracking_uri=registry.tracking_uri, artifact_location=registry.artifact_location,
                                 environment_policy=policy)


def test_asset_scores_with_the_contract_checked_champion(registry: ModelRegistry, register: Register) -> None:
    register("resource_model", shift=0.3)
    champion_shortcut(registry, "resource_model", "1")

    @dg.asset
    def live_scores(model_registry: ModelRegistryResource) -> dict[str, object]:
        champion = model_registry.load_champion("resource_model", LiveFeatureStream(GRAPH_HASH, feature_schema()))
        scores = champion.model.predict(feature_frame())
        return {"version": champion.version, "rows": scores.height, "first": scores["score"][0]}

    result = dg.materialize([live_scores], resources={"model_registry": _resource(registry)})
    assert result.success
    expected = make_model(0.3).predict(feature_frame())["score"][0]
    assert result.output_for_node("live_scores") == {"version": "1", "rows": 12, "first": expected}


def test_asset_fails_on_a_contract_violation(registry: ModelRegistry, register: Register) -> None:
    register("resource_refused")
    champion_shortcut(registry, "resource_refused", "1")

    @dg.asset
    def refused_scores(model_registry: ModelRegistryResource) -> int:
        model_registry.load_champion("resource_refused", LiveFeatureStream(OTHER_GRAPH_HASH, feature_schema()))
        return 1

    with pytest.raises(ContractViolation, match="feature_graph_hash"):
        dg.materialize([refused_scores], resources={"model_registry": _resource(registry)})


def test_get_registry_uses_the_configured_uris_and_refuses_a_bad_policy(registry: ModelRegistry) -> None:
    built = _resource(registry).get_registry()
    assert (built.tracking_uri, built.registry_uri, built.artifact_location) == (
        registry.tracking_uri, registry.tracking_uri, registry.artifact_location)
    with pytest.raises(ConfigurationError, match="unknown environment policy 'lenient'"):
        _resource(registry, "lenient").get_registry()
