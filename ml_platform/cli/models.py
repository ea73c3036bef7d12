"""The ``ml-platform models`` and ``ml-platform registry`` command groups.

How it works, and why: docs/architecture.md, "ml_platform/cli/models.py".
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ml_platform.cli.locations import defs_option, registry_location
from ml_platform.cli.params import FiniteNumber, ModelName, PathText, VersionNumber, printable
from ml_platform.errors import RegistryError

if TYPE_CHECKING:
    from ml_platform.registry.contract import DeployContract
    from ml_platform.registry.store import ModelRegistry

__all__ = ["CLI_HTTP_LIMITS", "check_registry_exists", "cli_http_limits", "models", "open_registry", "registry",
           "registry_options"]

#: MLflow HTTP client limits on CLI paths (MLflow's defaults: 7 retries with back-off, 120 s timeout).
CLI_HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


@contextmanager
def cli_http_limits() -> Iterator[None]:
    """Lower MLflow's HTTP retries and timeout for the duration of a command, unless the environment set them."""
    added = [name for name in CLI_HTTP_LIMITS if name not in os.environ]
    for name in added:
        os.environ[name] = CLI_HTTP_LIMITS[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def registry_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(command)
    command = click.option(
        "--busy-timeout", "busy_timeout", type=FiniteNumber(0, 3600), default=None, metavar="SECONDS",
        help="How long to wait for a SQLite registry another process holds locked (default: 5).")(command)
    command = click.option("--registry-uri", default=None, type=PathText(),
                           help="MLflow registry URI (default: the tracking URI).")(command)
    command = defs_option(command)
    return click.option(
        "--tracking-uri", default=None, type=PathText(),
        help="MLflow tracking URI (default: from --defs or ML_PLATFORM_* settings)."
    )(command)


def check_registry_exists(tracking_uri: str) -> None:
    """Refuse a registry that is not there: a missing SQLite file, one without MLflow's tables, a missing folder.

    MLflow creates whatever a URI names on first use; a command must never turn a typo into an empty registry.

    Raises:
        RegistryError: naming the location and what to pass instead.
    """
    from ml_platform.registry.store import sqlite_database_path

    hint = "train and register a model first, or pass --tracking-uri, --defs, or set ML_PLATFORM_HOME"
    database = sqlite_database_path(tracking_uri)
    if database is not None:
        if not database.is_file():
            raise RegistryError(f"no model registry at {database}: {hint}")
        try:
            with sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=0) as conn:
                tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                return  # there, and busy: the registry's own bounded wait reports it
            raise RegistryError(f"{database} cannot be read as an MLflow database ({exc}): {hint}") from exc
        except sqlite3.Error as exc:
            raise RegistryError(f"{database} cannot be read as an MLflow database ({exc}): {hint}") from exc
        if "registered_models" not in tables:
            raise RegistryError(f"{database} holds no MLflow registry (no registered_models table): {hint}")
        return
    scheme, sep, rest = tracking_uri.partition("://")
    local = rest if sep and scheme == "file" else (None if sep or tracking_uri.startswith("databricks") else
                                                     tracking_uri)
    if local is not None and not os.path.isdir(local):
        raise RegistryError(f"no MLflow file store at {local}: {hint}")


def open_registry(tracking_uri: str | None, registry_uri: str | None, defs_target: str | None,
          busy_timeout: float | None = None) -> ModelRegistry:
    from ml_platform.registry.store import DEFAULT_BUSY_TIMEOUT_SECONDS, ModelRegistry

    tracking_uri, artifact_location = registry_location(tracking_uri, defs_target)
    check_registry_exists(tracking_uri)
    return ModelRegistry(tracking_uri, registry_uri, artifact_location,
                         busy_timeout_seconds=DEFAULT_BUSY_TIMEOUT_SECONDS if busy_timeout is None else busy_timeout)


@click.group()
@click.pass_context
def models(ctx: click.Context) -> None:
    """Registered models, their versions, champions and deploy contracts (MLflow)."""
    ctx.with_resource(cli_http_limits())


@models.command("list")
@registry_options
def list_command(tracking_uri: str | None, registry_uri: str | None, as_json: bool, busy_timeout: float | None,
                 defs_target: str | None) -> None:
    """List every registered model with its usable versions and champion."""
    from ml_platform.champions.catalog import list_models  # MLflow: only when the command runs

    summaries = list_models(open_registry(tracking_uri, registry_uri, defs_target, busy_timeout))
    if as_json:
        click.echo(json.dumps([
            {"name": s.name, "versions": list(s.versions), "unusable_versions": list(s.unusable_versions),
             "champion": s.champion, "description": s.description}
            for s in summaries
        ], indent=2, sort_keys=True))
        return
    if not summaries:
        click.echo("no registered models")
        return
    for s in summaries:
        line = f"{s.name}  champion: {s.champion or '-'}  versions: {', '.join(s.versions) or '-'}"
        if s.unusable_versions:
            line += f"  (unusable: {', '.join(s.unusable_versions)})"
        click.echo(line)


