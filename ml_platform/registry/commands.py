"""The ``ml-platform models`` command group: list registered models, show versions and their contracts.

Deliberate platform errors (an unknown model, a corrupt contract, no registry) propagate as
:class:`~ml_platform.errors.MLPlatformError`; the main ``ml-platform`` group turns them into a
one-line message and exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ml_platform.commands_common import defs_option, registry_location
from ml_platform.errors import RegistryError

if TYPE_CHECKING:
    from ml_platform.registry.contract import DeployContract
    from ml_platform.registry.store import ModelRegistry

__all__ = ["models"]


def _registry_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(command)
    command = click.option("--registry-uri", default=None, help="MLflow registry URI (default: the tracking URI).")(
        command
    )
    command = defs_option(command)
    return click.option(
        "--tracking-uri", default=None, help="MLflow tracking URI (default: from --defs or ML_PLATFORM_* settings)."
    )(command)


def _open(tracking_uri: str | None, registry_uri: str | None, defs_target: str | None) -> ModelRegistry:
    from ml_platform.registry.store import ModelRegistry, sqlite_database_path

    tracking_uri, artifact_location = registry_location(tracking_uri, defs_target)
    database = sqlite_database_path(tracking_uri)
    if database is not None and not database.is_file():
        raise RegistryError(
            f"no model registry at {database}: train and register a model first, or pass --tracking-uri, "
            "--defs, or set ML_PLATFORM_HOME"
        )
    return ModelRegistry(tracking_uri, registry_uri, artifact_location)


@click.group()
def models() -> None:
    """Registered models, their versions, champions and deploy contracts (MLflow)."""


@models.command("list")
@_registry_options
def list_command(tracking_uri: str | None, registry_uri: str | None, as_json: bool, defs_target: str | None) -> None:
    """List every registered model with its usable versions and champion."""
    summaries = _open(tracking_uri, registry_uri, defs_target).list_models()
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
@click.argument("name")
@click.argument("version", required=False)
@_registry_options
def show_command(name: str, version: str | None, tracking_uri: str | None, registry_uri: str | None, as_json: bool,
                 defs_target: str | None) -> None:
    """Show every version of model NAME (or only VERSION) with its verified deploy contract."""
    details = _open(tracking_uri, registry_uri, defs_target).show(name, version)
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
            click.echo(f"  problem: {d.problem}")
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
        f"trained by:             {contract.trained_by} at {contract.created_at.isoformat(timespec='seconds')}",
        f"features ({len(contract.feature_schema)}):           {columns}",
    ]
