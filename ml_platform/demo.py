"""`ml-platform demo`: the whole lifecycle on the embedded default (written below)."""
from __future__ import annotations

import click


@click.command("demo")
def demo() -> None:
    """Run the whole lifecycle on the embedded default."""
    raise click.ClickException("the demo is not written yet")
