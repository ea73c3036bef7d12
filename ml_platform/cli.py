"""The ``ml-platform`` command: inspect a project's feature graph, verify stored artefacts, manage models."""

from __future__ import annotations

import os
import sys

import click

from ml_platform.errors import MLPlatformError


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


DEFS_HELP = ("The project's Definitions as module:attr (e.g. my_project.definitions:defs); default: the code "
             "location of workspace.yaml in the working directory.")


@main.command()
@click.option("--defs", "target", default=None, help=DEFS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {\"nodes\": [...]}.")
def graph(target: str | None, as_json: bool) -> None:
    """Print every feature node of a project with its source, upstream, code hash and graph hash."""
    import json

    from ml_platform.workspace import feature_nodes, load_definitions

    loaded = load_definitions(target)
    nodes = feature_nodes(loaded.defs)
    if as_json:
        click.echo(json.dumps({"definitions": loaded.target, "nodes": [n.to_dict() for n in nodes]}, indent=2))
        return
    if not nodes:
        click.echo(f"{loaded.target} defines no feature assets (none built with build_feature_assets)")
        return
    rows = [(n.asset_key, _relative(n.source), n.function, ",".join(n.upstream) or "-",
             n.code_hash.split(":")[-1][:12], n.graph_hash.split(":")[-1][:12]) for n in nodes]
    head = ("asset", "source", "function", "upstream", "code_hash", "graph_hash")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def _relative(source: str) -> str:
    path, _, line = source.rpartition(":")
    try:
        return f"{os.path.relpath(path)}:{line}"
    except ValueError:  # another drive
        return source


def _register_commands() -> None:
    """Attach the command groups each layer owns."""
    from ml_platform.io.commands import env, gc, verify
    from ml_platform.promotion.command import promote
    from ml_platform.registry.champion_commands import audit, history, rollback
    from ml_platform.registry.commands import models, registry
    from ml_platform.reproduce.command import reproduce
    from ml_platform.scaffold.command import init
    from ml_platform.trace.command import trace

    for command in (verify, gc, env, models, registry, init, rollback, history, audit, promote, reproduce, trace):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()
