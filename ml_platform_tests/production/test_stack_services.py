"""The local production stack as booted: one process group per service, each with its own local disk, the
production configuration files, secrets only in environment variables, and PostgreSQL demanding the password."""

from __future__ import annotations

import shlex
from pathlib import Path

import psycopg
import pytest
from prod_local.environment import DAGSTER_DB, PROCESS_FOLDERS

from ml_platform_tests.production.stack import GROUP, PRODUCTION, ProductionStack, run_launcher

pytestmark = [pytest.mark.xdist_group(GROUP), pytest.mark.postgres, pytest.mark.daemon]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").split("=", 1) for item in raw if b"=" in item)


def test_postgres_refuses_the_stacks_role_without_its_password(prod_stack: ProductionStack) -> None:
    pg = prod_stack.state.postgres
    assert pg is not None
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(host=pg.host, port=pg.port, dbname=DAGSTER_DB, user=prod_stack.env["DAGSTER_PG_USERNAME"],
                        password="", connect_timeout=10).close()
    with prod_stack.connect() as conn:
        assert conn.execute("SELECT current_user").fetchone() == (prod_stack.env["DAGSTER_PG_USERNAME"],)


def test_each_process_has_its_own_local_disk_and_the_production_configuration(prod_stack: ProductionStack) -> None:
    seen: dict[str, set[str]] = {"HOME": set(), "ML_PLATFORM_HOME": set(), "TMPDIR": set(), "DAGSTER_HOME": set()}
    # redis-server writes its process title over its environment block: /proc/PID/environ no longer shows it
    readable = [s for s in prod_stack.state.services if s.name != "redis"]
    for service in prod_stack.state.services:
        assert service.alive(), f"{service.name} is not running"
        root = prod_stack.homes / service.name
        assert Path(f"/proc/{service.pid}/cwd").resolve() == root / "cwd"
        assert sorted(p.name for p in root.iterdir()) == sorted(PROCESS_FOLDERS)
    for service in readable:
        env = _environ(service.pid)
        root = prod_stack.homes / service.name
        for name, folder in (("HOME", "home"), ("ML_PLATFORM_HOME", "ml_platform"), ("TMPDIR", "tmp"),
                             ("DAGSTER_HOME", "dagster")):
            assert env[name] == str(root / folder), (service.name, name)
            seen[name].add(env[name])
        assert (root / "dagster" / "dagster.yaml").resolve() == PRODUCTION / "dagster.yaml"
        assert env["ML_PLATFORM_DEPLOYMENT"] == "production" and env["ML_PLATFORM_EXECUTOR"] == "celery"
    assert all(len(values) == len(readable) for values in seen.values()), seen


def test_secrets_are_in_environment_variables_only(prod_stack: ProductionStack) -> None:
    password = prod_stack.env["DAGSTER_PG_PASSWORD"]
    secret = prod_stack.env["AWS_SECRET_ACCESS_KEY"]
    assert len(password) >= 24
    for service in prod_stack.state.services:
        cmdline = Path(f"/proc/{service.pid}/cmdline").read_bytes().decode(errors="replace")
        assert password not in cmdline and secret not in cmdline, service.name
        assert password not in (service.url or "")
        assert password not in Path(service.log).read_text(errors="replace"), f"{service.name}'s log"
    for name, value in prod_stack.env.items():
        if name.endswith(("_URL", "_URI", "_BROKER", "_BACKEND")):
            assert password not in value, name
    state_file = prod_stack.layout.state / "state.json"
    assert state_file.stat().st_mode & 0o077 == 0  # the secrets it holds are its owner's only


def test_env_prints_the_client_environment_and_start_refuses_a_running_stack(prod_stack: ProductionStack) -> None:
    printed = run_launcher("env", prod_stack.layout.state, timeout=120)
    assert printed.returncode == 0, printed.stderr
    exports = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1)
                   for line in printed.stdout.splitlines())
    assert exports["ML_PLATFORM_MLFLOW_TRACKING_URI"] == prod_stack.state.service("mlflow").url
    assert exports["ML_PLATFORM_STORAGE"].startswith("s3://")
    again = run_launcher("start", prod_stack.layout.state, timeout=120)
    assert again.returncode == 1 and "already running" in again.stderr
    assert all(service.alive() for service in prod_stack.state.services)
