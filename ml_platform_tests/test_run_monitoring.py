"""Every shipped dagster.yaml turns run monitoring on, so a run whose worker was killed ends up failed."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.instance.config import dagster_instance_config
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._daemon.monitoring import run_monitoring

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "dagster.yaml", ROOT / "deployments" / "production" / "dagster.yaml"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_instance_config_is_valid_and_monitors_runs(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB",
                 "DAGSTER_COMPUTE_LOG_BUCKET", "DAGSTER_COMPUTE_LOG_PREFIX"):
        monkeypatch.setenv(name, "unused")
    monkeypatch.setenv("DAGSTER_PG_PORT", "5432")
    shutil.copy(path, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # validates against Dagster's schema
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 10 <= monitoring["poll_interval_seconds"] <= 120
    assert monitoring["max_runtime_seconds"] > 0  # the default launcher cannot probe a worker: bound the runtime
    assert monitoring.get("max_resume_run_attempts", 0) == 0  # the default launcher cannot resume runs


def test_a_started_run_whose_worker_died_is_marked_failed_by_the_monitoring_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")

    @dg.op
    def noop() -> None:
        pass

    @dg.job
    def killed_job() -> None:
        noop()

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert "MONITORING" in instance.get_required_daemon_types()
        run = instance.create_run_for_job(killed_job)
        instance.report_dagster_event(
            DagsterEvent(DagsterEventType.RUN_START.value, job_name=run.job_name, message="started"), run.run_id)
        record = instance.get_run_record_by_id(run.run_id)
        assert record is not None and record.dagster_run.status == DagsterRunStatus.STARTED
        # The worker was SIGKILLed: nothing reports again. Past the runtime bound, one daemon pass fails it.
        later = record.start_time + instance.run_monitoring_max_runtime_seconds + 1
        monkeypatch.setattr(run_monitoring, "get_current_timestamp", lambda: later)
        context = SimpleNamespace(instance=instance, create_request_context=lambda: None)
        list(run_monitoring.execute_run_monitoring_iteration(context, logging.getLogger("test")))  # type: ignore[arg-type]
        final = instance.get_run_by_id(run.run_id)
        assert final is not None and final.status == DagsterRunStatus.FAILURE
