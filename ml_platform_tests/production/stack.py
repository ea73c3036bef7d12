"""A running local production stack as the tests see it: its services' addresses, the client environment, and
Dagster's GraphQL (the :class:`~ml_platform.reproduce.dagster_services.ReproductionDagster` shape, so the backfill
helpers of ml_platform.reproduce.backfill drive it)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from prod_local.environment import BUCKET, DAGSTER_DB
from prod_local.services import CODE_LOCATION
from prod_local.stack import Layout
from prod_local.state import StackState, load_state

from ml_platform.reproduce.dagster_services import graphql_request

__all__ = ["GROUP", "PRODUCTION", "ProductionStack", "run_launcher"]

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = REPO / "deployments" / "production"
#: The xdist_group every test using the ``prod_stack`` fixture names, so the stack is booted once.
GROUP = "prod_stack"
#: Bounded: the stack starts in about a minute on an idle 2-core machine; much slower beside other tests.
START_TIMEOUT = 1500.0


def run_launcher(command: str, state: Path, timeout: float = START_TIMEOUT,
                 extra_env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m prod_local COMMAND --state STATE`` as ``make prod-local`` runs it (cwd deployments/production),
    in the environment of this process minus anything of its own deployment (the launcher sets the stack's).
    ``extra_env`` is handed to every service of the stack (``--pass-env``: through the environment, never argv)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_PLATFORM_", "DAGSTER_", "AWS_", "PG"))}
    passed = [arg for name in sorted(extra_env or {}) for arg in ("--pass-env", name)]
    return subprocess.run([sys.executable, "-m", "prod_local", command, "--state", str(state), *passed],
                          cwd=PRODUCTION, env={**env, **dict(extra_env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False)


@dataclass(frozen=True)
class ProductionStack:
    """The stack booted from ``layout``'s state folder, as recorded in its state file."""

    layout: Layout
    booted: StackState

    @classmethod
    def load(cls, layout: Layout) -> ProductionStack:
        state = load_state(layout.state)
        if state is None:
            raise RuntimeError(f"no stack recorded in {layout.state}")
        return cls(layout, state)

    @property
    def state(self) -> StackState:
        """The stack as recorded now (a service restarted in place runs as a new process); as booted once stopped."""
        return load_state(self.layout.state) or self.booted

    # -- the ReproductionDagster shape ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.state.service("webserver").url or ""

    @property
    def location_name(self) -> str:
        return CODE_LOCATION

    @property
    def logs(self) -> Path:
        return self.layout.logs

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        return graphql_request(self.url, query, variables, timeout=timeout, whose="the production stack's Dagster")

    # -- the services --------------------------------------------------------------------------------------------
    @property
    def env(self) -> Mapping[str, str]:
        """The client environment (``python -m prod_local env``): production variables pointing at the stack."""
        return self.state.env

    @property
    def homes(self) -> Path:
        """``homes/<process>/``: each process's own local disk (home, ML_PLATFORM_HOME, TMPDIR, DAGSTER_HOME, cwd)."""
        return self.layout.state / "homes"

    def s3(self) -> Any:
        """A boto3 S3 client on the stack's S3 server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.env["AWS_ENDPOINT_URL"], region_name=self.env["AWS_DEFAULT_REGION"],
                            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"])

    def s3_keys(self, prefix: str = "") -> list[str]:
        """Every object key in the stack's bucket under ``prefix``."""
        pages = self.s3().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]

    @contextmanager
    def connect(self, database: str = DAGSTER_DB) -> Iterator[psycopg.Connection[Any]]:
        """A psycopg connection to ``dagster`` or ``mlflow`` as the stack's role, with its password."""
        pg = self.state.postgres
        assert pg is not None
        with psycopg.connect(host=pg.host, port=pg.port, dbname=database, user=self.env["DAGSTER_PG_USERNAME"],
                             password=self.env["DAGSTER_PG_PASSWORD"], connect_timeout=10) as conn:
            yield conn


