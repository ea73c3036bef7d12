"""Deployment settings from the environment, and how `ml-platform graph|verify|models` find a project."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from quant_alpha.features import build_graph

from ml_platform.cli import main
from ml_platform.errors import ConfigurationError, WindowError
from ml_platform.features.calendar import Calendar
from ml_platform.lifecycle import plan_ranges
from ml_platform.settings import Settings
from ml_platform.window import DataWindow

REPO = Path(__file__).resolve().parents[1]


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


def test_graph_json_lists_every_feature_asset_of_the_workspace_location(monkeypatch):
    monkeypatch.chdir(REPO)                                        # workspace.yaml names quant_alpha.definitions
    monkeypatch.setenv("QUANT_ALPHA_MARKET_SOURCE", "sample")
    result = CliRunner().invoke(main, ["graph", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["definitions"] == "quant_alpha.definitions:defs"
    graph = build_graph("sample")
    assert sorted(n["key"] for n in payload["nodes"]) == sorted(n.key for n in graph)
    for node in payload["nodes"]:
        assert {"key", "source", "function", "upstream", "code_hash", "graph_hash"} <= set(node)
        assert node["graph_hash"] == graph[node["node"]].graph_hash
    table = CliRunner().invoke(main, ["graph", "--defs", "quant_alpha.definitions:defs"])
    assert table.exit_code == 0 and "feature_matrix" in table.output and "graph_hash" in table.output


@pytest.mark.parametrize(("target", "message"), [
    ("no_such_module.defs:defs", "module 'no_such_module.defs' is not importable"),
    ("quant_alpha.definitions:nothing", "has no 'nothing'; its Definitions are \\['defs'\\]"),
    ("quant_alpha.definitions", "is not module:attr"),
    ("quant_alpha.definitions:SETTINGS", "is a Settings, not dagster.Definitions"),
])
def test_defs_naming_nothing_is_a_clear_error(target, message):
    result = CliRunner().invoke(main, ["graph", "--defs", target])
    assert result.exit_code == 2
    assert "error: [CONFIGURATION_ERROR]" in result.output
    import re
    assert re.search(message, result.output), result.output


def test_without_defs_or_workspace_the_command_says_what_to_pass(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["graph"])
    assert result.exit_code == 2 and "pass --defs module:attr" in result.output


def test_verify_and_models_honour_ml_platform_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ML_PLATFORM_HOME", str(tmp_path / "elsewhere"))
    verify = CliRunner().invoke(main, ["verify"])
    assert verify.exit_code == 2 and str(tmp_path / "elsewhere" / "storage") in verify.output
    models = CliRunner().invoke(main, ["models", "list"])
    assert models.exit_code == 2 and str(tmp_path / "elsewhere" / "mlflow" / "mlflow.db") in models.output


def test_market_source_is_part_of_every_graph_hash():
    sample, synthetic = build_graph("sample"), build_graph("synthetic")
    assert all(sample[n.key].graph_hash != synthetic[n.key].graph_hash for n in sample)


DAILY = Calendar(dg.DailyPartitionsDefinition(start_date="2000-01-03"))


def test_plan_ranges_gives_each_node_the_history_its_readers_need():
    graph = build_graph()
    plan = plan_ranges(graph, DAILY, DataWindow.parse("2011-06-01..2011-06-30"))
    spans = {key: span for span, keys in plan for key in keys}
    assert spans["feature_matrix"] == DataWindow.parse("2011-06-01..2011-06-30")
    # realized_vol reads 49 days of daily_returns, which reads 19 days of market_bars
    assert (spans["realized_vol"].start - spans["daily_returns"].start).days == 49
    assert spans["market_bars"].start <= spans["daily_returns"].start
    assert spans["market_bars"].end > spans["forward_return"].end      # the label looks ahead
    order = [key for _, keys in plan for key in keys]
    assert order.index("market_bars") < order.index("daily_returns") < order.index("realized_vol")


def test_calendars_other_than_daily_turn_day_lookbacks_into_enough_partitions():
    weekly = Calendar(dg.WeeklyPartitionsDefinition(start_date="2020-01-06", day_offset=1))  # Mondays
    business = Calendar(dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 * * 1-5", start="2020-01-01",
                                                          fmt="%Y-%m-%d"))
    from ml_platform.features.spec import Upstream
    assert (weekly.min_days, business.min_days) == (7, 1)
    assert weekly.offsets(Upstream("x", lookback_days=15)) == (3, 0)
    assert business.offsets(Upstream("x", lookback=2, lookback_days=3)) == (5, 0)
    assert weekly.window_of_key("2020-01-13") == DataWindow.parse("2020-01-13..2020-01-19")
    assert business.window_of_key("2020-01-03") == DataWindow.parse("2020-01-03..2020-01-05")  # a Friday
    with pytest.raises(WindowError, match="holds no partition"):
        weekly.keys_with_offsets(DataWindow.parse("2019-01-01..2019-01-31"), 0, 0)


@pytest.mark.parametrize("partitions", [
    dg.StaticPartitionsDefinition(["a", "b"]),
    dg.HourlyPartitionsDefinition(start_date="2020-01-01-00:00"),
])
def test_a_calendar_must_be_time_windows_of_a_day_or_longer(partitions):
    with pytest.raises(ConfigurationError, match="TimeWindowPartitionsDefinition|less than a day"):
        Calendar(partitions)
