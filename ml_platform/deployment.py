"""Resources and Definitions of one deployment from its settings; no side effects at import.

A project's ``definitions.py`` builds its assets (``build_feature_assets``, ``build_model_assets``) and
hands them here with the deployment's :class:`~ml_platform.settings.Settings`: the same code serves the
embedded default and production, only the settings differ. The IO manager, the feature store and the
model registry all come from the one settings object, so they can never point at different stores.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import dagster as dg

from ml_platform.champions.resource import ModelRegistryResource
from ml_platform.errors import ConfigurationError, GraphError
from ml_platform.io.manager import PinnedIOManager, PinnedStoreResource
from ml_platform.metadata import PROJECT_ROOT
from ml_platform.monitoring.resources import PagerResource, ResearchResource
from ml_platform.promotion.job import promotion_resources
from ml_platform.redact import has_secret, redacted_url
from ml_platform.settings import OUTBOX_URL_ENV, URL_SETTING_ENV, Settings

__all__ = ["build_definitions", "build_executor", "check_asset_keys", "monitoring_resources", "namespaced_assets",
           "platform_resources", "url_setting", "with_project_root"]


def platform_resources(settings: Settings) -> dict[str, Any]:
    """``io_manager``, ``feature_store``, ``model_registry``, the promotion job's op IO manager and the two
    alert routes (``pager``, ``research``) from ``settings``."""
    store = {"base_dir": url_setting(settings, "storage"), "environment_policy": settings.environment_policy,
             "project_root": settings.project_root, **store_provenance(settings)}
    return {
        "io_manager": PinnedIOManager(**store, key_namespace=list(settings.key_namespace)),
        "feature_store": PinnedStoreResource(**store),
        "model_registry": ModelRegistryResource(
            tracking_uri=url_setting(settings, "tracking_uri"),
            artifact_location=url_setting(settings, "artifact_location"),
            environment_policy=settings.environment_policy,
        ),
        **promotion_resources(),
        **monitoring_resources(settings),
    }


def url_setting(settings: Settings, name: str) -> str | dg.EnvVar:
    """The URL setting ``name`` as a resource is configured with it: its environment variable
    (``dg.EnvVar``, resolved by Dagster when the resource is built) when the value holds a credential, so the
    credential is neither shown in Dagster's UI nor stored in a run's snapshot; else the value itself.

    Raises:
        ConfigurationError: the value holds a credential but was not read from the environment (a literal
            in code): give it through its environment variable.
    """
    secret_env = dict(settings.secret_envs).get(name)
    if secret_env is not None:
        return dg.EnvVar(secret_env)
    value: str = getattr(settings, name)
    if has_secret(value):
        raise ConfigurationError(
            f"Settings.{name} {redacted_url(value)!r} holds a credential: set it through {URL_SETTING_ENV[name]} "
            "(Settings.from_env), so Dagster reads it from the environment and never shows or stores it")
    return value


def _config_source(settings: Settings, name: str) -> str | dict[str, str]:
    """A URL setting as Dagster config (``StringSource``): ``{"env": NAME}`` when it holds a credential."""
    value = url_setting(settings, name)
    return {"env": value.env_var_name} if isinstance(value, dg.EnvVar) else value


def store_provenance(settings: Settings) -> dict[str, Any]:
    """The store resources' build provenance fields: the image's commit, dirty flag and digest, and whether a
    write must record a commit (production)."""
    build = settings.provenance
    return {"git_commit": build.commit, "git_dirty": build.dirty, "image_digest": build.image_digest,
            "require_git_commit": settings.deployment == "production"}


def monitoring_resources(settings: Settings) -> dict[str, Any]:
    """``pager`` and ``research``: the two alert routes, each with its outbox under ``settings.outbox_dir``
    (or, when ``settings.outbox_url`` is set, in that database).

    Endpoints come from the settings: the PagerDuty routing key and the Slack webhook URL are secrets,
    read by Dagster from the environment variables the settings name (``dg.EnvVar``); without them an
    alert is delivered to the local outbox only.
    """
    outbox: dict[str, Any] = {"outbox_dir": str(settings.outbox_dir)}
    if settings.outbox_url:  # the database; read from the environment at run time if it holds a password
        secret = has_secret(settings.outbox_url)  # a password in the userinfo or the query (?password=)
        outbox = {"outbox_url": dg.EnvVar(OUTBOX_URL_ENV) if secret else settings.outbox_url}
    pager: dict[str, Any] = dict(outbox)
    if settings.pagerduty_events_url:
        pager["events_url"] = settings.pagerduty_events_url
    if settings.pagerduty_routing_key_env:
        pager["routing_key"] = dg.EnvVar(settings.pagerduty_routing_key_env)
    research: dict[str, Any] = dict(outbox)
    if settings.slack_webhook_env:
        research["slack_webhook_url"] = dg.EnvVar(settings.slack_webhook_env)
    return {"pager": PagerResource(**pager), "research": ResearchResource(**research)}


def build_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """The executor ``settings.executor`` names; None for ``multiprocess`` (Dagster's default, left unset).

    ``celery`` (``dagster_celery.celery_executor`` on the settings' broker and backend: each step a task
    taken by one of the Celery workers) and ``k8s`` (``dagster_k8s.k8s_job_executor``: each step a
    Kubernetes job) come from the ``production`` extra, imported only when named, so the embedded default
    needs neither.

    Raises:
        ConfigurationError: the executor's package is not installed.
    """
    if settings.executor == "in_process":
        return dg.in_process_executor
    if settings.executor == "celery":
        celery = _production_module("dagster_celery", "celery")
        config = {"broker": _config_source(settings, "celery_broker")}
        if settings.celery_backend:
            config["backend"] = _config_source(settings, "celery_backend")
        return celery.celery_executor.configured(config, name="celery_executor")
    if settings.executor == "k8s":
        return _production_module("dagster_k8s", "k8s").k8s_job_executor
    return None


def _production_module(name: str, executor: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigurationError(f"ML_PLATFORM_EXECUTOR={executor} needs {name}, which is not installed ({exc}); "
                                 "install the production extra (pip install 'ml_platform[production]')") from exc


def check_asset_keys(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> None:
    """Refuse two assets with one key (two graphs built without distinct ``key_prefix`` values).

    Raises:
        GraphError: naming every colliding key and what to do.
    """
    seen: dict[dg.AssetKey, int] = {}
    for asset in assets:
        keys = asset.keys if isinstance(asset, dg.AssetsDefinition) else [asset.key]
        for key in keys:
            seen[key] = seen.get(key, 0) + 1
    clashes = sorted(key.to_user_string() for key, count in seen.items() if count > 1)
    if clashes:
        raise GraphError(
            f"asset key collision: {', '.join(clashes)} defined more than once; build each team's graph with its "
            "own key_prefix (build_feature_assets(..., key_prefix='team_a') and the same prefix for "
            "build_model_assets)"
        )


def build_definitions(
    settings: Settings,
    *,
    assets: Sequence[dg.AssetsDefinition | dg.AssetSpec],
    jobs: Sequence[Any] = (),
    schedules: Sequence[Any] = (),
    sensors: Sequence[Any] = (),
    asset_checks: Sequence[Any] = (),
    resources: Mapping[str, Any] | None = None,
) -> dg.Definitions:
    """The Definitions of a project on one deployment: its assets and jobs plus the platform's resources.

    Args:
        settings: where the store and the registry live, and the environment policy.
        assets: every asset (from ``build_feature_assets`` / ``build_model_assets`` and the project's own).
        jobs / schedules / sensors / asset_checks: the project's own (schedules and sensors are left out
            when ``settings.reproduction``: a reproduction's deployment must not page or trade).
        resources: extra resources; they may not replace the platform's three.

    Under ``settings.key_namespace`` (an old commit loaded by ``ml-platform reproduce`` beside production's
    code location) every asset key gets that prefix, dependencies included, and only the assets and the
    resources are kept: the project's jobs, checks, schedules and sensors select its unprefixed keys, and a
    reproduction materializes assets only. The IO manager strips the prefix, so the store keys are the same.

    Raises:
        GraphError: two assets share a key.
        ConfigurationError: ``resources`` tries to replace a platform resource, or ``settings.executor``
            needs a package that is not installed.

    The Definitions' executor is :func:`build_executor`'s (``settings.executor``).
    """
    check_asset_keys(assets)
    platform = platform_resources(with_project_root(settings, assets))
    clash = sorted(set(resources or {}) & set(platform))
    if clash:
        raise GraphError(f"resources {clash} are the platform's own (configured from Settings); name yours differently")
    if settings.reproduction:  # a reproduction's isolated deployment only backfills and retrains the record
        schedules, sensors = (), ()
    executor = build_executor(settings)
    if settings.key_namespace:
        return dg.Definitions(assets=namespaced_assets(assets, settings.key_namespace),
                              resources={**platform, **dict(resources or {})}, executor=executor)
    return dg.Definitions(assets=list(assets), jobs=list(jobs), schedules=list(schedules), sensors=list(sensors),
                          asset_checks=list(asset_checks), resources={**platform, **dict(resources or {})},
                          executor=executor)


def with_project_root(settings: Settings, assets: Sequence[dg.AssetsDefinition | dg.AssetSpec]) -> Settings:
    """``settings`` with the project root the feature assets declare (``ml_platform/project_root``) when the
    settings name none (``ML_PLATFORM_PROJECT_ROOT`` unset) and the assets agree on one.

    A write records the ``uv.lock`` found from the graph's project root; a read compares the stored lock with
    the running one, captured from the store's project root, or else from the working directory. A process
    whose working directory is not the project's (a Celery worker, a code server started elsewhere) would
    find no lock there and, under ``strict``, refuse every stored partition.
    """
    if settings.project_root is not None:
        return settings
    declared = [spec.metadata.get(PROJECT_ROOT) for asset in assets if isinstance(asset, dg.AssetsDefinition)
                for spec in asset.specs]
    roots = {str(getattr(value, "value", value)) for value in declared if value}
    return dataclasses.replace(settings, project_root=roots.pop()) if len(roots) == 1 else settings


def namespaced_assets(assets: Sequence[dg.AssetsDefinition | dg.AssetSpec],
                      namespace: Sequence[str]) -> list[dg.AssetsDefinition | dg.AssetSpec]:
    """``assets`` with every key, and every dependency between them, under ``namespace`` (Dagster's own
    ``load_assets_from_modules(key_prefix=...)``; op names, and so run config, stay the same).

    Raises:
        GraphError: an asset is not an ``AssetsDefinition`` (an external ``AssetSpec`` would keep its key).
    """
    external = [a.key.to_user_string() for a in assets if not isinstance(a, dg.AssetsDefinition)]
    if external:
        raise GraphError(f"assets {external} are specs, not computed assets: a key namespace cannot move them; "
                         "declare them as assets of the project or run the reproduction in its own instance")
    holder = types.ModuleType("ml_platform_namespaced_assets")
    for i, asset in enumerate(assets):
        setattr(holder, f"asset_{i:06d}", asset)
    return list(dg.load_assets_from_modules([holder], key_prefix=list(namespace)))  # type: ignore[arg-type]
