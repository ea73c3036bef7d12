"""``python -m ml_platform.cli``: the ``ml-platform`` command."""

from ml_platform.cli import main

main()
