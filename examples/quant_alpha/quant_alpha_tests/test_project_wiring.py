"""The example's Definitions: monitoring, the close schedule and jobs that never carry the infra checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
from quant_alpha.features import build_graph
from quant_alpha.project import DAILY_JOB, project_definitions

from ml_platform import Settings
from ml_platform.errors import ConfigurationError

MATERIALIZING_JOBS = ("features_job", "training_job", "live_signals_job", DAILY_JOB)


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    return project_definitions(Settings.local(tmp_path_factory.mktemp("wiring") / ".ml_platform"), build_graph())


def test_sensors_and_schedule_start_with_the_daemon(defs: dg.Definitions) -> None:
    sensors = {s.name: s for s in defs.sensors or []}
    assert set(sensors) == {"infra_freshness_sensor", "alpha_drift_sensor"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    assert {s.job_name for s in sensors.values()} == {"infra_freshness_job", "alpha_drift_job"}
    schedule = defs.resolve_schedule_def(f"{DAILY_JOB}_daily")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "30 16 * * *" and schedule.execution_timezone == "America/New_York"


@pytest.mark.parametrize("job", MATERIALIZING_JOBS)
def test_materializing_jobs_never_run_the_infra_checks(defs: dg.Definitions, job: str) -> None:
    assert defs.resolve_job_def(job).asset_layer.asset_graph.asset_check_keys == set()


def test_the_infra_job_runs_the_checks_and_no_asset(defs: dg.Definitions) -> None:
    layer = defs.resolve_job_def("infra_freshness_job").asset_layer
    names = {(k.asset_key.to_user_string(), k.name) for k in layer.asset_graph.asset_check_keys}
    assert ("forward_return", "freshness") in names and ("feature_matrix", "contract_schema") in names
    assert ("live_signals", "scheduled_run") in names
    assert not layer.executable_asset_keys


def test_the_schedule_requests_the_day_of_the_close(defs: dg.Definitions, tmp_path: Path) -> None:
    schedule = defs.resolve_schedule_def(f"{DAILY_JOB}_daily")
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        friday = dg.build_schedule_context(instance=instance, repository_def=defs.get_repository_def(),
                                           scheduled_execution_time=dt.datetime(2012, 3, 2, 21, 30, tzinfo=dt.UTC))
        request = schedule.evaluate_tick(friday).run_requests
        assert [r.partition_key for r in request] == ["2012-03-02"]


def test_a_ui_materialization_or_backfill_of_some_assets_builds_with_their_infra_checks(defs: dg.Definitions) -> None:
    """Dagster adds the checks of the selected assets to a UI materialization or a backfill run: the infra
    checks must be subsettable, or materializing one asset from the UI fails to build its run."""
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={dg.AssetKey("daily_returns")})
    checks = {(k.asset_key.to_user_string(), k.name) for k in job.asset_layer.asset_graph.asset_check_keys}
    assert ("daily_returns", "freshness") in checks


def test_a_reproduction_deployment_has_no_schedule_and_no_sensor(tmp_path: Path) -> None:
    settings = Settings.from_env({"ML_PLATFORM_HOME": str(tmp_path), "ML_PLATFORM_REPRODUCTION": "1"})
    defs = project_definitions(settings, build_graph())
    assert settings.reproduction and not list(defs.sensors or []) and not list(defs.schedules or [])
    assert defs.resolve_job_def("infra_freshness_job") is not None  # checks stay: recorded, never paging
    with pytest.raises(ConfigurationError, match="ML_PLATFORM_REPRODUCTION='maybe': use 1 or 0"):
        Settings.from_env({"ML_PLATFORM_REPRODUCTION": "maybe"})


def test_the_example_package_uses_only_the_public_api() -> None:
    """``ml_platform`` itself, and its testing helpers (the demo's champion shortcut)."""
    import ast

    from ml_platform_tests.public_api import private_imports

    package = Path(__file__).resolve().parents[1] / "quant_alpha"
    for path in sorted(package.rglob("*.py")):
        assert private_imports(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))) == [], path.name
