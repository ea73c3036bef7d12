"""Each service of the production stack restarted in the middle of the work: the work resumes, or fails with an
error naming the service, and nothing stored is lost or half-written.

One test per service, on the one stack of the session (``prod_stack``): a small backfill of the market bars (the
data path: PostgreSQL, the S3 server, the user-code server, the webserver, the daemon, a Celery worker) or one
promotion (the registry path: the MLflow server), restarted in place (``python -m prod_local restart SERVICE``:
same port and settings, see prod_local/restart.py for what each restart models) the moment a step of the run has
started, as its events report. Afterwards ``ml-platform verify`` passes on what the work wrote (cross-checked with
Dagster's materializations), no temporary object or manifest without its object is left, a failed run is launched
again and succeeds, and ``ml-platform audit verify`` passes on the ledger.
"""

from __future__ import annotations

import pytest
from prod_local.environment import MLFLOW_DB
from prod_local.restart import restart
from quant_alpha.project import MODEL_NAME

from ml_platform_tests.harness.example_lifecycle import TRAINED_BY
from ml_platform_tests.production.faults import (
    Outcome,
    busy_worker,
    check_nothing_half_written,
    days,
    launch_backfill,
    launch_promotion,
    ml_platform,
    wait_backfill,
    wait_run,
    wait_step_started,
)
from ml_platform_tests.production.lifecycle import StackLifecycle, stack_lifecycle
from ml_platform_tests.production.stack import GROUP, ProductionStack

pytestmark = [pytest.mark.xdist_group(GROUP), pytest.mark.postgres, pytest.mark.daemon, pytest.mark.beside]

__all__ = ["stack_lifecycle"]

#: A few days of market bars per service, each its own: what one restart's work wrote is checked alone.
BACKFILL_DAYS = 6
FIRST_DAY = {"postgres": "2012-01-09", "s3": "2012-02-06", "code-server": "2012-03-05", "webserver": "2012-04-02",
             "daemon": "2012-05-07", "worker": "2012-06-04"}
#: Services a running step never talks to: their restart must not fail the work at all.
UNFELT = ("code-server", "webserver", "daemon")


def _names(stack: ProductionStack, service: str, text: str) -> bool:
    """Whether a failure's text names the restarted service (by its address; a worker by what it lost)."""
    if service == "postgres":
        assert stack.state.postgres is not None
        return f"port {stack.state.postgres.port}" in text or f":{stack.state.postgres.port}" in text
    if service == "s3":
        return f"S3 server at {stack.state.service('s3').url} unreachable" in text
    if service == "worker":
        return "WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL)" in text
    found = stack.state.service(service)
    return f":{found.port}" in text


def _check_stored(stack: ProductionStack, monkeypatch: pytest.MonkeyPatch, service: str,
                  partitions: list[str]) -> None:
    """Nothing half-written, and ``ml-platform verify`` (cross-checked with Dagster) passes on what was written."""
    check_nothing_half_written(stack)
    for day in (partitions[0], partitions[-1]):
        verified = ml_platform(stack, monkeypatch, "verify", "market_bars", "--partition", day, "--no-registry")
        assert verified.exit_code == 0, f"ml-platform verify after restarting {service}:\n{verified.output}"


@pytest.mark.parametrize("service", list(FIRST_DAY))
def test_a_backfill_resumes_or_fails_naming_the_restarted_service(prod_stack: ProductionStack,
                                                                 monkeypatch: pytest.MonkeyPatch, service: str) -> None:
    partitions = days(FIRST_DAY[service], BACKFILL_DAYS)
    backfill = launch_backfill(prod_stack, partitions, f"fault-{service}")
    run = wait_step_started(prod_stack, step="market_bars", backfill_id=backfill)
    restarted = busy_worker(prod_stack, run, "market_bars") if service == "worker" else service
    restart(prod_stack.layout, restarted, say=lambda _: None)
    outcome = wait_backfill(prod_stack, backfill)
    if service in UNFELT:
        assert outcome.all_succeeded, f"restarting {service} failed the backfill:\n{outcome.runs}\n{outcome.text}"
    elif service == "worker":  # the step's process died: its run fails naming that, Dagster's retry of it succeeds
        assert outcome.failed and _names(prod_stack, service, outcome.text), f"{outcome.runs}\n{outcome.text}"
        assert outcome.resumed, f"the run lost with the worker was not retried to success:\n{outcome.runs}"
    elif not outcome.all_succeeded:  # a store the step talks to: its retries ride the restart out, or it fails
        assert _names(prod_stack, service, outcome.text), (
            f"the backfill failed after restarting {service} without naming it:\n{outcome.text}")
        again = wait_backfill(prod_stack, launch_backfill(prod_stack, partitions, f"fault-{service}-again"))
        assert again.all_succeeded, f"the backfill did not succeed once {service} was back:\n{again.text}"
    _check_stored(prod_stack, monkeypatch, service, partitions)


