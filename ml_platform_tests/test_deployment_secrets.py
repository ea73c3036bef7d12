"""Every secret reaches Dagster through an environment variable: none is in what the code server hands over.

The repository snapshot is what a code server sends the webserver and the daemon: the UI's resource pages show
its configured values, and every run stores its job's snapshot. A ``dg.EnvVar`` appears there by name only; a
literal appears as it is.
"""

from __future__ import annotations

import uuid

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap

from ml_platform.deployment import build_definitions, url_setting
from ml_platform.errors import ConfigurationError
from ml_platform.settings import Settings
from ml_platform_tests.harness.secrets import Secrets, chain_text


@dg.asset
def prices() -> int:
    return 1


@pytest.fixture
def secrets() -> Secrets:
    return Secrets({name: f"s3cr3t-{name}-{uuid.uuid4().hex}" for name in ("db", "s3", "pager", "slack")})


def production_env(secrets: Secrets, home: str) -> dict[str, str]:
    db, s3, pager, slack = (secrets.values[name] for name in ("db", "s3", "pager", "slack"))
    return {
        "ML_PLATFORM_DEPLOYMENT": "production",
        "ML_PLATFORM_HOME": home,
        "ML_PLATFORM_STORAGE": f"s3://features/store?X-Amz-Security-Token={s3}",
        "ML_PLATFORM_MLFLOW_TRACKING_URI": f"postgresql+psycopg://ml:{db}@127.0.0.1:5432/mlflow",
        "ML_PLATFORM_MLFLOW_ARTIFACTS": f"s3://ml:{s3}@artifacts/mlflow",
        "ML_PLATFORM_PAGERDUTY_ROUTING_KEY": pager,
        "ML_PLATFORM_SLACK_WEBHOOK_URL": f"https://hooks.slack.com/services/T0/B0/{slack}",
        "ML_PLATFORM_EXECUTOR": "celery", "ML_PLATFORM_CELERY_BROKER": f"redis://:{db}@127.0.0.1:6379/0",
        "ML_PLATFORM_CELERY_BACKEND": f"redis://:{db}@127.0.0.1:6379/1",
        "ML_PLATFORM_OUTBOX_URL": f"postgresql+psycopg://ml@127.0.0.1:5432/mlflow?password={db}",
    }


def test_no_secret_of_the_environment_is_in_the_repository_snapshot(secrets: Secrets, tmp_path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    env = production_env(secrets, str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(env)
    assert list(secrets.find(repr(settings).encode(), "repr(settings)")) == []
    defs = build_definitions(settings, assets=[prices])
    snapshot = dg.serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    leaks = list(secrets.find(snapshot.encode(), "the repository snapshot"))
    assert leaks == [], "\n".join(str(leak) for leak in leaks)
    resources = defs.resources or {}
    assert resources["model_registry"].tracking_uri == dg.EnvVar("ML_PLATFORM_MLFLOW_TRACKING_URI")
    assert resources["io_manager"].base_dir == dg.EnvVar("ML_PLATFORM_STORAGE")
    with dg.build_resources({"model_registry": resources["model_registry"]}) as built:  # resolved at run time
        assert built.model_registry.tracking_uri == env["ML_PLATFORM_MLFLOW_TRACKING_URI"]
    executor = defs.resolve_implicit_global_asset_job_def().executor_def
    assert executor.name == "celery_executor"
    resolved = executor.config_schema.resolve_config({}).value["config"]  # type: ignore[attr-defined]
    assert (resolved["broker"], resolved["backend"]) == (env["ML_PLATFORM_CELERY_BROKER"],
                                                         env["ML_PLATFORM_CELERY_BACKEND"])


def test_settings_without_a_credential_keep_their_values(tmp_path) -> None:
    settings = Settings.from_env({"ML_PLATFORM_HOME": str(tmp_path),
                                  "ML_PLATFORM_MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert settings.secret_envs == ()
    assert url_setting(settings, "tracking_uri") == "http://127.0.0.1:5000"


def test_a_credential_written_into_code_is_refused_without_showing_it(secrets: Secrets, tmp_path) -> None:
    db = secrets.values["db"]
    settings = Settings.local(tmp_path, tracking_uri=f"postgresql+psycopg://ml:{db}@127.0.0.1:5432/mlflow")
    with pytest.raises(ConfigurationError, match="ML_PLATFORM_MLFLOW_TRACKING_URI") as caught:
        build_definitions(settings, assets=[prices])
    assert db not in chain_text(caught.value)
