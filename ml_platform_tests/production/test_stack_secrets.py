"""No secret of the production stack is written anywhere it writes.

The stack runs with distinctive secrets: the PostgreSQL password of its role (Dagster's storage, MLflow's
stores, the ledger, the outboxes), the S3 secret access key, the PagerDuty routing key and the Slack webhook
URL (whose path is the credential). The test makes the stack work (the example's lifecycle through GraphQL:
a feature backfill, two trainings, promotions through the gates, a rollback; then an infra check paging
on-call through the Celery workers and a finding sent to research through the deployment's own route), then
reads back everything the stack wrote (:mod:`ml_platform_tests.production.stack_writes`: every file of the
launcher's state folder and of the PostgreSQL server, a dump of every database row by row, every object of
every bucket, every Redis key) and looks for each secret, plain, URL-encoded, JSON-escaped, UTF-16 or base64.
Every leak is named by file, object, table and row, or key.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from prod_local.state import STATE_FILE

from ml_platform.reproduce.backfill import launch_asset_backfill, wait_for_backfill, wait_for_run
from ml_platform_tests.harness.secrets import Leak, Secrets
from ml_platform_tests.production.alert_sink import AlertSink
from ml_platform_tests.production.lifecycle import StackLifecycle, stack_lifecycle
from ml_platform_tests.production.stack import GROUP, ProductionStack
from ml_platform_tests.production.stack_writes import SUPERUSER, stack_writes

pytestmark = [pytest.mark.xdist_group(GROUP), pytest.mark.postgres, pytest.mark.daemon, pytest.mark.slow]

__all__ = ["stack_lifecycle"]

#: Generous bounds: the steps run on Celery workers of a loaded 2-core machine.
RUN_TIMEOUT = 1200.0
#: Three trading days of the sample market data (it starts on 2000-03-01).
DAYS = ["2000-03-01", "2000-03-02", "2000-03-03"]


def _secrets(stack: ProductionStack, sink: AlertSink) -> Secrets:
    return Secrets({"the PostgreSQL password": stack.env["DAGSTER_PG_PASSWORD"],
                    "the S3 secret access key": stack.env["AWS_SECRET_ACCESS_KEY"],
                    "the PagerDuty routing key": sink.routing_key,
                    "the Slack webhook URL's credential": sink.webhook_token})


def _backfill(stack: ProductionStack) -> None:
    backfill = launch_asset_backfill(stack, {("market_bars",): DAYS}, tags={"ml_platform/test": "secrets"},
                                     title="secrets scan")
    outcome = wait_for_backfill(stack, backfill, timeout=RUN_TIMEOUT)
    assert outcome.succeeded, f"the backfill ended {outcome.status}: {outcome.runs}; logs in {stack.logs}"


def _page_on_call(stack: ProductionStack, sink: AlertSink) -> None:
    """Run infra_freshness_job now: with most expected partitions missing, its checks page on-call."""
    data = stack.graphql("""
        mutation ($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
          ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
          ... on RunConfigValidationInvalid { errors { message } } } }""",
                         {"params": {"selector": {"repositoryLocationName": stack.location_name,
                                                  "repositoryName": "__repository__",
                                                  "jobName": "infra_freshness_job"},
                                     "runConfigData": {"ops": {"infra_checks": {"config": {
                                         "as_of": dt.datetime.now(dt.UTC).isoformat()}}}}}})
    answer = data["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    outcome = wait_for_run(stack, answer["run"]["runId"], timeout=RUN_TIMEOUT)
    assert outcome.status == "SUCCESS", f"infra_freshness_job ended {outcome.status}; logs in {stack.logs}"
    keys = {page.get("routing_key") for page in sink.pages()}
    assert keys == {sink.routing_key}, f"the pager's events reached the endpoint with routing keys {keys}"


RESEARCH = textwrap.dedent("""
    import os
    import dagster as dg
    from ml_platform.deployment import monitoring_resources
    from ml_platform.monitoring.alerts import AlphaDriftFinding
    from ml_platform.settings import Settings

    finding = AlphaDriftFinding(key="alpha_ridge:1:sharpe", model="alpha_ridge", version="1",
                                summary="live Sharpe 0.1 below its validated 1.2", live_window="2000-03-01..2000-03-03",
                                validation_window="2000-01-03..2000-02-28")
    with dg.build_resources(monitoring_resources(Settings.from_env(os.environ))) as built:
        print(built.research.get_route().send(finding).status)
