"""The MLflow boundary: MLflow failures re-raised as ml_platform errors, clean-up, URI helpers.

Everything here is small and stateless; :mod:`ml_platform.registry.store` uses it around every
client call so that no ``MlflowException`` escapes the registry layer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from ml_platform.errors import MLPlatformError, ModelNotFound, RegistryError
from ml_platform.registry.entities import STATUS_TAG, VersionStatus

__all__ = [
    "abandon_registration", "as_uri", "from_millis", "mlflow_errors", "quiet_mlflow", "sha256_of",
    "sqlite_database_path",
]

logger = logging.getLogger(__name__)


def quiet_mlflow() -> None:
    """Switch MLflow's usage telemetry and artefact progress bars off unless the process chose otherwise.

    The platform runs in restricted networks and must not phone home. MLflow reads both variables
    each time it would record an event or draw a bar, so setting them before the registry's first
    client call is enough; a value the process already set (either way) is kept.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def sha256_of(data: bytes) -> str:
    """``"sha256:<hex>"`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def as_uri(location: str) -> str:
    """A local path becomes a ``file://`` URI; URIs are kept as they are."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", location):
        return location.rstrip("/")
    return Path(location).expanduser().resolve().as_uri()


def sqlite_database_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (relative or absolute), else ``None``."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return None
    return Path(uri[len("sqlite:///"):])


@contextmanager
def mlflow_errors(action: str, *, missing: str | None = None) -> Iterator[None]:
    """Re-raise MLflow failures met while doing ``action`` as ml_platform errors."""
    try:
        yield
    except MLPlatformError:
        raise
    except MlflowException as exc:
        if missing is not None and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFound(missing) from exc
        raise RegistryError(f"MLflow failed to {action}: {exc.message}") from exc
    except OSError as exc:
        raise RegistryError(f"MLflow failed to {action}: {exc}") from exc


def from_millis(value: int | None) -> dt.datetime:
    """An MLflow millisecond timestamp as an aware UTC datetime (``None`` -> the epoch)."""
    millis = 0 if value is None else int(value)
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)


def abandon_registration(
    client: MlflowClient, name: str, version: str | None, run_id: str, *, created_model: bool
) -> None:
    """Best-effort clean-up of a failed registration; never raises (the original error is the one to report).

    Tags the version ``failed`` (so readers refuse it even if what follows fails), deletes it, deletes
    the registered model if this registration created it and it is left empty, and marks the run
    FAILED with the same status tag.
    """
    steps: list[tuple[str, Callable[[], object]]] = []
    if version is not None:
        steps.append((f"tag version {version} failed",
                      lambda: client.set_model_version_tag(name, version, STATUS_TAG, VersionStatus.FAILED)))
        steps.append((f"delete version {version}", lambda: client.delete_model_version(name, version)))
    if created_model:
        steps.append(("delete the empty registered model", lambda: _delete_if_empty(client, name)))
    steps.append(("tag the run failed", lambda: client.set_tag(run_id, STATUS_TAG, VersionStatus.FAILED)))
    steps.append(("mark the run FAILED", lambda: client.set_terminated(run_id, "FAILED")))
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - clean-up must not mask the registration error
            logger.error("clean-up of the failed registration of %r: could not %s: %s", name, what, exc)


def _delete_if_empty(client: MlflowClient, name: str) -> None:
    if not client.search_model_versions(f"name='{name}'", max_results=1):
        client.delete_registered_model(name)
