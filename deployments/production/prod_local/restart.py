"""Restart one service of a running stack in place: the same port, settings, home and log; wait until it answers.

``python -m prod_local restart SERVICE``, or :func:`restart` from a test. What each restart does (and models):

* ``postgres``: ``pg_ctl -m fast stop`` then ``start`` on the same data folder and port (an operator's restart:
  every open session is ended, committed data stays);
* ``s3``: the server process is killed (``SIGKILL``) and started again; it replays its recording of every
  changing request before it listens (:mod:`prod_local.s3_server`), so the objects survive, as on a real
  S3 server's disk;
* ``mlflow``, ``webserver``, ``daemon``: the process group is stopped (``SIGTERM``, ``SIGKILL`` after a grace)
  and the same command started again; their state is PostgreSQL's (and S3's for MLflow's artefacts);
* ``code-server``: the gRPC server process alone is stopped and started again. The run workers it started stay:
  they are separate pods in production (a redeploy of the user code does not kill running runs);
* ``worker-1``, ``worker-2``: the worker's pool process, which runs the step, is killed (``SIGKILL``, as the
  kernel's out-of-memory killer does); once the worker has reported the lost task to the result backend
  (Celery's ``WorkerLostError``: the run worker fails the step with it) the rest of its process group is killed
  and a replacement of the same name started. Not modelled: the whole worker lost at once (its machine gone).
  Nobody then reports the task, and with Celery's defaults (the task acknowledged when it starts) the run
  waits on it until run monitoring's ``max_runtime_seconds``; redelivery (``task_acks_late`` with a broker
  visibility timeout) would rerun a step still running past that timeout on a second worker.

Redis is not restartable here: the broker holds the queued steps in memory only (see services.start_redis).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psycopg

from prod_local import services as sv
from prod_local.environment import BUCKET, REGION, process_env
from prod_local.errors import StackError
from prod_local.processes import Service, group_members, stop_services, wait_until
from prod_local.stack import Layout
from prod_local.state import StackState, load_state, save_state

__all__ = ["RESTARTABLE", "restart"]

RESTARTABLE = ("postgres", "s3", "mlflow", "code-server", "webserver", "daemon", "worker-1", "worker-2")
_GRACE = 20.0


def restart(layout: Layout, name: str, say: Callable[[str], None] = print) -> StackState:
    """Restart service ``name`` of the stack recorded in ``layout``'s state folder; the state as recorded after.

    Returns once the new process answers as the stack's start waits for it (for the daemon: once it has
    reported a heartbeat since the restart).

    Raises:
        StackError: no stack is recorded, ``name`` is not a restartable service, or it did not come back (naming
            it and quoting its log).
    """
    if name not in RESTARTABLE:
        raise StackError(f"cannot restart {name!r}: the restartable services are {', '.join(RESTARTABLE)}")
    state = load_state(layout.state)
    if state is None:
        raise StackError(f"no stack recorded in {layout.state}; start one with make prod-local")
    if name == "postgres":
        return _restart_postgres(state, say)
    old = state.service(name)
    env, cwd, log = process_env(state.env, layout.home(name)), layout.home(name).cwd, layout.log(name)
    since = dt.datetime.now(dt.UTC).timestamp()
    mark = Path(log).stat().st_size if Path(log).exists() else 0
    state = _stop(state, old, say)
    say(f"starting {name} again" + (f" on port {old.port}" if old.port else ""))
    if name == "s3":
        new = sv.start_s3(_port(old), env, cwd, log, layout.s3_data)
    elif name == "mlflow":
        assert state.postgres is not None
        new = sv.start_mlflow(_port(old), state.postgres, env, cwd, log)
    elif name == "code-server":
        new = sv.start_code_server(_port(old), env, cwd, log)
    elif name == "webserver":
        new = sv.start_webserver(_port(old), layout.workspace, env, cwd, log)
    elif name == "daemon":
        new = sv.start_daemon(layout.workspace, env, cwd, log)
    else:
        new = sv.start_worker(name, layout.celery_yaml, env, cwd, log)
    state = replace(state, services=tuple(new if s is old else s for s in state.services))
    save_state(state)
    _wait(state, new, since, mark)
    say(f"{name} is back (pid {new.pid})")
    return state


def _port(service: Service) -> int:
    if service.port is None:
        raise StackError(f"{service.name} has no recorded port")
    return service.port


def _stop(state: StackState, old: Service, say: Callable[[str], None]) -> StackState:
    """Stop ``old`` as its restart requires; the state, with what of it must outlive the restart recorded."""
    if old.name == "code-server":  # the server alone: the run workers it started go on (see the module's doc)
        say(f"stopping {old.name} (pid {old.pid}); its run workers go on")
        if old.alive():
            os.kill(old.pid, signal.SIGTERM)
        deadline = time.monotonic() + _GRACE
        while old.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        if old.alive():
            os.kill(old.pid, signal.SIGKILL)
        if group_members(old.pid):  # recorded apart, so that stop ends what is left of them with the stack
            state = replace(state, retired=(*state.retired, replace(old, name=f"{old.name} (run workers)")))
            save_state(state)
        return state
    if old.name.startswith("worker-"):
        _kill_pool(old, say)
    if old.name == "s3" or old.name.startswith("worker-"):
        say(f"killing {old.name} (process group {old.pid}, SIGKILL)")
        stop_services([old], grace=0.0)
    else:
        say(f"stopping {old.name} (process group {old.pid})")
        stop_services([old], grace=_GRACE)
    if old.group_alive():
        raise StackError(f"{old.name} (process group {old.pid}) outlived its stop; nothing was started in its place")
    return state


def _kill_pool(worker: Service, say: Callable[[str], None]) -> None:
    """SIGKILL the worker's pool processes (its main process's children) and wait, bounded, until the main
    process has logged their loss: it has then reported the task it lost as failed."""
    log = Path(worker.log)
    mark = log.stat().st_size
    pool = [pid for pid in group_members(worker.pid) if pid != worker.pid and _parent(pid) != worker.pid]
    say(f"killing the pool process(es) {pool} of {worker.name} (SIGKILL)")
    for pid in pool:
        os.kill(pid, signal.SIGKILL)

    def reported() -> bool | str:
        with log.open("rb") as handle:
            handle.seek(mark)
            text = handle.read().decode("utf-8", errors="replace")
        return "signal 9 (SIGKILL)" in text or "no report of the lost pool process in its log yet"

    wait_until(worker, reported, timeout=120.0, what="the lost pool process reported")


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def _restart_postgres(state: StackState, say: Callable[[str], None]) -> StackState:
    if state.postgres is None:
        raise StackError("the stack records no PostgreSQL server")
    say(f"restarting PostgreSQL on port {state.postgres.port}")
    state.postgres.restart("fast")
    pg = state.postgres
    with psycopg.connect(host=pg.host, port=pg.port, dbname=state.env["DAGSTER_PG_DB"],
                         user=state.env["DAGSTER_PG_USERNAME"], password=state.env["DAGSTER_PG_PASSWORD"],
                         connect_timeout=30) as conn:
        conn.execute("SELECT 1")
    say("PostgreSQL is back")
    return state


def _wait(state: StackState, new: Service, since: float, log_mark: int) -> None:
    name = new.name
    if name == "s3":
        import boto3

        client = boto3.client("s3", endpoint_url=new.url, region_name=REGION,
                              aws_access_key_id=state.env["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=state.env["AWS_SECRET_ACCESS_KEY"])
        wait_until(new, lambda: bool(client.head_bucket(Bucket=BUCKET)), timeout=sv.SERVER_TIMEOUT,
                   what=f"bucket {BUCKET} back")
    elif name == "mlflow":
        sv.wait_mlflow(new)
    elif name == "code-server":
        sv.wait_code_server(new)
    elif name == "webserver":
        sv.wait_webserver(new)
    elif name == "daemon":
        _wait_daemon_heartbeat(new, state.service("webserver"), since)
    else:
        def ready() -> bool | str:
            with open(new.log, "rb") as handle:
                handle.seek(log_mark)
                text = handle.read().decode("utf-8", errors="replace")
            return (f"{name}@" in text and " ready." in text) or "no 'ready.' line in its log since the restart"

        wait_until(new, ready, timeout=sv.DAGSTER_TIMEOUT, what="connected to the broker")


def _wait_daemon_heartbeat(daemon: Service, webserver: Service, since: float) -> None:
    """Every required daemon healthy, with a heartbeat after ``since``: the old process's last ones do not count."""
    from ml_platform.reproduce.dagster_services import graphql_request

    query = ("query { instance { daemonHealth { allDaemonStatuses { daemonType required healthy "
             "lastHeartbeatTime } } } }")

    def fresh() -> bool | str:
        data = graphql_request(webserver.url or "", query, timeout=10)
        statuses = [s for s in data["instance"]["daemonHealth"]["allDaemonStatuses"] if s["required"]]
        stale = [s["daemonType"] for s in statuses if not s["healthy"] or (s["lastHeartbeatTime"] or 0) <= since]
        return not stale or f"no heartbeat since the restart: {', '.join(stale)}"

    wait_until(daemon, fresh, timeout=sv.DAGSTER_TIMEOUT, what="a heartbeat of every required daemon")
