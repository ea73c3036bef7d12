"""The pytest side of the PostgreSQL harness (:mod:`ml_platform.testing.postgres`): skip, or fail under CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["require_postgres_or_skip"]


def require_postgres_or_skip(reason: str) -> NoReturn:
    """Skip the current test because PostgreSQL is unavailable; under ``CI=true`` fail it instead.

    Args:
        reason: Why PostgreSQL is unavailable, including the underlying error.

    Raises:
        pytest.fail.Exception: Under ``CI=true`` (also ``1``/``yes``).
        pytest.skip.Exception: Otherwise.
    """
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"PostgreSQL could not be started under CI=true: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable, test skipped (set CI=true to make this a failure): {reason}")
