"""``ml-platform environment accept`` and ``list``: recorded acceptances of a new environment (an image upgrade).

How it works, and why: docs/architecture.md, "ml_platform/cli/environment.py".
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
from pathlib import Path

import click

from ml_platform.cli.params import MAX_ARGUMENT, BoundedText, PathText
from ml_platform.environment import EnvironmentLock, accept_environment
from ml_platform.environment.acceptance import RATIONALE_LIMIT
from ml_platform.errors import ConfigurationError
from ml_platform.io.acceptances import record_acceptance
from ml_platform.io.store import PinnedStore
from ml_platform.settings import Settings

__all__ = ["environment"]

_PREFIX = re.compile(r"(sha256:)?[0-9a-f]{8,64}")
_STORAGE_HELP = "The feature store (a directory or fsspec URI); default: the ML_PLATFORM_* settings' storage."
_ROOT_HELP = ("The project folder whose uv.lock the running lock records (as the IO manager's project_root); "
              "default: ML_PLATFORM_PROJECT_ROOT, else the working directory.")


def _store(storage: str | None, project_root: str | None) -> PinnedStore:
    settings = Settings.from_env(os.environ)
    store = PinnedStore(storage or settings.storage, project_root=project_root or settings.project_root)
    if not store.filesystem.root_exists():
        raise ConfigurationError(f"no storage at {store.base}; pass --storage or set ML_PLATFORM_STORAGE")
    return store


def _stored_lock(store: PinnedStore, prefix: str) -> EnvironmentLock:
    """The one lock recorded by a head manifest of ``store`` whose hash starts with ``prefix``."""
    if not _PREFIX.fullmatch(prefix):
        raise ConfigurationError(f"--from {prefix[:80]!r}: give an environment hash or a prefix of at least 8 hex "
                                 "digits (sha256:... as `ml-platform verify` or a refused load shows it)")
    wanted = prefix if prefix.startswith("sha256:") else f"sha256:{prefix}"
    locks: dict[str, EnvironmentLock] = {}
    for manifest in store.manifests():
        locks.setdefault(manifest.environment_hash, manifest.environment)
    matching = sorted(h for h in locks if h.startswith(wanted))
    if len(matching) > 1:
        raise ConfigurationError(f"--from {prefix} names {len(matching)} recorded environments ({', '.join(matching)}); "
                                 "give more digits")
    if not matching:
        known = ", ".join(sorted(locks)) or "none"
        raise ConfigurationError(f"--from {prefix}: no artefact under {store.base} was written in such an environment "
                                 f"(recorded environments: {known})")
    return locks[matching[0]]


def _rationale(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--rationale-file {path}: cannot be read as UTF-8 text ({exc})") from exc
    if not text.strip():
        raise ConfigurationError(f"--rationale-file {path} is empty: say why the new environment cannot change a "
                                 "result (what changed, what was checked)")
    if len(text) > RATIONALE_LIMIT:
        raise ConfigurationError(f"--rationale-file {path} holds {len(text)} characters; at most {RATIONALE_LIMIT} "
                                 "are kept: summarise, and link the full review")
    return text


@click.group("environment")
def environment() -> None:
    """Accept a new environment (an image upgrade) for artefacts of an old one, under a strict policy."""


@environment.command("accept")
@click.option("--from", "from_lock", required=True, type=BoundedText(80),
              help="The environment hash (or a prefix of 8+ hex digits) of the stored artefacts to accept.")
@click.option("--rationale-file", required=True, type=PathText(),
              help="A text file saying why the difference cannot change a result; recorded verbatim.")
@click.option("--storage", default=None, type=PathText(), help=_STORAGE_HELP)
@click.option("--project-root", default=None, type=PathText(), help=_ROOT_HELP)
@click.option("--by", "accepted_by", default=None, type=BoundedText(MAX_ARGUMENT),
              help="Who accepts (default: the login name).")
def accept(from_lock: str, rationale_file: str, storage: str | None, project_root: str | None,
           accepted_by: str | None) -> None:
    """Record that artefacts of environment FROM may be loaded in the running one (run it in the new image).

    The record holds both lock hashes, every difference between them, the rationale, who and when, and its
    own SHA-256; it is written once into the store, named by that hash. It accepts exactly this pair: an
    acceptance of A under B and of B under C does not accept A under C.
    """
    rationale = _rationale(rationale_file)
    store = _store(storage, project_root)
    old = _stored_lock(store, from_lock)
    record = accept_environment(old, store.environment, rationale, accepted_by or getpass.getuser(),
                                dt.datetime.now(dt.UTC))
    where, created = record_acceptance(store.filesystem, record)
    click.echo(f"{'accepted' if created else 'already accepted'}: {record.from_lock} -> {record.to_lock}")
    click.echo(f"record     {record.sha256}")
    click.echo(f"file       {where}")
    click.echo(f"by         {record.accepted_by} at {record.accepted_at}")
    click.echo(f"{len(record.differences)} difference(s), from -> to:")
    for line in record.differences:
        click.echo(f"  {line}")


@environment.command("list")
@click.option("--storage", default=None, type=PathText(), help=_STORAGE_HELP)
@click.option("--project-root", default=None, type=PathText(), help=_ROOT_HELP)
def list_acceptances(storage: str | None, project_root: str | None) -> None:
    """Print every recorded acceptance, marking those that apply to the running environment.

    Exits 1 if a record does not verify (it accepts nothing; `ml-platform verify` reports it too).
    """
    store = _store(storage, project_root)
    files = store.acceptance_files()
    if not files:
        click.echo(f"no environment acceptances under {store.base}")
        return
    running = store.environment.hash
    bad = 0
    for found in files:
        a = found.acceptance
        if a is None:
            bad += 1
            click.echo(f"TAMPERED  {found.source}: {found.problem}", err=True)
            continue
        mark = "applies" if a.to_lock == running else "other"
        click.echo(f"{mark:8}  {a.sha256}  {a.from_lock} -> {a.to_lock}  by {a.accepted_by} at {a.accepted_at}, "
                   f"{len(a.differences)} difference(s): {a.rationale.strip().splitlines()[0][:80]}")
    click.echo(f"\n{len(files)} acceptance(s) under {store.base}; running environment {running}")
    if bad:
        raise click.exceptions.Exit(1)
