"""The `ml-platform models` CLI group against a real registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from ml_platform.cli.models import models
from ml_platform.errors import ModelNotFound, RegistryError
from ml_platform.registry.entities import RegisteredVersion
from ml_platform.registry.store import ModelRegistry
from ml_platform.testing import champion_shortcut

Register = Callable[..., RegisteredVersion]


def _run(registry: ModelRegistry, *args: str) -> str:
    result = CliRunner().invoke(models, [*args, "--tracking-uri", registry.tracking_uri], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def cli_model(registry: ModelRegistry, register: Register) -> str:
    register("cli_model")
    register("cli_model", shift=0.2)
    champion_shortcut(registry, "cli_model", "1")
    return "cli_model"


def test_list_text_and_json(registry: ModelRegistry, cli_model: str) -> None:
    assert "cli_model  champion: 1  versions: 1, 2" in _run(registry, "list")
    listed = {m["name"]: m for m in json.loads(_run(registry, "list", "--json"))}
    assert listed[cli_model] == {"name": "cli_model", "versions": ["1", "2"], "unusable_versions": [],
                                 "champion": "1", "description": ""}


def test_show_every_version_with_its_contract(registry: ModelRegistry, cli_model: str) -> None:
    text = _run(registry, "show", cli_model)
    assert "cli_model version 1  [champion]  status: ready" in text
    assert "cli_model version 2  status: ready" in text
    contract = registry.load_contract(cli_model, "2")
    assert f"feature graph hash:     {contract.feature_graph_hash}" in text
    assert "training window:        2019-01-02..2019-12-31" in text
    assert "trained by:             alice@research" in text
    assert "model format:           ml_platform.ridge/v2" in text
    assert "keys:                   date, instrument" in text
    assert "vol_21d (double, nullable)" in text


def test_show_one_version_as_json(registry: ModelRegistry, cli_model: str) -> None:
    (shown,) = json.loads(_run(registry, "show", cli_model, "2", "--json"))
    assert (shown["version"], shown["status"], shown["is_champion"], shown["problem"]) == ("2", "ready", False, None)
    assert shown["contract"] == registry.load_contract(cli_model, "2").to_dict()


def test_unknown_model_raises_the_platform_error(registry: ModelRegistry, cli_model: str) -> None:
    with pytest.raises(ModelNotFound, match="no registered model 'absent'"):
        CliRunner().invoke(models, ["show", "absent", "--tracking-uri", registry.tracking_uri], catch_exceptions=False)


def test_missing_sqlite_registry_is_reported_not_created(tmp_path: Path) -> None:
    database = tmp_path / "nowhere" / "mlflow.db"
    with pytest.raises(RegistryError, match="no model registry at .*mlflow.db: train and register a model first"):
        CliRunner().invoke(models, ["list", "--tracking-uri", f"sqlite:///{database}"], catch_exceptions=False)
    assert not database.parent.exists()
