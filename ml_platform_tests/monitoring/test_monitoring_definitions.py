"""Bad monitoring input: a clear error at definition time, or a recorded skip reason, never a crash loop."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from ml_platform import ConfigurationError, DriftPolicy, GraphError, InfraSLO, Settings, build_monitoring
from ml_platform.monitoring.definitions import ALPHA_DRIFT_CHECK
from ml_platform_tests.monitoring.project import CALENDAR, MODEL, PREFIX, build_graph, desk_definitions

ARGS = {"partitions_def": CALENDAR, "model_input": "inputs", "label": "fwd_ret", "label_column": "fwd",
        "training_node": "rows", "model_name": MODEL, "key_prefix": PREFIX}


@pytest.mark.parametrize("changes, error, match", [
    ({"monitored": ["bars", "nope"]}, GraphError, r"monitored='nope' is not a node of the graph; its nodes are"),
    ({"model_input": "inputz"}, GraphError, r"model_input='inputz' is not a node"),
    ({"label": "rows"}, GraphError, r"label='rows' must be a partitioned node"),
    ({"training_node": "inputs"}, GraphError, r"training_node='inputs' must be a non-partitioned node"),
    ({"monitored": "bars"}, ConfigurationError, "a list of node keys"),
    ({"label_column": ""}, ConfigurationError, "label_column"),
    ({"minimum_interval_seconds": 5}, ConfigurationError, "minimum_interval_seconds"),
    ({"slo": "fast"}, ConfigurationError, "slo must be a InfraSLO"),
    ({"drift_policy": {"window_days": 20}}, ConfigurationError, "drift_policy must be a DriftPolicy"),
])
def test_bad_monitoring_arguments_fail_at_definition_time(changes: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build_monitoring(build_graph(), **{**ARGS, **changes})


@pytest.mark.parametrize("bad", [{"window_days": 0}, {"min_days": 500}, {"ks_alpha": 1.5}, {"psi_bins": 1},
                                 {"sharpe_confidence": float("nan")}])
def test_thresholds_out_of_range_fail_when_the_policy_is_written(bad: dict) -> None:
    with pytest.raises(ConfigurationError, match=f"DriftPolicy.{next(iter(bad))}"):
        DriftPolicy(**bad)
    with pytest.raises(ConfigurationError, match="InfraSLO.freshness_minutes"):
        InfraSLO(freshness_minutes=-5)


def test_the_definitions_hold_two_jobs_two_sensors_and_checks_on_the_users_assets() -> None:
    monitoring = build_monitoring(build_graph(), **ARGS)
    assert sorted(j.name for j in monitoring.jobs) == ["alpha_drift_job", "infra_freshness_job"]
    assert sorted(s.name for s in monitoring.sensors) == ["alpha_drift_sensor", "infra_freshness_sensor"]
    keys = {(k.asset_key.to_user_string(), k.name) for c in monitoring.asset_checks for k in c.check_keys}
    assert ("desk/bars", "freshness") in keys and ("desk/inputs", "contract_schema") in keys
    assert ("desk/live_pnl", ALPHA_DRIFT_CHECK) in keys
    assert all(s.default_status == dg.DefaultSensorStatus.STOPPED for s in monitoring.sensors)
    drift_job = next(j for j in monitoring.jobs if j.name == "alpha_drift_job")
    assert "pager" not in drift_job.required_resource_keys  # the research side cannot page, by construction


def test_sensors_record_skip_reasons_instead_of_crashing(tmp_path: Path) -> None:
    """No champion, no live PnL, no validation metrics: each tick returns a reason; nothing raises."""
    settings = Settings.local(tmp_path / ".ml_platform")
    defs = desk_definitions(settings, lambda: dt.datetime(2023, 9, 5, 22, tzinfo=dt.UTC))
    with dg.instance_for_test() as instance:
        def tick(name: str):  # type: ignore[no-untyped-def]
            context = dg.build_sensor_context(instance=instance, definitions=defs, resources=dict(defs.resources))
            return defs.get_sensor_def(name).evaluate_tick(context)

        drift = tick("alpha_drift_sensor")
        assert not drift.run_requests and "no new desk/live_pnl materialization" in drift.skip_message
        infra = tick("infra_freshness_sensor")  # nothing materialized at all: every monitored asset is stale
        assert len(infra.run_requests) == 1
        # a live PnL materialization recorded with no champion behind it: a WARN check with the skip reason
        instance.report_runless_asset_event(dg.AssetMaterialization(dg.AssetKey([PREFIX, "live_pnl"]),
                                                                    partition="2023-09-05"))
        drift = tick("alpha_drift_sensor")
        assert not drift.run_requests
        [event] = drift.asset_events
        assert event.passed and event.severity == dg.AssetCheckSeverity.WARN
        assert "has no champion of record" in event.metadata["skipped"].value
