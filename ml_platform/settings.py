"""Deployment settings: where the embedded default keeps things, and the production overrides.

A frozen value object; :meth:`Settings.from_env` is the only place the library reads environment
variables (a project's ``definitions.py`` and the ``ml-platform`` command call it), everything else
receives it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ml_platform.environment import BuildProvenance, EnvironmentPolicy
from ml_platform.environment.provenance import COMMIT_ENV, DIRTY_ENV, IMAGE_DIGEST_ENV
from ml_platform.errors import ConfigurationError
from ml_platform.redact import has_secret, redacted_url, secret_values

DEPLOYMENTS = ("local", "production")
POLICIES = tuple(policy.value for policy in EnvironmentPolicy)
PAGER_KEY_ENV = "ML_PLATFORM_PAGERDUTY_ROUTING_KEY"
SLACK_WEBHOOK_ENV = "ML_PLATFORM_SLACK_WEBHOOK_URL"
REPRODUCTION_ENV = "ML_PLATFORM_REPRODUCTION"
KEY_NAMESPACE_ENV = "ML_PLATFORM_KEY_NAMESPACE"
DEPLOYMENT_ENV = "ML_PLATFORM_DEPLOYMENT"
LEDGER_URL_ENV = "ML_PLATFORM_LEDGER_URL"
EXECUTOR_ENV = "ML_PLATFORM_EXECUTOR"
CELERY_BROKER_ENV = "ML_PLATFORM_CELERY_BROKER"
CELERY_BACKEND_ENV = "ML_PLATFORM_CELERY_BACKEND"
#: How a run executes its steps: Dagster's default (a process per step on the run worker), all in the run
#: worker, spread over Celery workers (a broker such as Redis), or each step a Kubernetes job.
EXECUTORS = ("multiprocess", "in_process", "celery", "k8s")
#: The environment variable of each setting whose value may hold a credential (a password in a URL).
URL_SETTING_ENV = {"storage": "ML_PLATFORM_STORAGE", "tracking_uri": "ML_PLATFORM_MLFLOW_TRACKING_URI",
                   "artifact_location": "ML_PLATFORM_MLFLOW_ARTIFACTS", "celery_broker": CELERY_BROKER_ENV,
                   "celery_backend": CELERY_BACKEND_ENV}
OUTBOX_URL_ENV = "ML_PLATFORM_OUTBOX_URL"
_SEGMENT = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class Settings:
    """Where the platform stores features, runs and models, and how strictly it checks environments.

    Attributes:
        deployment: ``local`` (embedded: SQLite, local files under ``home``) or ``production``.
        home: root folder of the embedded default (``.ml_platform`` in the working directory).
        storage: base directory or fsspec URI of the PinnedIOManager's Parquet + manifests.
        tracking_uri: MLflow tracking/registry URI (SQLite file by default, PostgreSQL in production).
        artifact_location: MLflow artefact root for new experiments.
        environment_policy: ``warn`` on the embedded default, ``strict`` in production.
        project_root: the project folder whose ``uv.lock`` and git commit are recorded for assets that
            do not name their own (feature and model assets name their graph's); None: the working directory.
        pagerduty_events_url: the PagerDuty Events API v2 enqueue URL of the pager route (None: PagerDuty's).
        pagerduty_routing_key_env: the environment variable holding the pager's routing key (a secret, so
            only its name is kept; Dagster reads it through ``dg.EnvVar``); None: no pager endpoint, the
            outbox only.
        slack_webhook_env: the environment variable holding the research route's Slack incoming-webhook
            URL (a secret too); None: the outbox and MLflow only.
        reproduction: the deployment is a reproduction's isolated one (``ML_PLATFORM_REPRODUCTION=1``, set
            by ``ml-platform reproduce``): ``build_definitions`` leaves out schedules and sensors, since it
            only backfills and retrains what was recorded.
        key_namespace: an asset key prefix over the whole project (``ML_PLATFORM_KEY_NAMESPACE=repro/6e2072de7333``,
            set by ``ml-platform reproduce`` for an old commit loaded beside production's code location):
            ``build_definitions`` prefixes every asset key with it and keeps only the assets, and the IO
            manager strips it, so the store keys (and every byte written) are the project's own.
        executor: how a run executes its steps, one of :data:`EXECUTORS` (``ML_PLATFORM_EXECUTOR``;
            ``multiprocess``, Dagster's default, when unset). ``build_definitions`` sets it on the Definitions.
        celery_broker / celery_backend: the Celery broker and result backend URLs of the ``celery`` executor
            (``ML_PLATFORM_CELERY_BROKER``, required with it, and ``ML_PLATFORM_CELERY_BACKEND``, default
            Celery's ``rpc://``); the workers must be started with the same two.
        secret_envs: ``(setting, environment variable)`` for each setting of :data:`URL_SETTING_ENV` read from
            the environment whose value holds a credential (``postgresql://ml:<password>@...``): Dagster is
            handed the variable (``dg.EnvVar``), never the value, so it neither shows nor stores it.
        provenance: the running image's build provenance (``ML_PLATFORM_GIT_COMMIT``, ``ML_PLATFORM_GIT_DIRTY``,
            ``ML_PLATFORM_IMAGE_DIGEST``): the commit recorded where the project root is no git checkout, and the
            image digest recorded with every artefact. In production a write that would record no commit fails.
        outbox_url: the SQLAlchemy URL of the database keeping the alert outboxes (``ML_PLATFORM_OUTBOX_URL``;
            PostgreSQL in production); None: the JSON-lines files under ``outbox_dir``. Kept out of ``repr``:
            it may hold a password.
    """

    deployment: str
    home: Path
    storage: str
    tracking_uri: str
    artifact_location: str
    environment_policy: str
    project_root: str | None = None
    pagerduty_events_url: str | None = None
    pagerduty_routing_key_env: str | None = None
    slack_webhook_env: str | None = None
    reproduction: bool = False
    key_namespace: tuple[str, ...] = ()
    executor: str = "multiprocess"
    celery_broker: str | None = None
    celery_backend: str | None = None
    secret_envs: tuple[tuple[str, str], ...] = ()
    provenance: BuildProvenance = field(default_factory=BuildProvenance)
    outbox_url: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:  # every URL masked: a log line or an error may show the settings
        shown = ", ".join(f"{f.name}={redacted_url(repr(getattr(self, f.name)))}" for f in fields(self) if f.repr)
        return f"{type(self).__name__}({shown})"

    @property
    def outbox_dir(self) -> Path:
        """Where the pager and research routes keep their outboxes (JSON lines): ``<home>/monitoring/outbox``."""
        return self.home / "monitoring" / "outbox"

    def __post_init__(self) -> None:
        if self.deployment not in DEPLOYMENTS:
            raise ConfigurationError(f"deployment {self.deployment!r} is not one of {DEPLOYMENTS}")
        if self.environment_policy not in POLICIES:
            raise ConfigurationError(
                f"environment policy {self.environment_policy!r} is not one of {POLICIES}"
            )
        unknown = [setting for setting, _ in self.secret_envs if setting not in URL_SETTING_ENV]
        if unknown:
            raise ConfigurationError(f"secret_envs names {unknown}, which are not URL settings "
                                     f"({', '.join(URL_SETTING_ENV)})")
        if self.outbox_url is not None:
            _check_outbox_url(self.outbox_url)
        bad = [part for part in self.key_namespace if not _SEGMENT.fullmatch(part)]
        if bad or not isinstance(self.key_namespace, tuple):
            raise ConfigurationError(f"key namespace {self.key_namespace!r}: give a tuple of key segments of letters, "
                                     f"digits and _ (bad: {bad})")
        _check_executor(self.executor, self.celery_broker)

    @classmethod
    def local(cls, home: str | os.PathLike[str] = ".ml_platform", **overrides: str) -> Settings:
        """The embedded default rooted at ``home``."""
        root = Path(home).resolve()
        values = {
            "deployment": "local",
            "home": root,
            "storage": str(root / "storage"),
            "tracking_uri": f"sqlite:///{root / 'mlflow' / 'mlflow.db'}",
            "artifact_location": str(root / "mlflow" / "artifacts"),
            "environment_policy": "warn",
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read ``ML_PLATFORM_*`` variables; anything unset falls back to the embedded default."""
        deployment = deployment_from_env(env)
        base = cls.local(env.get("ML_PLATFORM_HOME", ".ml_platform"))
        prod = deployment == "production"
        if prod:
            missing = [v for v in ("ML_PLATFORM_STORAGE", "ML_PLATFORM_MLFLOW_TRACKING_URI",
                                   "ML_PLATFORM_MLFLOW_ARTIFACTS") if not env.get(v)]
            if missing:
                raise ConfigurationError(
                    f"ML_PLATFORM_DEPLOYMENT=production needs {', '.join(missing)}; "
                    "set them to the production store, MLflow tracking URI and artefact root"
                )
        secret_envs = tuple((setting, name) for setting, name in URL_SETTING_ENV.items()
                            if has_secret(env.get(name, "")))
        return cls(
            deployment=deployment,
            home=base.home,
            storage=env.get("ML_PLATFORM_STORAGE", base.storage),
            tracking_uri=env.get("ML_PLATFORM_MLFLOW_TRACKING_URI", base.tracking_uri),
            artifact_location=env.get("ML_PLATFORM_MLFLOW_ARTIFACTS", base.artifact_location),
            environment_policy=env.get("ML_PLATFORM_ENV_POLICY", "strict" if prod else "warn"),
            project_root=env.get("ML_PLATFORM_PROJECT_ROOT") or None,
            pagerduty_events_url=env.get("ML_PLATFORM_PAGERDUTY_EVENTS_URL") or None,
            pagerduty_routing_key_env=PAGER_KEY_ENV if env.get(PAGER_KEY_ENV) else None,
            slack_webhook_env=SLACK_WEBHOOK_ENV if env.get(SLACK_WEBHOOK_ENV) else None,
            reproduction=_flag(env, REPRODUCTION_ENV),
            key_namespace=parse_key_namespace(env.get(KEY_NAMESPACE_ENV, "")),
            executor=env.get(EXECUTOR_ENV, "").strip() or "multiprocess",
            celery_broker=env.get(CELERY_BROKER_ENV, "").strip() or None,
            celery_backend=env.get(CELERY_BACKEND_ENV, "").strip() or None,
            secret_envs=secret_envs,
            provenance=BuildProvenance.parse(env.get(COMMIT_ENV), env.get(DIRTY_ENV), env.get(IMAGE_DIGEST_ENV)),
            outbox_url=outbox_url_from_env(env),
        )


def deployment_from_env(env: Mapping[str, str]) -> str:
    """``ML_PLATFORM_DEPLOYMENT`` (``local`` when unset), checked, without reading anything else.

    Raises:
        ConfigurationError: it is neither ``local`` nor ``production``.
    """
    deployment = env.get(DEPLOYMENT_ENV, "").strip() or "local"
    if deployment not in DEPLOYMENTS:
        raise ConfigurationError(f"{DEPLOYMENT_ENV}={deployment!r}: use one of {', '.join(DEPLOYMENTS)}")
    return deployment


def environment_secrets() -> tuple[str, ...]:
    """The secrets of this process's environment (:func:`~ml_platform.redact.secret_values`), to check that
    nothing the platform records (a dirty tree's diff, say) holds one."""
    return secret_values(os.environ)


def ledger_url_from_env(env: Mapping[str, str]) -> str | None:
    """``ML_PLATFORM_LEDGER_URL``: the champion ledger's database beside an MLflow server; ``None`` when unset."""
    return env.get(LEDGER_URL_ENV, "").strip() or None


def outbox_url_from_env(env: Mapping[str, str]) -> str | None:
    """``ML_PLATFORM_OUTBOX_URL``, checked to parse as a SQLAlchemy URL; ``None`` when unset.

    Raises:
        ConfigurationError: it does not parse (the message never repeats it: it may hold a password).
    """
    url = env.get(OUTBOX_URL_ENV, "").strip()
    if not url:
        return None
    _check_outbox_url(url)
    return url


def _check_outbox_url(url: str) -> None:
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigurationError(f"{OUTBOX_URL_ENV} is not a SQLAlchemy URL (not shown: it may hold a password); "
                                 "give e.g. postgresql+psycopg://user@host:5432/db, the password in PGPASSWORD, "
                                 "or unset it to keep the outboxes under ML_PLATFORM_HOME") from None


def parse_key_namespace(text: str) -> tuple[str, ...]:
    """``repro/6e2072de7333`` as ``("repro", "6e2072de7333")``; empty text is no namespace.

    Raises:
        ConfigurationError: a segment is empty or holds anything but letters, digits and ``_``.
    """
    if not text.strip():
        return ()
    parts = tuple(text.strip().split("/"))
    bad = [part for part in parts if not _SEGMENT.fullmatch(part)]
    if bad:
        raise ConfigurationError(f"{KEY_NAMESPACE_ENV}={text!r}: segments are letters, digits and _ joined by / "
                                 f"(bad: {bad!r})")
    return parts


def _check_executor(executor: str, broker: str | None) -> None:
    if executor not in EXECUTORS:
        raise ConfigurationError(f"{EXECUTOR_ENV}={executor!r}: use one of {', '.join(EXECUTORS)}")
    if executor == "celery" and not broker:
        raise ConfigurationError(f"{EXECUTOR_ENV}=celery needs {CELERY_BROKER_ENV}: set it to the broker the Celery "
                                 "workers listen on (e.g. redis://127.0.0.1:6379/0)")


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigurationError(f"{name}={env[name]!r}: use 1 or 0")
