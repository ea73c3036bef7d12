"""The ``ml-platform`` command: inspect the feature graph, verify stored artefacts, manage models, run the demo."""

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


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {\"nodes\": [...]}.")
def graph(as_json: bool) -> None:
    """Print every feature node with its source, upstream keys, code hash and graph hash."""
    from ml_platform.features.nodes import build_graph
    from ml_platform.settings import Settings

    g = build_graph(Settings.from_env(os.environ).market_source)  # what ml_platform.definitions builds
    if as_json:
        click.echo(g.to_json())
        return
    rows = [(n.key, f"{os.path.relpath(n.file)}:{n.line}", n.function, ",".join(n.spec.upstream_keys) or "-",
             n.code_hash.split(":")[-1][:12], n.graph_hash.split(":")[-1][:12]) for n in g]
    head = ("key", "source", "function", "upstream", "code_hash", "graph_hash")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def _register_commands() -> None:
    """Attach the command groups each layer owns."""
    from ml_platform.demo import demo
    from ml_platform.io.commands import env, verify
    from ml_platform.registry.commands import models

    for command in (verify, env, models, demo):
        main.add_command(command)


_register_commands()

if __name__ == "__main__":
    main()
