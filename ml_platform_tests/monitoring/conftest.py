"""Fixtures of the monitoring tests: a local HTTP endpoint standing in for PagerDuty and Slack, and the outbox
backends (files, SQLite, PostgreSQL) the outbox and route tests run against."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ml_platform.monitoring.outbox import AlertOutbox
from ml_platform.monitoring.outbox_sql import open_outbox
from ml_platform_tests.monitoring.http_stub import HttpStub, Reply


@pytest.fixture
def http_stub() -> Iterator[Callable[..., HttpStub]]:
    """A factory of started :class:`HttpStub` servers on 127.0.0.1: ``http_stub([500, 500], default=202)``.

    Every stub it made is stopped after the test.
    """
    made: list[HttpStub] = []

    def make(script: Iterable[Reply | int] = (), default: Reply | int = 202) -> HttpStub:
        stub = HttpStub(script, default).start()
        made.append(stub)
        return stub

    try:
        yield make
    finally:
        for stub in made:
            stub.stop()


@dataclass(frozen=True)
class OutboxBackend:
    """Where a test's outboxes live: ``file`` (JSON lines in a folder), ``sqlite`` or ``postgres`` (a table).

    Attributes:
        name: The backend's name (the test id).
        outbox_dir: The folder of the file outboxes (None for a database).
        outbox_url: The database URL (None for files).
    """

    name: str
    outbox_dir: Path | None
    outbox_url: str | None

    def open(self, route: str) -> AlertOutbox:
        """The outbox of ``route`` on this backend."""
        return open_outbox(route, outbox_dir=self.outbox_dir, outbox_url=self.outbox_url)

    @property
    def route_args(self) -> dict[str, Any]:
        """The outbox arguments of a route (``PagerRoute(**backend.route_args, ...)``)."""
        return {"outbox_dir": self.outbox_dir, "outbox_url": self.outbox_url}


@pytest.fixture(params=["file", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outbox_backend(request: pytest.FixtureRequest, tmp_path: Path) -> OutboxBackend:
    """Each outbox backend in turn: files under ``tmp_path``, a SQLite file, a fresh database on the harness's
    PostgreSQL (skipped without one, failed under ``CI=true``)."""
    if request.param == "file":
        return OutboxBackend("file", tmp_path / "outbox", None)
    if request.param == "sqlite":
        return OutboxBackend("sqlite", None, f"sqlite:///{tmp_path / 'outbox.db'}")
    database = request.getfixturevalue("postgres_db")
    return OutboxBackend("postgres", None, database.sqlalchemy_url)
