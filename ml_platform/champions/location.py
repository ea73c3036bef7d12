"""Where a registry's champion ledger lives: the registry's own database, or one named explicitly.

The ledger URL is the registry's ``ledger_url``, else ``ML_PLATFORM_LEDGER_URL``, else the tracking URI
when it is a SQL store (``sqlite:///...``, ``postgresql...``); an MLflow server (HTTP) needs it named.
"""

from __future__ import annotations

import os

from ml_platform.champions.ledger import ChampionLedger
from ml_platform.errors import ConfigurationError
from ml_platform.registry.store import ModelRegistry
from ml_platform.settings import LEDGER_URL_ENV, deployment_from_env, ledger_url_from_env

__all__ = ["ledger_url_of", "open_ledger"]


def ledger_url_of(registry: ModelRegistry) -> str | None:
    """The SQLAlchemy URL of ``registry``'s champion ledger, or ``None`` when there is none to derive."""
    if registry.ledger_url is not None:
        return registry.ledger_url
    from_env = ledger_url_from_env(os.environ)
    if from_env is not None:
        return from_env
    uri = registry.tracking_uri
    if uri.startswith(("sqlite:///", "postgresql")) and uri != "sqlite:///:memory:":
        return uri
    return None


def open_ledger(registry: ModelRegistry, *, production: bool | None = None, read_only: bool = False,
                create: bool = True) -> ChampionLedger:
    """The champion ledger on ``registry``'s database (tables created on first use).

    Args:
        registry: the model registry whose champions the ledger records.
        production: refuse promotion entries that carry no report and rationale (see
            :class:`~ml_platform.champions.ledger.ChampionLedger`); default: ``ML_PLATFORM_DEPLOYMENT=production``.
        read_only: open it only to read (never create or migrate); ``create``: create a missing SQLite file.

    Raises:
        ConfigurationError: the tracking URI is an MLflow server (HTTP) and no ledger URL is set.
    """
    url = ledger_url_of(registry)
    if url is None:
        raise ConfigurationError(
            f"the champion ledger lives in the registry's database, but the tracking URI {registry.store} is not a "
            "SQL store (sqlite:///... or postgresql+psycopg://...): set the ledger's database explicitly with "
            f"ModelRegistry(..., ledger_url=...) or {LEDGER_URL_ENV} (normally the database behind the MLflow server)")
    if production is None:
        production = deployment_from_env(os.environ) == "production"
    return ChampionLedger(url, busy_timeout_seconds=max(registry.busy_timeout_seconds, 0.1), production=production,
                          read_only=read_only, create=create)
