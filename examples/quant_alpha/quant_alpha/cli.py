"""The ``quant-alpha`` command of the example project: ``quant-alpha demo`` and ``quant-alpha demo-reproduce``."""

from __future__ import annotations

import sys

import click

from ml_platform import MLPlatformError
from quant_alpha.demo import demo
from quant_alpha.demo_reproduce import demo_reproduce


@click.group()
def main() -> None:
    """The quant_alpha example project on ml_platform."""


main.add_command(demo)
main.add_command(demo_reproduce)


def run() -> None:  # pragma: no cover - console entry with one-line platform errors
    try:
        main(standalone_mode=False)
    except MLPlatformError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
