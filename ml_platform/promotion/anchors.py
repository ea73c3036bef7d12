"""The ledger anchors the promotion and rollback runs leave in the Dagster instance, read back for ``audit verify``.

Each move made in a run (``record_promotion``, ``rollback_champion``) records its ``ledger_seq`` and
``entry_hash`` in the step's output metadata: an anchor in the Dagster instance's database, beside the
MLflow tag. A move made outside a run (the CLI's ``rollback``, the shortcut) leaves only the MLflow tag.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from ml_platform.champions.anchor import AnchorReading, head_report
from ml_platform.champions.chain import ChainReport
from ml_platform.champions.service import ChampionService
from ml_platform.errors import ConfigurationError
from ml_platform.promotion.job import JOB_MODEL_TAG as PROMOTES_TAG
from ml_platform.promotion.rollback_job import JOB_MODEL_TAG as ROLLS_BACK_TAG
from ml_platform.registry.entities import check_model_name

__all__ = ["DEFAULT_RUNS", "cross_check_runs", "open_instance", "run_anchor"]

DEFAULT_RUNS = 50
"""How many of the newest promotion and of the newest rollback runs of a model are read."""


def _value(raw: Any) -> Any:
    return getattr(raw, "value", raw)


def run_anchor(instance: dg.DagsterInstance, model: str, *, runs: int = DEFAULT_RUNS) -> AnchorReading:
    """The newest ledger anchor ``model``'s promotion and rollback runs recorded (highest ``ledger_seq``).

    Reads the ``runs`` newest runs of each job (by their model tag) and their step outputs; a run
    without a recorded move (refused, or killed before the step returned) anchors nothing.
    """
    check_model_name(model)
    found: list[tuple[int, str, str]] = []
    for tag in (PROMOTES_TAG, ROLLS_BACK_TAG):
        for record in instance.get_run_records(dg.RunsFilter(tags={tag: model}), limit=runs):
            run_id = record.dagster_run.run_id
            for event in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
                data = event.dagster_event.step_output_data if event.dagster_event else None
                meta = dict(data.metadata or {}) if data is not None else {}
                if "ledger_seq" in meta and "entry_hash" in meta:
                    found.append((int(_value(meta["ledger_seq"])), str(_value(meta["entry_hash"])), run_id))
    if not found:
        return AnchorReading(None, f"the output metadata of {model!r}'s promotion and rollback runs")
    seq, entry_hash, run_id = max(found)
    return AnchorReading(f"{seq}:{entry_hash}", f"the output metadata of Dagster run {run_id}")


def open_instance() -> dg.DagsterInstance:
    """The Dagster instance of ``DAGSTER_HOME`` (where the deployment's runs are recorded).

    Raises:
        ConfigurationError: ``DAGSTER_HOME`` is not set, or names no usable instance.
    """
    try:
        return dg.DagsterInstance.get()
    except dg.DagsterError as exc:
        raise ConfigurationError(f"the promotion and rollback runs are read from the Dagster instance of "
                                 f"DAGSTER_HOME, which could not be opened ({exc}): set DAGSTER_HOME to the "
                                 "deployment's Dagster home, or leave out --with-runs") from exc


def cross_check_runs(service: ChampionService, instance: dg.DagsterInstance, report: ChainReport) -> ChainReport:
    """``report`` (``audit verify``'s, against the MLflow anchor) cross-checked with the runs' anchor too.

    Catches a cut tail whose MLflow tag was rewritten along with the ledger (both in one database).

    Returns:
        ``report`` when it already names a problem or the runs' anchor agrees (or is behind: moves
        made outside a run); otherwise the report of the head against the runs' anchor.
    """
    if not report.ok:
        return report
    reading = run_anchor(instance, report.model)
    if report.walked:
        again = service.ledger.verify(report.model, strict=False, anchor=reading)
    else:
        again = head_report(report.model, service.ledger.head(report.model), reading)
    return report if again.ok else again
