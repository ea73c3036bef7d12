"""``dagster-daemon run`` for a reproduction's isolated deployment, with a short backfill tick.

How it works, and why: docs/architecture.md, "ml_platform/reproduce/daemon.py".
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ml_platform.compat import run_dagster_daemon, set_backfill_tick, set_workspace_refresh

__all__ = ["BACKFILL_TICK_SECONDS", "main"]

BACKFILL_TICK_SECONDS = 2.0


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit("usage: python -m ml_platform.reproduce.daemon SECONDS [--workspace-refresh SECONDS] "
                         "[dagster-daemon arguments...]")
    try:
        set_backfill_tick(float(args[0]))
        args = args[1:]
        if args[:1] == ["--workspace-refresh"]:
            set_workspace_refresh(float(args[1]))
            args = args[2:]
    except (ValueError, IndexError):
        raise SystemExit(f"{args[:2]!r}: give a number of seconds") from None
    run_dagster_daemon(args)


if __name__ == "__main__":
    main()
