"""``python -m prod_local start|stop|status|env|restart SERVICE [--state DIR]`` (from deployments/production;
make prod-local)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from prod_local.errors import StackError
from prod_local.restart import RESTARTABLE, restart
from prod_local.stack import Layout, client_env, start, status, stop, urls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prod_local", description=__doc__)
    parser.add_argument("command", choices=("start", "stop", "status", "env", "restart"))
    parser.add_argument("service", nargs="?", choices=RESTARTABLE, help="the service to restart in place")
    parser.add_argument("--state", type=Path, default=None,
                        help="the state folder (default: .ml_platform/prod-local in the checkout)")
    parser.add_argument("--code-file", type=Path, default=None,
                        help="start: a Python file whose `defs` the code server serves instead of the project's")
    parser.add_argument("--pass-env", action="append", default=[], metavar="NAME",
                        help="start: give every service this variable of the launcher's own environment too (e.g. "
                             "ML_PLATFORM_PAGERDUTY_ROUTING_KEY); its value never appears on a command line")
    args = parser.parse_args(argv)
    layout = Layout.default(args.state)

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.command == "env" else sys.stdout, flush=True)

    try:
        if args.command == "start":
            missing = [name for name in args.pass_env if name not in os.environ]
            if missing:
                raise StackError(f"--pass-env names {', '.join(missing)}, which the launcher's environment lacks")
            state = start(layout, say, code_file=args.code_file.resolve() if args.code_file else None,
                          extra_env={name: os.environ[name] for name in args.pass_env})
            say(f"the production stack is up (state and logs: {layout.state}):\n{urls(state)}")
            say("client environment: eval \"$(cd deployments/production && python -m prod_local env)\"; "
                "stop it with make prod-local-stop")
        elif args.command == "stop":
            stop(layout, say)
        elif args.command == "restart":
            if args.service is None:
                parser.error(f"restart needs the service: one of {', '.join(RESTARTABLE)}")
            restart(layout, args.service, say)
        elif args.command == "status":
            say(status(layout))
        else:
            sys.stdout.write(client_env(layout))
    except StackError as exc:
        print(f"prod-local {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
