"""The MLflow boundary: MLflow failures re-raised as ml_platform errors, clean-up, URI helpers.

Everything here is small and stateless; :mod:`ml_platform.registry.store` uses it around every
client call so that no ``MlflowException``, SQLAlchemy or database driver error escapes the
registry layer.
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

from ml_platform.database import DatabaseCause, database_cause
from ml_platform.errors import MLPlatformError, ModelNotFound, RegistryError, RegistryUnavailable
from ml_platform.network import connection_cause, server_address
from ml_platform.redact import redacted_url, shareable_cause
from ml_platform.registry.entities import STATUS_TAG, VersionStatus

__all__ = [
    "abandon_registration", "as_uri", "database_error", "from_millis", "mlflow_errors", "quiet_mlflow", "sha256_of",
    "sqlite_database_path", "store_label", "unreachable_server",
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
    """A local path becomes a ``file://`` URI; URIs are kept as they are.

    A URI is ``scheme:`` with a scheme of two or more characters (one letter is a Windows drive), with or without
    ``//``: MLflow's proxied artefact root is ``mlflow-artifacts:/path`` (``--serve-artifacts``), which read as a
    path would put every artefact on the local disk of whichever worker logged it.
    """
    if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]+:", location):
        return location.rstrip("/")
    return Path(location).expanduser().resolve().as_uri()


def sqlite_database_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (relative or absolute), else ``None``."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return None
    return Path(uri[len("sqlite:///"):])


#: The codes MLflow's SQL session wrapper gives the database errors it re-raises; other codes
#: (``RESOURCE_ALREADY_EXISTS`` from a unique-key clash, ...) carry MLflow's own, better message.
_WRAPPED_DATABASE_ERROR_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "BAD_REQUEST", "INTERNAL_ERROR"})


@contextmanager
def mlflow_errors(
    action: str, *, missing: str | None = None, store: str | None = None, busy_timeout: float | None = None
) -> Iterator[None]:
    """Re-raise every failure met while doing ``action`` through MLflow as an ml_platform error.

    A database failure anywhere in the chain (SQLAlchemy, :mod:`sqlite3`, psycopg), whether MLflow
    wrapped it in an ``MlflowException`` or let it escape, becomes a :class:`RegistryError` that names
    the store and the driver's message first (:func:`database_error`); a busy or unreachable store is
    a :class:`RegistryUnavailable`, and so is an MLflow tracking server that cannot be reached once the
    client's own retries ran out (:func:`unreachable_server`). ``RESOURCE_DOES_NOT_EXIST`` becomes :class:`ModelNotFound` when
    ``missing`` says what is missing. Anything else MLflow raises becomes a :class:`RegistryError`
    naming ``action``, so no third-party exception leaves the registry layer.

    Args:
        action: What was being done, for the message (``"list registered models"``).
        missing: Message of the :class:`ModelNotFound` raised for ``RESOURCE_DOES_NOT_EXIST``.
        store: The store's URI, credentials hidden (:func:`store_label`).
        busy_timeout: How long a busy SQLite database was waited on, for the message.
    """
    try:
        yield
    except MLPlatformError:
        raise
    except MlflowException as exc:
        unreachable = unreachable_server(exc, action, store)
        if unreachable is not None:
            raise unreachable from shareable_cause(exc)
        cause = database_cause(exc) if exc.error_code in _WRAPPED_DATABASE_ERROR_CODES else None
        if cause is not None:
            raise database_error(cause, action, store, busy_timeout) from shareable_cause(exc)
        if missing is not None and exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ModelNotFound(missing) from shareable_cause(exc)
        message = f"{_where(store)}failed to {action}: {redacted_url(exc.message)}"
        raise RegistryError(message) from shareable_cause(exc)
    except Exception as exc:  # noqa: BLE001 - chained unless its text holds a credential (shareable_cause)
        unreachable = unreachable_server(exc, action, store)
        if unreachable is not None:
            raise unreachable from shareable_cause(exc)
        cause = database_cause(exc)
        if cause is not None:
            raise database_error(cause, action, store, busy_timeout) from shareable_cause(exc)
        detail = str(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        raise RegistryError(f"{_where(store)}failed to {action}: {redacted_url(detail)}") from shareable_cause(exc)


def unreachable_server(exc: BaseException, action: str, store: str | None) -> RegistryUnavailable | None:
    """The error for an MLflow tracking server (``http(s)://``) that could not be reached, else ``None``.

    It names the server's address and what was being done; a server that answered, even with an error,
    is not one (MLflow's own message says more).
    """
    if store is None or not store.startswith(("http://", "https://")):
        return None
    cause = connection_cause(exc)
    if cause is None:
        return None
    return RegistryUnavailable(
        f"MLflow server at {server_address(store)} unreachable ({cause.message}) while trying to {action}; check "
        "that the MLflow tracking server is up and reachable at that address (ML_PLATFORM_MLFLOW_TRACKING_URI), "
        "then run again")


def _where(store: str | None) -> str:
    return "MLflow " if store is None else f"MLflow store {redacted_url(store)}: "


def database_error(cause: DatabaseCause, action: str, store: str | None, busy_timeout: float | None) -> RegistryError:
    """The error for a database failure: the store and the driver's message first, then what was being done."""
    where = "MLflow store" if store is None else f"MLflow store {redacted_url(store)}"
    head = f"{where}: {redacted_url(cause.message)} ({cause.kind})"
    if cause.busy:
        waited = "" if busy_timeout is None else f" after waiting {busy_timeout:g} s"
        return RegistryUnavailable(
            f"{head}: still locked by another connection{waited}, while trying to {action}; retry when the other "
            "process has finished, or wait longer (ModelRegistry(busy_timeout_seconds=...), --busy-timeout)"
        )
    if cause.unreachable:
        return RegistryUnavailable(f"{head}, while trying to {action}; check that the database server is up and "
                                   "reachable and the URI is right")
    hint = ""
    if "readonly" in cause.message.lower() or "read-only" in cause.message.lower():
        hint = "; make the database file and its folder writable for this user"
    return RegistryError(f"{head}, while trying to {action}{hint}")


def store_label(uri: str) -> str:
    """``uri`` fit for a message: a password in it is replaced by ``***`` (:func:`~ml_platform.redact.redacted_url`)."""
    return redacted_url(uri)


def from_millis(value: int | None) -> dt.datetime:
    """An MLflow millisecond timestamp as an aware UTC datetime (``None`` -> the epoch)."""
    millis = 0 if value is None else int(value)
    return dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)


def abandon_registration(client: MlflowClient, name: str, run_id: str, *, created_model: bool) -> None:
    """Best-effort clean-up of a registration that failed before its version existed; never raises.

    Deletes the registered model if this registration created it and it is still empty, and marks the
    run FAILED with ``ml_platform.status=failed``. What this cannot do (registry down, process killed)
    ``ml-platform registry repair`` finishes later. The original error is the one to report.
    """
    steps: list[tuple[str, Callable[[], object]]] = []
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
