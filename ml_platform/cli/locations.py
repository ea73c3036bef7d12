"""Where the ``ml-platform`` commands find the store and the registry: flag, ``--defs``, or settings.

Precedence: an explicit flag (``--base-dir``, ``--tracking-uri``), then the resources of the project's
Definitions named by ``--defs``, then the deployment settings of the environment
(:meth:`~ml_platform.settings.Settings.from_env`: ``ML_PLATFORM_HOME``, ``ML_PLATFORM_STORAGE``, ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from ml_platform.cli.params import MAX_ARGUMENT, BoundedText
from ml_platform.errors import ConfigurationError
from ml_platform.settings import Settings

__all__ = ["defs_option", "registry_location", "store_location"]

DEFS_HELP = ("Read the store/registry from this project's Definitions resources (module:attr); default: "
             "the ML_PLATFORM_* settings of the environment (ML_PLATFORM_HOME, ...).")


def defs_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--defs", "defs_target", default=None, type=BoundedText(MAX_ARGUMENT), help=DEFS_HELP)(command)


def _resource(defs_target: str, name: str) -> Any:
    from ml_platform.workspace import load_definitions

    loaded = load_definitions(defs_target)
    value = loaded.resource(name)
    if value is None:
        raise ConfigurationError(f"{loaded.target} has no {name!r} resource; build it with ml_platform.build_definitions")
    return value


def store_location(base_dir: str | None, policy: str | None, defs_target: str | None) -> tuple[str, str]:
    """``(base_dir, environment_policy)`` of the store the command reads."""
    if defs_target is not None:
        manager = _resource(defs_target, "io_manager")
        return base_dir or manager.base_dir, policy or manager.environment_policy
    settings = Settings.from_env(os.environ)
    return base_dir or settings.storage, policy or settings.environment_policy


def registry_location(tracking_uri: str | None, defs_target: str | None) -> tuple[str, str | None]:
    """``(tracking_uri, artifact_location)`` of the registry the command reads."""
    if defs_target is not None:
        registry = _resource(defs_target, "model_registry")
        return tracking_uri or registry.tracking_uri, registry.artifact_location
    settings = Settings.from_env(os.environ)
    return tracking_uri or settings.tracking_uri, settings.artifact_location
