"""The stack's environment: the production variables every service and client reads, and each process's own
home, working directory and temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BUCKET", "PROCESS_FOLDERS", "Ports", "ProcessHome", "git_provenance", "process_env", "production_env"]

BUCKET = "ml-platform"
FEATURES = f"s3://{BUCKET}/features"
MLFLOW_ARTIFACTS_DESTINATION = f"s3://{BUCKET}/mlflow"
COMPUTE_LOG_PREFIX = "dagster/compute-logs"
PG_USER = "ml_platform"
DAGSTER_DB = "dagster"
MLFLOW_DB = "mlflow"
REGION = "us-east-1"
#: The folders of a process's own local disk (under ``homes/<service>``): what a test walks afterwards.
PROCESS_FOLDERS = ("home", "ml_platform", "tmp", "dagster", "cwd")


@dataclass(frozen=True)
class Ports:
    postgres: int
    s3: int
    redis: int
    mlflow: int
    code_server: int
    webserver: int


@dataclass(frozen=True)
class ProcessHome:
    """One process's own local disk: ``homes/<name>/{home,ml_platform,tmp,dagster,cwd}``."""

    root: Path

    @property
    def cwd(self) -> Path:
        return self.root / "cwd"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    def create(self, dagster_yaml: Path) -> None:
        for name in PROCESS_FOLDERS:
            (self.root / name).mkdir(parents=True, exist_ok=True)
        link = self.dagster_home / "dagster.yaml"
        if not link.is_symlink():
            link.symlink_to(dagster_yaml)  # exactly the production file, not a copy of it


def git_provenance(repo: Path) -> dict[str, str]:
    """``ML_PLATFORM_GIT_COMMIT`` and ``ML_PLATFORM_GIT_DIRTY`` of the checkout (an image would be given them by its
    build); empty when ``repo`` is no git checkout. No image here, so no ``ML_PLATFORM_IMAGE_DIGEST``."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                              timeout=60).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"ML_PLATFORM_GIT_COMMIT": commit, "ML_PLATFORM_GIT_DIRTY": "1" if dirty else "0"}


def production_env(ports: Ports, *, pg_password: str, s3_key: str, s3_secret: str, repo: Path) -> dict[str, str]:
    """The production variables (deployments/production/README.md) pointing at this stack's services.

    Secrets travel only in variables: ``DAGSTER_PG_PASSWORD`` (Dagster) and ``PGPASSWORD`` (libpq: MLflow's
    server, the ledger, the outboxes), never inside a URL.
    """
    s3 = f"http://127.0.0.1:{ports.s3}"
    redis = f"redis://127.0.0.1:{ports.redis}"
    pg = f"postgresql+psycopg://{PG_USER}@127.0.0.1:{ports.postgres}/{MLFLOW_DB}"
    return {
        "DAGSTER_PG_USERNAME": PG_USER, "DAGSTER_PG_PASSWORD": pg_password, "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(ports.postgres), "DAGSTER_PG_DB": DAGSTER_DB, "PGPASSWORD": pg_password,
        "DAGSTER_COMPUTE_LOG_BUCKET": BUCKET, "DAGSTER_COMPUTE_LOG_PREFIX": COMPUTE_LOG_PREFIX,
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1", "DAGSTER_CODE_SERVER_PORT": str(ports.code_server),
        "ML_PLATFORM_DEPLOYMENT": "production", "ML_PLATFORM_STORAGE": FEATURES,
        "ML_PLATFORM_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports.mlflow}",
        "ML_PLATFORM_MLFLOW_ARTIFACTS": "mlflow-artifacts:/experiments",
        "ML_PLATFORM_LEDGER_URL": pg, "ML_PLATFORM_OUTBOX_URL": pg,
        "ML_PLATFORM_EXECUTOR": "celery",
        "ML_PLATFORM_CELERY_BROKER": f"{redis}/0", "ML_PLATFORM_CELERY_BACKEND": f"{redis}/1",
        "AWS_ACCESS_KEY_ID": s3_key, "AWS_SECRET_ACCESS_KEY": s3_secret, "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": s3, "MLFLOW_S3_ENDPOINT_URL": s3,
        "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
        **git_provenance(repo),
    }


def process_env(stack: Mapping[str, str], home: ProcessHome) -> dict[str, str]:
    """This process's environment, without any ``ML_PLATFORM_``/``DAGSTER_``/``AWS_``/``PG`` variable of the
    caller's, plus the stack's and the process's own home, ``ML_PLATFORM_HOME``, ``TMPDIR`` and ``DAGSTER_HOME``;
    the virtual environment's ``bin`` first on ``PATH`` (``dagster-celery`` runs ``celery`` from it)."""
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("ML_PLATFORM_", "DAGSTER_", "AWS_", "MLFLOW_", "PG", "CELERY"))}
    venv_bin = str(Path(sys.executable).parent)
    return {**inherited, **stack, "HOME": str(home.root / "home"), "ML_PLATFORM_HOME": str(home.root / "ml_platform"),
            "TMPDIR": str(home.root / "tmp"), "DAGSTER_HOME": str(home.dagster_home), "PYTHONUNBUFFERED": "1",
            "PATH": f"{venv_bin}{os.pathsep}{inherited.get('PATH', '')}"}
