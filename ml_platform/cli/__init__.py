"""The ``ml-platform`` command: thin commands over the library, one module per concern.

Importing a command module imports neither Dagster nor MLflow; a command imports what it needs when
it runs, so ``ml-platform --help`` and the store's commands start fast.
"""

from __future__ import annotations

import sys

import click

from ml_platform.cli.champions import audit, history, rollback
from ml_platform.cli.features import graph
from ml_platform.cli.init import init
from ml_platform.cli.models import models, registry
from ml_platform.cli.monitoring import monitoring
from ml_platform.cli.promote import promote
from ml_platform.cli.reproduce import reproduce
from ml_platform.cli.store import env, gc, migrate_store_command, verify
from ml_platform.cli.trace import trace
from ml_platform.errors import MLPlatformError

__all__ = ["main"]


class _Group(click.Group):
    """Turns every deliberate platform error into a one-line message and exit code 2, never a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MLPlatformError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="ml-platform")
def main() -> None:
    """ml_platform: content-addressed features, pinned environments, contract-checked models."""


for _command in (graph, verify, gc, env, models, registry, init, rollback, history, audit, promote, reproduce, trace,
                 monitoring, migrate_store_command):
    main.add_command(_command)

