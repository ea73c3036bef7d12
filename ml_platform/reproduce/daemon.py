"""``dagster-daemon run`` for a reproduction's isolated deployment, with a short backfill tick.

Dagster's backfill daemon evaluates asset backfills once every ``DEFAULT_DAEMON_INTERVAL_SECONDS`` (30 s in
Dagster 1.13, not configurable in ``dagster.yaml``), and it launches a node's runs only on the tick after
its parents' runs finished. A reproduction's backfill is a chain of one run per node, so on a deep
graph most of its time would be spent waiting for the next tick. The reproduction's own daemon (never
production's) is started through this module, which sets that interval before the daemon starts; the
daemon, its backfill logic and ``BackfillPolicy`` are otherwise Dagster's own.

Run: ``python -m ml_platform.reproduce.daemon SECONDS [--workspace-refresh SECONDS] [dagster-daemon arguments...]``.
``--workspace-refresh`` also shortens how often the daemon re-reads its workspace files (Dagster: 60 s):
for a test's stand-in of production, which reproductions add their code location to.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ml_platform.errors import ConfigurationError

__all__ = ["BACKFILL_TICK_SECONDS", "set_backfill_tick", "set_workspace_refresh"]

BACKFILL_TICK_SECONDS = 2.0
_SETTING = "DEFAULT_DAEMON_INTERVAL_SECONDS"
_REFRESH = "RELOAD_WORKSPACE_INTERVAL"


def set_backfill_tick(seconds: float) -> None:
    """Set the backfill daemon's tick of this process's Dagster (before its daemon controller starts).

    Raises:
        ConfigurationError: ``seconds`` is not positive, or the installed Dagster no longer reads the
            interval where this module sets it (after a Dagster upgrade: check ``dagster._daemon.backfill``).
    """
    if not seconds > 0:
        raise ConfigurationError(f"backfill tick {seconds!r} s: give a positive number of seconds")
    import inspect

    from dagster._daemon import backfill, controller

    try:
        loop_source = inspect.getsource(backfill.execute_backfill_iteration_loop)
    except (OSError, TypeError):  # an install without sources: the loop cannot be checked
        loop_source = ""
    if not hasattr(controller, _SETTING) or _SETTING not in loop_source:
        raise ConfigurationError(f"this Dagster's backfill daemon does not read dagster._daemon.controller.{_SETTING}; "
                                 "the reproduction cannot shorten its tick (see ml_platform.reproduce.daemon)")
    setattr(controller, _SETTING, float(seconds))


def set_workspace_refresh(seconds: float) -> None:
    """Set how often this process's Dagster daemon re-reads its workspace files (before the daemon starts).

    Raises:
        ConfigurationError: ``seconds`` is not positive, or the installed Dagster no longer reads the setting.
    """
    if not seconds > 0:
        raise ConfigurationError(f"workspace refresh {seconds!r} s: give a positive number of seconds")
    from dagster._daemon import controller

    if not hasattr(controller, _REFRESH):
        raise ConfigurationError(f"this Dagster's daemon has no dagster._daemon.controller.{_REFRESH}; the "
                                 "workspace refresh cannot be shortened")
    setattr(controller, _REFRESH, float(seconds))


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
    from dagster._daemon.cli import cli

    cli.main(args=args, prog_name="dagster-daemon", obj={})


if __name__ == "__main__":
    main()
