"""The ``ml-platform init`` command (registered by :func:`ml_platform.cli._register_commands`)."""

from __future__ import annotations

import os

import click

from ml_platform.cli.params import PathText
from ml_platform.errors import ConfigurationError
from ml_platform.scaffold import default_project_name, scaffold_project


@click.command("init")
@click.argument("directory", type=PathText())
@click.option("--name", default=None, metavar="NAME",
              help="The project's Python package (default: DIRECTORY's name with '-' as '_').")
def init(directory: str, name: str | None) -> None:
    """Scaffold a new team project in DIRECTORY (new or empty): a feature graph over a bundled prices
    CSV, a model, Dagster definitions on the ml_platform public API, a test of the whole lifecycle and a
    README saying how to run it."""
    package = name if name is not None else default_project_name(directory)
    try:
        written = scaffold_project(directory, package)
    except OSError as exc:  # e.g. a parent that cannot be created (under /proc, a read-only mount)
        raise ConfigurationError(f"cannot create the project in {directory!r}: {exc.strerror or exc}; pick a folder "
                                 "you can write to (nothing was kept)") from exc
    root = os.path.abspath(directory)
    click.echo(f"created project {package!r} in {root} ({len(written)} files):")
    for path in written:
        click.echo(f"  {os.path.relpath(path, root)}")
    click.echo("")
    click.echo("next:")
    click.echo(f"  cd {os.path.relpath(root)}")
    click.echo("  python -m pytest -q                        # the whole lifecycle on temporary storage")
    click.echo(f"  dagster dev -m {package}.definitions      # the Dagster UI")
