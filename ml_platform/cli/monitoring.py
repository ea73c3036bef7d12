"""``ml-platform monitoring status [--outbox-dir DIR | --outbox-url URL] [--json]``: what the alert outboxes hold now.

Per route (pager, research): how many alerts were delivered, which are still pending (attempts, age,
last error), which are overdue, and the ``undelivered`` notices the other route wrote there. Exit
codes: 0 nothing overdue, 1 an alert is overdue (undelivered past its bound), 2 bad input.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import click

from ml_platform.cli.params import PathText
from ml_platform.errors import ConfigurationError
from ml_platform.monitoring.outbox_sql import check_outbox_url, open_outbox
from ml_platform.monitoring.routes import DEFAULT_PAGER_OVERDUE_SECONDS, DEFAULT_RESEARCH_OVERDUE_SECONDS
from ml_platform.monitoring.status import route_status
from ml_platform.settings import Settings

__all__ = ["monitoring"]

_BOUNDS = {"pager": DEFAULT_PAGER_OVERDUE_SECONDS, "research": DEFAULT_RESEARCH_OVERDUE_SECONDS}


@click.group("monitoring")
def monitoring() -> None:
    """The alert routes' outboxes (pager, research)."""


@monitoring.command("status")
@click.option("--outbox-dir", "outbox_dir", default=None, type=PathText(),
              help="The outbox folder (default: <ML_PLATFORM_HOME>/monitoring/outbox).")
@click.option("--outbox-url", "outbox_url", default=None,
              help="The database of the outboxes, a SQLAlchemy URL (default: ML_PLATFORM_OUTBOX_URL; the password "
              "in PGPASSWORD rather than here).")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status_command(outbox_dir: str | None, outbox_url: str | None, as_json: bool) -> None:
    """Delivered, pending and overdue alerts per route; exit 1 if an alert is overdue."""
    if outbox_dir and outbox_url:
        raise ConfigurationError("give --outbox-dir (a folder of JSON-lines files) or --outbox-url (a database), "
                                 "not both; nothing was read")
    settings = None if outbox_dir or outbox_url else Settings.from_env(os.environ)
    url = outbox_url or (settings.outbox_url if settings is not None else None)
    folder = None
    if url:
        where = f"outbox database: {check_outbox_url(url, '--outbox-url').render_as_string(hide_password=True)}"
    else:
        folder = Path(outbox_dir) if outbox_dir else settings.outbox_dir  # type: ignore[union-attr]
        where = f"outbox folder: {folder}"
    if outbox_dir and folder is not None and not folder.is_dir():  # a mistyped folder reads as "nothing pending"
        raise ConfigurationError(f"no outbox folder at {folder}: name the folder the alert routes write "
                                 "(<ML_PLATFORM_HOME>/monitoring/outbox by default); nothing was read")
    now = dt.datetime.now(dt.UTC)
    logs = {name: open_outbox(name, outbox_dir=folder, outbox_url=url).read() for name in _BOUNDS}
    statuses = [route_status(name, logs[name], logs[other], now, _BOUNDS[name])
                for name, other in (("pager", "research"), ("research", "pager"))]
    if as_json:
        click.echo(json.dumps([{"route": s.route, "delivered": s.delivered, "damaged": s.damaged,
                                "pending": [dataclasses.asdict(p) for p in s.pending],
                                "notices": [dict(n.data) for n in s.notices]} for s in statuses], indent=2))
    else:
        click.echo(where)
        for status in statuses:
            click.echo("\n".join(status.lines()))
    if any(status.overdue for status in statuses):
        raise SystemExit(1)
