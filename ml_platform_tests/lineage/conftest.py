"""Fixtures of the lineage tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ml_platform_tests.lineage.fixture_project import FixtureProject


@pytest.fixture
def project(tmp_path: Path) -> Iterator[FixtureProject]:
    """A fresh, uniquely named fixture package; unloaded after the test."""
    fixture = FixtureProject(tmp_path)
    yield fixture
    fixture.unload()
