"""The production stack for a benchmark: started from deployments/production with a given code location, its
GraphQL, its client environment, stopped (and checked stopped) on exit. Not a benchmark itself."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

REPO = Path(__file__).resolve().parents[1]
PRODUCTION = REPO / "deployments" / "production"
sys.path.insert(0, str(PRODUCTION))

from prod_local.services import CODE_LOCATION
from prod_local.state import StackState, load_state

from ml_platform.reproduce.dagster_services import graphql_request

#: Bounded: the stack starts in about a minute on an idle 2-core machine, far slower beside other work.
START_TIMEOUT = 1500.0


class StackUnavailable(RuntimeError):
    """The stack did not start (the launcher's output says why)."""


def _launcher(command: str, state: Path, *extra: str, timeout: float = START_TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_PLATFORM_", "DAGSTER_", "AWS_", "PG"))}
    return subprocess.run([sys.executable, "-m", "prod_local", command, "--state", str(state), *extra],
                          cwd=PRODUCTION, env=env, capture_output=True, text=True, timeout=timeout, check=False)


class ProductionStack:
    """``with ProductionStack(state, code_file) as stack:`` the stack serving ``code_file``'s ``defs``."""

    location_name = CODE_LOCATION

    def __init__(self, state: Path, code_file: Path) -> None:
        self.root, self.code_file = state, code_file
        self.state: StackState | None = None

    def __enter__(self) -> Self:
        done = _launcher("start", self.root, "--code-file", str(self.code_file))
        self.state = load_state(self.root)
        if done.returncode != 0 or self.state is None:
            self._stop()
            raise StackUnavailable(f"the production stack did not start ({done.returncode}):\n"
                                   f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop()

    def _stop(self) -> None:
        done = _launcher("stop", self.root, timeout=600)
        if done.returncode != 0:
            raise StackUnavailable(f"the production stack did not stop cleanly:\n{done.stdout}\n{done.stderr}")

    @property
    def url(self) -> str:
        assert self.state is not None
        return self.state.service("webserver").url or ""

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def env(self) -> Mapping[str, str]:
        """The client environment: the production variables pointing at the stack (secrets included)."""
        assert self.state is not None
        return self.state.env

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        return graphql_request(self.url, query, variables, timeout=timeout, whose="the production stack's Dagster")
