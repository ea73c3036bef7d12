"""``ml-platform reproduce MODEL VERSION --workdir DIR [--repo PATH] [--defs module:attr]``.

Exit codes: 0 bit-exact, 1 reproduced with a difference (the first one is printed; the certificate lists
all), 2 bad input or a record that cannot be reproduced (nothing written outside the work directory).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ml_platform.cli.models import check_registry_exists
from ml_platform.cli.params import (
    MAX_ARGUMENT,
    BoundedText,
    FiniteNumber,
    ModelName,
    PathText,
    VersionNumber,
    WritableDir,
)

__all__ = ["reproduce"]


@click.command()
@click.argument("model", type=ModelName())
@click.argument("version", type=VersionNumber())
@click.option("--workdir", required=True, type=WritableDir(),
              help="A new or empty directory: the checkout, its venv, the isolated Dagster, store and MLflow.")
@click.option("--repo", default=".", show_default=True, type=click.Path(exists=True, file_okay=False),
              help="A folder inside the project's git repository.")
@click.option("--defs", "defs", default=None, type=BoundedText(MAX_ARGUMENT),
              help="module:attr of the project's Definitions at the recorded commit; default: the one code location "
                   "of that commit's workspace.yaml.")
@click.option("--timeout", "timeout_seconds", default=3600.0, show_default=True,
              type=FiniteNumber(0, 7 * 86_400, open_min=True),
              help="Seconds the backfill and the training run may take each.")
@click.option("--tracking-uri", default=None, type=PathText(), help="Production's MLflow; default: the ML_PLATFORM_* settings.")
@click.option("--base-dir", default=None, type=PathText(), help="Production's store; default: the ML_PLATFORM_* settings.")
@click.option("--dagster-url", default=None, type=BoundedText(MAX_ARGUMENT),
              help="Production's Dagster webserver: run the old commit as a second code location beside production's "
                   "(keys under repro/<commit>), its backfill on production's backfills page. Default: an isolated "
                   "Dagster in the work directory.")
@click.option("--reproductions-workspace", type=click.Path(dir_okay=False), default=None,
              help="With --dagster-url: the workspace file of reproductions' locations that production's webserver "
                   "and daemon load besides their own (-w); default: $DAGSTER_HOME/reproductions.yaml.")
@click.option("--daemon-refresh", default=60.0, show_default=True, type=FiniteNumber(0, 86_400, open_min=True),
              help="With --dagster-url: seconds between production's daemon's re-reads of its workspace.")
@click.option("--keep-location", is_flag=True, help="With --dagster-url: leave the old commit's location loaded.")
def reproduce(model: str, version: str, workdir: str, repo: str, defs: str | None, timeout_seconds: float,
              tracking_uri: str | None, base_dir: str | None, dagster_url: str | None,
              reproductions_workspace: str | None, daemon_refresh: float, keep_location: bool) -> None:
    """Rebuild MODEL VERSION from its record (commit, lock, source data, seeds) by a Dagster backfill and certify it."""
    from ml_platform.errors import ConfigurationError
    from ml_platform.io.store import PinnedStore
    from ml_platform.registry.store import ModelRegistry
    from ml_platform.reproduce.beside import BesideProduction
    from ml_platform.reproduce.service import reproduce_version
    from ml_platform.settings import Settings

    settings = Settings.from_env(os.environ)
    check_registry_exists(tracking_uri or settings.tracking_uri)
    registry = ModelRegistry(tracking_uri or settings.tracking_uri, artifact_location=settings.artifact_location)
    store = PinnedStore(base_dir or settings.storage)
    if not store.filesystem.root_exists():
        raise ConfigurationError(f"no storage at {store.base}: pass production's --base-dir or set ML_PLATFORM_HOME")
    beside = None
    if dagster_url:
        if reproductions_workspace is None and not os.environ.get("DAGSTER_HOME"):
            raise ConfigurationError("--dagster-url needs --reproductions-workspace (or DAGSTER_HOME, whose "
                                     "reproductions.yaml is the default)")
        beside = BesideProduction(dagster_url, Path(reproductions_workspace or Path(os.environ["DAGSTER_HOME"]) /
                                                    "reproductions.yaml").absolute(),
                                  daemon_refresh_seconds=daemon_refresh, keep_location=keep_location)
    elif reproductions_workspace or keep_location:
        raise ConfigurationError("--reproductions-workspace and --keep-location go with --dagster-url")
    outcome = reproduce_version(model, version, workdir=workdir, registry=registry, store=store, repo=repo, defs=defs,
                                timeout_seconds=timeout_seconds, beside=beside,
                                say=lambda line: click.echo(f"  {line}"))
    cert = outcome.certificate
    for kind, (equal, total) in cert.counts().items():
        click.echo(f"  {kind:<13} {equal}/{total} equal")
    click.echo(cert.verdict())
    if outcome.stored is not None:
        click.echo(f"certificate: {outcome.stored.json_ref} ({outcome.stored.sha256}); also {outcome.workdir}/"
                   "certificate.md")
    click.get_current_context().exit(cert.exit_code)
