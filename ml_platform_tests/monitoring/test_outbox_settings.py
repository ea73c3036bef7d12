"""Choosing the outbox database: ML_PLATFORM_OUTBOX_URL in the settings, the deployment's resources, the routes'."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from ml_platform.deployment import monitoring_resources
from ml_platform.errors import ConfigurationError
from ml_platform.monitoring.outbox import Outbox
from ml_platform.monitoring.outbox_sql import SqlOutbox
from ml_platform.monitoring.resources import PagerResource, ResearchResource
from ml_platform.settings import OUTBOX_URL_ENV, Settings
from ml_platform_tests.monitoring.test_routes import incident

SECRET = "outboxPw-0042-never-shown"


def test_the_settings_read_the_outbox_url_and_never_show_it(tmp_path: Path) -> None:
    home = {"ML_PLATFORM_HOME": str(tmp_path)}
    assert Settings.from_env(home).outbox_url is None
    url = f"postgresql+psycopg://desk:{SECRET}@db.internal:5432/alerts"
    settings = Settings.from_env({**home, OUTBOX_URL_ENV: f" {url} "})
    assert settings.outbox_url == url and SECRET not in repr(settings)
    with pytest.raises(ConfigurationError, match=f"{OUTBOX_URL_ENV} is not a SQLAlchemy URL") as caught:
        Settings.from_env({**home, OUTBOX_URL_ENV: f"://desk:{SECRET}@db"})
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigurationError, match="not a SQLAlchemy URL"):
        Settings.local(tmp_path, outbox_url=f"://desk:{SECRET}@db")


def test_the_deployment_puts_both_routes_on_the_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = f"sqlite:///{tmp_path / 'outbox.db'}"
    resources = monitoring_resources(Settings.local(tmp_path, outbox_url=database))
    for name in ("pager", "research"):
        route = resources[name].get_route()
        assert isinstance(route.outbox, SqlOutbox) and isinstance(route.other_outbox, SqlOutbox)
        assert route.outbox.route == name and str(route.outbox.url) == database
    assert isinstance(monitoring_resources(Settings.local(tmp_path))["pager"].get_route().outbox, Outbox)

    # a URL with a password reaches the resources as the environment variable's name, never its value
    with_password = f"postgresql+psycopg://desk:{SECRET}@db.internal:5432/alerts"
    monkeypatch.setenv(OUTBOX_URL_ENV, with_password)
    secret = monitoring_resources(Settings.from_env({OUTBOX_URL_ENV: with_password, "ML_PLATFORM_HOME": str(tmp_path)}))
    assert secret["pager"].outbox_url == dg.EnvVar(OUTBOX_URL_ENV)
    with dg.build_resources({"pager": secret["pager"]}) as built:
        assert built.pager.outbox_url == with_password  # read at run time, from the environment


def test_a_route_resource_takes_a_folder_or_a_database_not_both(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'outbox.db'}"
    for resource in (PagerResource, ResearchResource):
        with pytest.raises(ConfigurationError, match="not both"):
            resource(outbox_dir=str(tmp_path), outbox_url=database)
        with pytest.raises(ConfigurationError, match=f"{resource.__name__}.outbox_url .*in-memory SQLite"):
            resource(outbox_url="sqlite://")
        route = resource(outbox_url=database).get_route()
        assert isinstance(route.outbox, SqlOutbox) and route.endpoint == "outbox"
    pager = PagerResource(outbox_url=database).get_route()
    assert pager.send(incident()).delivered and len(SqlOutbox(database, "pager").read().records) == 2
