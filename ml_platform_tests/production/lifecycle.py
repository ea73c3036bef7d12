"""The example's lifecycle driven once per session through the production stack's webserver (see
:func:`~ml_platform_tests.harness.example_lifecycle.drive_lifecycle`), shared by the modules that check what it left.

Kept in the session's stash: each module that imports :func:`stack_lifecycle` registers its own copy of the
fixture, and the lifecycle must run once.
"""

from __future__ import annotations

import pytest

from ml_platform_tests.harness.dagster_graphql import DagsterGraphQL
from ml_platform_tests.harness.example_lifecycle import DrivenLifecycle, drive_lifecycle
from ml_platform_tests.production.stack import ProductionStack

__all__ = ["LIFECYCLE_TIMEOUT", "StackLifecycle", "stack_lifecycle"]

#: Bounded per run and per backfill: the Celery workers share two cores with every other test.
LIFECYCLE_TIMEOUT = 2400.0
_KEY = pytest.StashKey["StackLifecycle | str"]()


class StackLifecycle:
    """The stack, its webserver's GraphQL and the runs the lifecycle launched through it."""

    def __init__(self, stack: ProductionStack, gql: DagsterGraphQL, driven: DrivenLifecycle) -> None:
        self.stack = stack
        self.gql = gql
        self.driven = driven


@pytest.fixture(scope="session")
def stack_lifecycle(request: pytest.FixtureRequest, prod_stack: ProductionStack) -> StackLifecycle:
    """The lifecycle on the stack, with the deployment's own executor (Celery workers): launched once."""
    stash = request.config.stash
    if _KEY not in stash:
        gql = DagsterGraphQL(prod_stack.url, prod_stack.location_name, prod_stack.logs)
        try:
            gql.wait_loaded()
            stash[_KEY] = StackLifecycle(prod_stack, gql, drive_lifecycle(gql, timeout=LIFECYCLE_TIMEOUT))
        except Exception as exc:  # every later test fails with it, without driving the lifecycle again
            stash[_KEY] = f"{type(exc).__name__}: {exc} (logs: {prod_stack.logs})"
            raise
    found = stash[_KEY]
    if isinstance(found, str):
        pytest.fail(f"the lifecycle through the stack failed earlier: {found}", pytrace=False)
    return found
