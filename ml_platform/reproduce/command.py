"""``ml-platform reproduce MODEL VERSION --workdir DIR [--repo PATH] [--defs module:attr]``.

Exit codes: 0 bit-exact, 1 reproduced with a difference (the first one is printed; the certificate lists
all), 2 bad input or a record that cannot be reproduced (nothing written outside the work directory).
"""

from __future__ import annotations

import os

import click

__all__ = ["reproduce"]


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--workdir", required=True, type=click.Path(file_okay=False),
              help="A new or empty directory: the checkout, its venv, the isolated Dagster, store and MLflow.")
@click.option("--repo", default=".", show_default=True, type=click.Path(exists=True, file_okay=False),
              help="A folder inside the project's git repository.")
@click.option("--defs", "defs", default=None,
              help="module:attr of the project's Definitions at the recorded commit; default: the one code location "
                   "of that commit's workspace.yaml.")
@click.option("--timeout", "timeout_seconds", default=3600.0, show_default=True, type=float,
              help="Seconds the backfill and the training run may take each.")
@click.option("--tracking-uri", default=None, help="Production's MLflow; default: the ML_PLATFORM_* settings.")
@click.option("--base-dir", default=None, help="Production's store; default: the ML_PLATFORM_* settings.")
def reproduce(model: str, version: str, workdir: str, repo: str, defs: str | None, timeout_seconds: float,
              tracking_uri: str | None, base_dir: str | None) -> None:
    """Rebuild MODEL VERSION from its record (commit, lock, source data, seeds) by a Dagster backfill and certify it."""
    from ml_platform.io.store import PinnedStore
    from ml_platform.registry.store import ModelRegistry
    from ml_platform.reproduce.service import reproduce_version
    from ml_platform.settings import Settings

    settings = Settings.from_env(os.environ)
    registry = ModelRegistry(tracking_uri or settings.tracking_uri, artifact_location=settings.artifact_location)
    store = PinnedStore(base_dir or settings.storage)
    outcome = reproduce_version(model, version, workdir=workdir, registry=registry, store=store, repo=repo, defs=defs,
                                timeout_seconds=timeout_seconds, say=lambda line: click.echo(f"  {line}"))
    cert = outcome.certificate
    for kind, (equal, total) in cert.counts().items():
        click.echo(f"  {kind:<13} {equal}/{total} equal")
    click.echo(cert.verdict())
    if outcome.stored is not None:
        click.echo(f"certificate: {outcome.stored.json_ref} ({outcome.stored.sha256}); also {outcome.workdir}/"
                   "certificate.md")
    click.get_current_context().exit(cert.exit_code)
