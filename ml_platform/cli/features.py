"""``ml-platform graph``: every feature node of a project with its code and graph hash."""

from __future__ import annotations

import json
import os

import click

from ml_platform.cli.params import MAX_ARGUMENT, BoundedText

__all__ = ["graph"]

DEFS_HELP = ("The project's Definitions as module:attr (e.g. my_project.definitions:defs); default: the code "
             "location of workspace.yaml in the working directory.")


@click.command()
@click.option("--defs", "target", default=None, type=BoundedText(MAX_ARGUMENT), help=DEFS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {\"nodes\": [...]}.")
def graph(target: str | None, as_json: bool) -> None:
    """Print every feature node of a project with its source, upstream, code hash and graph hash."""
    from ml_platform.workspace import feature_nodes, load_definitions  # Dagster: only when the command runs

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