# -- the registry path: one promotion --------------------------------------------------------------------------

#: The promotion of the lifecycle's challenger (version 2) that every fault test launches, approved by whoever
#: trained it: it goes through the report, the rationale and the contract gates (each reading or writing the MLflow
#: server, the ledger and the store) and is refused by design at the four-eyes gate, so the ledger the lifecycle's
#: own tests check stays as the lifecycle left it.
_REFUSED_AT = "four_eyes_gate"
#: Original (the rationale gate refuses a copy of an earlier rationale); a refused promotion publishes none.
_RATIONALE = ("Fault drill on the production stack: the {service} service is restarted while this promotion's report "
              "is being written, to show the desk that a restart neither loses nor half-writes a champion move. The "
              "approver trained this version, so the four-eyes gate must refuse it and nothing may move at all.")


def _ledger_head(stack: ProductionStack) -> tuple[int, str]:
    with stack.connect(MLFLOW_DB) as conn:
        row = conn.execute("SELECT seq, entry_hash FROM ml_platform_ledger_heads WHERE model = %s",
                           (MODEL_NAME,)).fetchone()
    assert row is not None, f"no ledger head of {MODEL_NAME}: the lifecycle promoted nothing"
    return int(row[0]), str(row[1])


def _reached_the_refusing_gate(outcome: Outcome) -> bool:
    return (len(outcome.runs) == 1 and f"[{_REFUSED_AT}] " in outcome.text
            and "[GATE_FAILED] promotion gate 'four_eyes' refused: the approver" in outcome.text)


@pytest.mark.parametrize("service", ["mlflow", "postgres"])
def test_a_promotion_resumes_or_fails_naming_the_restarted_service(stack_lifecycle: StackLifecycle,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   service: str) -> None:
    stack = stack_lifecycle.stack
    head = _ledger_head(stack)
    config = {"model": MODEL_NAME, "version": stack_lifecycle.driven.versions[1], "approver": TRAINED_BY,
              "rationale": _RATIONALE.format(service=service)}

    def promote(label: str, *, restarting: str | None = None) -> Outcome:
        run = launch_promotion(stack, config, label)
        if restarting is not None:
            wait_step_started(stack, step="promotion_report", run_id=run)
            restart(stack.layout, restarting, say=lambda _: None)
        return wait_run(stack, run)

    outcome = promote(f"fault-{service}", restarting=service)
    if not _reached_the_refusing_gate(outcome):  # stopped before the four-eyes gate: by the restart, named
        assert _names(stack, service, outcome.text), (
            f"the promotion failed after restarting {service} without naming it:\n{outcome.runs}\n{outcome.text}")
        again = promote(f"fault-{service}-again")
        assert _reached_the_refusing_gate(again), f"{again.runs}\n{again.text}"
    assert _ledger_head(stack) == head  # nothing moved: no entry, half or whole
    audited = ml_platform(stack, monkeypatch, "audit", "verify", MODEL_NAME)
    assert audited.exit_code == 0, f"ml-platform audit verify after restarting {service}:\n{audited.output}"
    verified = ml_platform(stack, monkeypatch, "verify", "training_set")
    assert verified.exit_code == 0, f"ml-platform verify after restarting {service}:\n{verified.output}"
    check_nothing_half_written(stack)