""")


def _tell_research(stack: ProductionStack, sink: AlertSink) -> None:
    """A finding through the research route of the deployment's own resources, in a process of the stack's
    environment (the drift sensor's path needs weeks of a champion's live PnL)."""
    client = stack.homes / "client"
    inherited = {k: v for k, v in os.environ.items()
                 if not k.startswith(("ML_PLATFORM_", "DAGSTER_", "AWS_", "MLFLOW_", "PG", "CELERY"))}
    env = {**inherited, **stack.env, "ML_PLATFORM_HOME": str(client / "ml_platform"), "HOME": str(client / "home"),
           "TMPDIR": str(client / "tmp")}
    done = subprocess.run([sys.executable, "-c", RESEARCH], env=env, cwd=client / "cwd", capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "delivered", (done.stdout, done.stderr[-3000:])
    assert sink.messages(), "no message reached the webhook"


def _plant_canaries(stack: ProductionStack, canary: str) -> None:
    """A known text in a file, an object, a database row and a Redis key of the stack: the scan must find it in
    each, or it would pass on what it cannot read."""
    import psycopg
    import redis

    (stack.homes / "client" / "tmp" / "canary.txt").write_text(canary)
    s3 = stack.s3()
    s3.create_bucket(Bucket="canary")
    s3.put_object(Bucket="canary", Key="deep/canary.bin", Body=b"\0" + canary.encode() + b"\0")
    pg = stack.state.postgres
    assert pg is not None
    with psycopg.connect(host=pg.host, port=pg.port, dbname="postgres", user=SUPERUSER, autocommit=True) as conn:
        conn.execute("CREATE DATABASE canary")
    with psycopg.connect(host=pg.host, port=pg.port, dbname="canary", user=SUPERUSER, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (note text)")
        conn.execute("INSERT INTO notes VALUES ('plain'), (%s)", (json.dumps({"nested": canary}),))
    redis.Redis(host="127.0.0.1", port=stack.state.service("redis").port, db=15).rpush("canary", b"x", canary)


def _report(leaks: list[Leak]) -> str:
    return f"{len(leaks)} leak(s):\n" + "\n".join(f"  {leak}" for leak in leaks)


def test_no_secret_is_written_anywhere_the_stack_writes(prod_stack: ProductionStack, alert_sink: AlertSink,
                                                        stack_lifecycle: StackLifecycle) -> None:
    secrets = _secrets(prod_stack, alert_sink)
    assert stack_lifecycle.driven.rollback.status == "SUCCESS"  # trained, promoted and rolled back: all recorded
    _backfill(prod_stack)
    _page_on_call(prod_stack, alert_sink)
    _tell_research(prod_stack, alert_sink)

    canary = f"canary-{uuid.uuid4().hex}"
    _plant_canaries(prod_stack, canary)

    written = list(stack_writes(prod_stack))
    places = [where for where, _ in written]
    seen = sorted(leak.where for leak in Secrets({"canary": canary}).find_all(written))
    assert {where.split(" ")[0] for where in seen} >= {"Redis", "S3", "database", "state"}, seen
    assert "database canary, table public.notes, row 2" in seen, seen
    # the scan reads what the stack wrote, not nothing: the store, the compute logs, the run records, the logs
    assert any("S3 object s3://ml-platform/features/" in where for where in places), places[:50]
    assert any("database dagster, table public.event_logs" in where for where in places)
    assert any("database mlflow, table" in where for where in places)
    assert any(where.endswith("code-server.log") for where in places)
    # the alerts' own record: the outboxes, in the stack's database (ML_PLATFORM_OUTBOX_URL)
    assert any("database mlflow, table public.ml_platform_outbox," in where for where in places)
    # MLflow's record of the trainings (params, tags, versions), its artefacts, and the champion ledger
    for table in ("params", "tags", "model_versions", "model_version_tags", "ml_platform_ledger_entries"):
        assert any(f"database mlflow, table public.{table}," in where for where in places), table
    assert any("S3 object s3://ml-platform/mlflow/" in where for where in places)
    print("\n".join(sorted({where.rsplit(", row", 1)[0] for where in places if not where.startswith("state")})))
    leaks = secrets.find_all(written)
    assert leaks == [], _report(leaks)

    # and it would see them: the state file keeps the stack's environment (its secret store) on purpose
    state = (prod_stack.layout.state / STATE_FILE).read_bytes()
    found = {leak.secret for leak in secrets.find(state, str(prod_stack.layout.state / STATE_FILE))}
    assert found == set(secrets.values), found
    assert json.loads(state)["env"]["ML_PLATFORM_PAGERDUTY_ROUTING_KEY"] == alert_sink.routing_key
