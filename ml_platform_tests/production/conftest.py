"""The ``prod_stack`` fixture: the local production stack (``make prod-local``'s launcher) booted once per
session in a temporary state folder, stopped at the end, with the stop checked: no recorded process and no
recorded port may be left. Tests using it mark themselves ``xdist_group("prod_stack")`` (stack.GROUP).

When the stack cannot start the tests are skipped with the launcher's message; under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest
from prod_local.processes import port_listening
from prod_local.stack import Layout

from ml_platform_tests.production.alert_sink import AlertSink
from ml_platform_tests.production.stack import ProductionStack, run_launcher

__all__ = ["alert_sink", "prod_stack"]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        pytest.fail(f"the local production stack could not be started under CI=true: {reason}", pytrace=False)
    pytest.skip(f"the local production stack could not be started (set CI=true to make this a failure): {reason}")


@pytest.fixture(scope="session")
def alert_sink() -> Iterator[AlertSink]:
    """The stack's PagerDuty and Slack endpoints (one local HTTP endpoint), with distinctive secrets."""
    sink = AlertSink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def prod_stack(tmp_path_factory: pytest.TempPathFactory, alert_sink: AlertSink) -> Iterator[ProductionStack]:
    """The running stack, its alert routes on ``alert_sink``; stopped, and the stop checked, when the session ends."""
    layout = Layout.default(tmp_path_factory.mktemp("prod_stack"))
    started = run_launcher("start", layout.state, extra_env=alert_sink.env)
    if started.returncode != 0:
        stopped = run_launcher("stop", layout.state)  # whatever the failed start left running
        _unavailable(f"{started.stderr.strip()[-6000:]}\n(stop: {stopped.stdout.strip()[-1000:]})")
    stack = ProductionStack.load(layout)
    try:
        yield stack
    finally:
        stopped = run_launcher("stop", layout.state)
        assert stopped.returncode == 0, f"stopping the stack failed:\n{stopped.stdout}\n{stopped.stderr}"
        assert not stack.state.live(), f"processes outlived the stop: {stack.state.live()}"
        listening = {name: port for name, port in stack.state.ports.items() if port_listening(port)}
        assert not listening, f"ports still listening after the stop: {listening}"
