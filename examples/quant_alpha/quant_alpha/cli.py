"""The ``quant-alpha`` command of the example project: ``quant-alpha demo``."""

from __future__ import annotations

import sys

import click

from ml_platform import MLPlatformError
from quant_alpha.demo import demo


@click.group()
def main() -> None:
    """The quant_alpha example project on ml_platform."""


main.add_command(demo)


def run() -> None:  # pragma: no cover - console entry with one-line platform errors
    try:
        main(standalone_mode=False)
    except MLPlatformError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
