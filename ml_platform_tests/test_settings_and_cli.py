"""Deployment settings from the environment, and the `ml-platform graph` command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ml_platform.cli import main
from ml_platform.errors import ConfigurationError
from ml_platform.features.nodes import build_graph
from ml_platform.lifecycle import plan_ranges
from ml_platform.settings import Settings
from ml_platform.window import DataWindow


def test_local_defaults_and_production_requirements(tmp_path):
    local = Settings.from_env({"ML_PLATFORM_HOME": str(tmp_path)})
    assert local.environment_policy == "warn" and local.storage == str(tmp_path / "storage")
    assert local.tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    with pytest.raises(ConfigurationError, match="ML_PLATFORM_STORAGE"):
        Settings.from_env({"ML_PLATFORM_DEPLOYMENT": "production"})
    prod = Settings.from_env({"ML_PLATFORM_DEPLOYMENT": "production", "ML_PLATFORM_STORAGE": "s3://b/f",
                              "ML_PLATFORM_MLFLOW_TRACKING_URI": "http://mlflow:5000",
                              "ML_PLATFORM_MLFLOW_ARTIFACTS": "s3://b/a"})
    assert prod.environment_policy == "strict"
    with pytest.raises(ConfigurationError, match="environment policy"):
        Settings.from_env({"ML_PLATFORM_ENV_POLICY": "lenient"})
    with pytest.raises(ConfigurationError, match="market source"):
        Settings.from_env({"ML_PLATFORM_MARKET_SOURCE": "bloomberg"})


def test_graph_json_lists_every_node_with_hashes(monkeypatch):
    monkeypatch.setenv("ML_PLATFORM_MARKET_SOURCE", "synthetic")   # the command follows the deployment's source
    result = CliRunner().invoke(main, ["graph", "--json"])
    assert result.exit_code == 0, result.output
    nodes = json.loads(result.output)["nodes"]
    graph = build_graph("synthetic")
    assert [n["key"] for n in nodes] == [n.key for n in graph]
    for node in nodes:
        assert {"key", "file", "function", "upstream", "code_hash", "graph_hash"} <= set(node)
        assert node["graph_hash"] == graph[node["key"]].graph_hash
    table = CliRunner().invoke(main, ["graph"])
    assert table.exit_code == 0 and "feature_matrix" in table.output and "graph_hash" in table.output


def test_market_source_is_part_of_every_graph_hash():
    sample, synthetic = build_graph("sample"), build_graph("synthetic")
    assert all(sample[n.key].graph_hash != synthetic[n.key].graph_hash for n in sample)


def test_plan_ranges_gives_each_node_the_history_its_readers_need():
    graph = build_graph()
    plan = plan_ranges(graph, DataWindow.parse("2011-06-01..2011-06-30"))
    spans = {key: span for span, keys in plan for key in keys}
    assert spans["feature_matrix"] == DataWindow.parse("2011-06-01..2011-06-30")
    # realized_vol reads 49 days of daily_returns, which reads 19 days of market_bars
    assert (spans["realized_vol"].start - spans["daily_returns"].start).days == 49
    assert spans["market_bars"].start <= spans["daily_returns"].start
    assert spans["market_bars"].end > spans["forward_return"].end      # the label looks ahead
    order = [key for _, keys in plan for key in keys]
    assert order.index("market_bars") < order.index("daily_returns") < order.index("realized_vol")