@models.command("show")
@click.argument("name", type=ModelName())
@click.argument("version", required=False, type=VersionNumber())
@registry_options
def show_command(name: str, version: str | None, tracking_uri: str | None, registry_uri: str | None, as_json: bool,
                 busy_timeout: float | None, defs_target: str | None) -> None:
    """Show every version of model NAME (or only VERSION) with its verified deploy contract."""
    from ml_platform.champions.catalog import show_versions  # MLflow: only when the command runs

    details = show_versions(open_registry(tracking_uri, registry_uri, defs_target, busy_timeout), name, version)
    if as_json:
        click.echo(json.dumps([
            {"name": d.name, "version": d.version, "run_id": d.run_id, "status": d.status,
             "is_champion": d.is_champion, "created_at": d.created_at.isoformat(), "problem": d.problem,
             "contract": None if d.contract is None else d.contract.to_dict()}
            for d in details
        ], indent=2, sort_keys=True))
        return
    if not details:
        click.echo(f"model {name!r} has no versions")
        return
    for d in details:
        champion = "  [champion]" if d.is_champion else ""
        click.echo(f"{d.name} version {d.version}{champion}  status: {d.status}  run: {d.run_id}  "
                   f"created: {d.created_at.isoformat(timespec='seconds')}")
        if d.problem:
            click.echo(f"  problem: {printable(d.problem)}")
        if d.contract is not None:
            for line in _contract_lines(d.contract):
                click.echo(f"  {line}")


def _contract_lines(contract: DeployContract) -> list[str]:
    git = contract.git_commit or "(not in git)"
    if contract.git_dirty:
        git += " (dirty)"
    seeds = ", ".join(f"{k}={v}" for k, v in contract.seeds.items()) or "-"
    columns = ", ".join(f"{f.name} ({f.describe()})" for f in contract.feature_schema.fields)
    return [
        f"feature graph hash:     {contract.feature_graph_hash}",
        f"model sha256:           {contract.model_sha256}",
        f"model format:           {contract.model_format}",
        f"keys:                   {contract.keys}",
        f"training window:        {contract.training_window}",
        f"validation window:      {contract.validation_window}",
        f"training set data hash: {contract.training_set_data_hash}",
        f"environment hash:       {contract.environment_hash}",
        f"seeds:                  {seeds}",
        f"git commit:             {git}",
        f"trained by:             {printable(contract.trained_by)} at {contract.created_at.isoformat(timespec='seconds')}",
        f"features ({len(contract.feature_schema)}):           {columns}",
    ]


@click.group("registry")
@click.pass_context
def registry(ctx: click.Context) -> None:
    """The model registry's own housekeeping (MLflow)."""
    ctx.with_resource(cli_http_limits())


@registry.command("repair")
@click.option("--check", "check_only", is_flag=True,
              help="Only report; change nothing. Exit 1 if anything is inconsistent, 0 otherwise.")
@click.option("--stale-after", "stale_after", type=FiniteNumber(0, 10 * 365 * 86400), default=3600.0, show_default=True,
              metavar="SECONDS", help="Age after which a RUNNING registration whose process cannot be checked from "
              "this host (another machine, an earlier release) counts as abandoned.")
@registry_options
def repair_command(check_only: bool, stale_after: float, tracking_uri: str | None, registry_uri: str | None,
                   as_json: bool, busy_timeout: float | None, defs_target: str | None) -> None:
    """Finish or remove what interrupted registrations left; end their abandoned MLflow runs.

    Finds RUNNING runs of killed registrations (ended FINISHED if their version was created, else
    KILLED), registered models an aborted first registration left empty (removed), and versions
    tagged registering or failed, or made from a platform run without the platform's tags
    (finished from their verified artefacts, else removed). Registrations still running are left
    alone. Exit 0 when done (or, with --check, when consistent), 1 if --check found something.
    """
    from ml_platform.registry.repair import repair_registry  # MLflow: only when the command runs

    report = repair_registry(open_registry(tracking_uri, registry_uri, defs_target, busy_timeout),
                             check_only=check_only, stale_after=dt.timedelta(seconds=stale_after))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        for line in report.lines():
            click.echo(line)
    if check_only and not report.consistent:
        click.get_current_context().exit(1)
