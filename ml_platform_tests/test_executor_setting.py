"""ML_PLATFORM_EXECUTOR: how a deployment's runs execute their steps, read once and set on the Definitions."""

from __future__ import annotations

import sys

import dagster as dg
import pytest

from ml_platform.deployment import build_definitions, build_executor
from ml_platform.errors import ConfigurationError
from ml_platform.settings import Settings


@dg.asset
def _one() -> int:
    return 1


def _settings(tmp_path, **env: str) -> Settings:
    return Settings.from_env({"ML_PLATFORM_HOME": str(tmp_path), **env})


def test_unset_is_dagsters_multiprocess_default_and_leaves_the_definitions_executor_alone(tmp_path):
    settings = _settings(tmp_path)
    assert settings.executor == "multiprocess" and build_executor(settings) is None
    defs = build_definitions(settings, assets=[_one])
    assert defs.executor is None
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "multi_or_in_process_executor"


def test_in_process_is_dagsters_in_process_executor(tmp_path):
    defs = build_definitions(_settings(tmp_path, ML_PLATFORM_EXECUTOR="in_process"), assets=[_one])
    assert defs.resolve_implicit_global_asset_job_def().executor_def is dg.in_process_executor


def test_celery_is_dagster_celerys_executor_configured_with_the_broker_and_backend(tmp_path):
    settings = _settings(tmp_path, ML_PLATFORM_EXECUTOR=" celery ", ML_PLATFORM_CELERY_BROKER="redis://127.0.0.1:1/0",
                         ML_PLATFORM_CELERY_BACKEND="redis://127.0.0.1:1/1")
    assert (settings.executor, settings.celery_broker, settings.celery_backend) == (
        "celery", "redis://127.0.0.1:1/0", "redis://127.0.0.1:1/1")
    job = build_definitions(settings, assets=[_one]).resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == "celery_executor"
    # the configured executor takes no run config: the broker and backend are fixed by the deployment
    plan_config = job.executor_def.config_schema.config_type
    assert not getattr(plan_config, "fields", {})


def test_celery_without_a_backend_keeps_celerys_default(tmp_path):
    executor = build_executor(_settings(tmp_path, ML_PLATFORM_EXECUTOR="celery",
                                        ML_PLATFORM_CELERY_BROKER="redis://127.0.0.1:1/0"))
    assert executor is not None and executor.name == "celery_executor"


def test_k8s_is_dagster_k8s_job_executor(tmp_path):
    from dagster_k8s import k8s_job_executor

    assert build_executor(_settings(tmp_path, ML_PLATFORM_EXECUTOR="k8s")) is k8s_job_executor


def test_celery_without_a_broker_is_refused_naming_the_variable(tmp_path):
    with pytest.raises(ConfigurationError, match="ML_PLATFORM_CELERY_BROKER"):
        _settings(tmp_path, ML_PLATFORM_EXECUTOR="celery")


def test_an_unknown_executor_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(ConfigurationError, match="ML_PLATFORM_EXECUTOR='threads'.*multiprocess, in_process, celery, k8s"):
        _settings(tmp_path, ML_PLATFORM_EXECUTOR="threads")


def test_a_missing_executor_package_names_the_production_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dagster_celery", None)  # what Python does for a package not installed
    settings = _settings(tmp_path, ML_PLATFORM_EXECUTOR="celery", ML_PLATFORM_CELERY_BROKER="redis://h/0")
    with pytest.raises(ConfigurationError, match=r"needs dagster_celery.*production extra"):
        build_executor(settings)
