"""``dagster-daemon run`` for a reproduction's isolated deployment, with a short backfill tick.

A reproduction's backfill is a chain of one run per node, launched one daemon tick after its parents
finished; with Dagster's 30 s tick most of its time would be waiting. The reproduction's own daemon
(never production's) starts through this module, which shortens the tick first (see
:func:`ml_platform.compat.set_backfill_tick`).

Run: ``python -m ml_platform.reproduce.daemon SECONDS [--workspace-refresh SECONDS] [dagster-daemon arguments...]``.
``--workspace-refresh`` also shortens how often the daemon re-reads its workspace files (Dagster: 60 s):
for a test's stand-in of production, which reproductions add their code location to.
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
