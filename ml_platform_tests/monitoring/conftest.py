"""Fixtures of the monitoring tests: a local HTTP endpoint standing in for PagerDuty and Slack."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pytest

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
