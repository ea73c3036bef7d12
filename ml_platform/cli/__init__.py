"""The ``ml-platform`` command: thin commands over the library, one module per concern.

Importing a command module imports neither Dagster nor MLflow; a command imports what it needs when
it runs, so ``ml-platform --help`` and the store's commands start fast.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from ml_platform.cli.champions import audit, history, rollback
from ml_platform.cli.environment import environment
from ml_platform.cli.features import graph
from ml_platform.cli.init import init
from ml_platform.cli.models import models, registry
from ml_platform.cli.monitoring import monitoring
from ml_platform.cli.params import printable
from ml_platform.cli.promote import promote
from ml_platform.cli.reproduce import reproduce
from ml_platform.cli.store import env, gc, migrate_store_command, verify
from ml_platform.cli.trace import trace
from ml_platform.errors import ConfigurationError, MLPlatformError
from ml_platform.redact import redacted_url

__all__ = ["main"]


def _one_line(text: str) -> str:
    return printable(redacted_url(" ".join(part.strip() for part in text.splitlines() if part.strip())))


class _Group(click.Group):
    """Turns every deliberate platform error and every refused argument into one stderr line and exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:  # an option of the group itself: `ml-platform --bogus`
            _refuse(exc, ctx)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except MLPlatformError as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            sys.exit(2)
        except click.UsageError as exc:
            _refuse(exc, ctx)


def _refuse(exc: click.UsageError, ctx: click.Context) -> NoReturn:
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        raise exc  # a bare group: click prints its help, as asked
    where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
    click.echo(f"error: [{ConfigurationError.code}] {where}: {_one_line(exc.format_message())} "
               f"(see `{where} --help`)", err=True)
    sys.exit(exc.exit_code)


@click.group(cls=_Group)
@click.version_option(package_name="ml-platform")
def main() -> None:
    """ml_platform: content-addressed features, pinned environments, contract-checked models."""


for _command in (graph, verify, gc, env, models, registry, init, rollback, history, audit, promote, reproduce, trace,
                 monitoring, migrate_store_command, environment):
    main.add_command(_command)

