"""``reproduce_version``: rebuild a registered model from its record in an isolated work directory and certify it.

How it works, and why: docs/architecture.md, "ml_platform/reproduce/service.py".
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ml_platform.io.store import PinnedStore
from ml_platform.registry.store import ModelRegistry
from ml_platform.reproduce.beside import BesideProduction, ProductionDagster
from ml_platform.reproduce.certificate import Certificate, certificate_of
from ml_platform.reproduce.checkout import check_workdir, repository_root
from ml_platform.reproduce.old_commit import OldCode, OldCodeDagster, check_out_code, old_code_dagster
from ml_platform.reproduce.plan import ReproductionPlan, plan_reproduction
from ml_platform.reproduce.publish import StoredCertificate, store_certificate
from ml_platform.reproduce.rebuild import OldCodeRun, PassOutcome, connect, run_pass
from ml_platform.reproduce.record import ReproductionRecord

__all__ = ["REPRODUCES_TAG", "Reproduction", "certificate_facts", "certify", "reproduce_version"]

REPRODUCES_TAG = "ml_platform/reproduces"


@dataclass(frozen=True)
class Reproduction:
    """The outcome: the certificate, where it is stored, and the work directory's deployment.

    ``backfill_id`` is the first backfill (the training set's pass); ``backfill_ids`` every pass's, in order."""

    certificate: Certificate
    stored: StoredCertificate | None
    workdir: Path
    backfill_id: str | None
    backfill_ids: tuple[str, ...] = ()


def _say(message: str) -> None:
    return None


def reproduce_version(
    model: str,
    version: str | int,
    *,
    workdir: str | os.PathLike[str],
    registry: ModelRegistry,
    store: PinnedStore,
    repo: str | os.PathLike[str] = ".",
    defs: str | None = None,
    timeout_seconds: float = 3600.0,
    store_result: bool = True,
    beside: BesideProduction | None = None,
    say: Callable[[str], None] = _say,
) -> Reproduction:
    """Reproduce ``model`` ``version`` in ``workdir`` and certify it (see the module docstring).

    Args:
        registry / store: production's registry and store (read; the certificate is written beside the version).
        repo: a folder inside the project's git repository.
        defs: ``module:attr`` of the project's Definitions at the recorded commit; default: the one
            code location of that commit's ``workspace.yaml``.
        timeout_seconds: bound on the backfill and on the training run.
        store_result: store the certificate in MLflow beside the version.
        beside: production's Dagster, to run the old commit as a second code location beside production's
            own (its backfill on production's backfills page); None: an isolated Dagster in ``workdir``.
        say: progress lines.

    Raises:
        ConfigurationError: a malformed name, or a work directory that exists and is not empty.
        ModelNotFound: unknown model or version.
        ReproductionFailed: the record lacks what is needed, the commit is not in the repository, the
            lock differs, recorded versions were collected, or the old code cannot run; all named.
    """
    record = ReproductionRecord.from_registry(registry, model, version)
    plan = plan_reproduction(store, model, record.version, record.contract.training_set_data_hash)
    root_repo = repository_root(repo)
    if beside is not None:
        ProductionDagster.ping(beside.url)
    work = check_workdir(workdir)  # only now: every refusal above leaves no work directory behind
    code = check_out_code(record, root_repo, work, say=say)
    dagster = old_code_dagster(record, code, work, defs=defs, beside=beside, say=say)
    first = plan.passes[0]
    say(f"data: {len(first.seeded)} source partitions seeded as delivered, {len(first.rebuilt)} partitions to "
        f"backfill, {plan.live_days} live signal days to score"
        + (f", in {len(plan.passes)} passes (live days that read revised versions)" if len(plan.passes) > 1 else ""))
    tags = {REPRODUCES_TAG: f"{model}:{record.version}", "ml_platform/commit": record.commit}
    isolated = PinnedStore(dagster.settings.storage)
    with dagster.services as services:
        say(f"the reproduction's Dagster UI: {services.url} (Backfills)" if beside is None
            else f"production's Dagster UI: {services.url} (Backfills), location {dagster.location.name}")
        run = connect(services, plan, dagster.namespace, beside=beside is not None, tags=tags,
                      timeout=timeout_seconds)
        outcomes = tuple(run_pass(run, step, plan, record, production=store, isolated=isolated,
                                  settings=dagster.settings, say=say) for step in plan.passes)
    return certify(record, plan, code, dagster, run, outcomes, work=work, registry=registry if store_result else None)


def certificate_facts(plan: ReproductionPlan, code: OldCode, dagster: OldCodeDagster, run: OldCodeRun,
           outcomes: Sequence[PassOutcome], *, work: Path) -> dict[str, object]:
    """The certificate's facts, assembled once from the steps' results, in the order the steps learnt them."""
    facts: dict[str, object] = {"workdir": str(work), "training_set": plan.training_key,
                                "recorded_versions": len(plan.lineage.partitions), "live_days": plan.live_days,
                                "passes": len(plan.passes)}
    if code.git_diff_sha256 is not None:
        facts["git_diff_sha256"] = code.git_diff_sha256
    facts["environment_differences"] = list(code.differences)
    facts["deployment"] = dagster.description
    facts["dagster_ui"] = run.services.url
    facts["code_location"] = dagster.location.name
    facts["key_prefix"] = "/".join(run.prefix)
    facts["executor"] = "in_process" if run.execution else "the project's own"
    backfills = [{"id": o.backfill.outcome.backfill_id, "status": o.backfill.outcome.status,
                  "runs": len(o.backfill.outcome.runs),
                  "pass": o.index + 1, "partitions": o.backfill.partitions} for o in outcomes if o.backfill]
    if backfills:
        facts["backfill"] = backfills[0]
        facts["backfills"] = backfills
    timings: dict[str, float] = {"environment_s": code.seconds}
    for outcome in outcomes:
        if outcome.backfill is not None:
            timings[f"backfill_s{'' if outcome.index == 0 else outcome.index + 1}"] = outcome.backfill.seconds
        if outcome.retrained is not None:
            timings["training_s"] = outcome.retrained.seconds
        if outcome.signals_seconds is not None:
            timings["signals_s"] = round(timings.get("signals_s", 0.0) + outcome.signals_seconds, 2)
    facts["timings"] = timings
    return facts


def certify(record: ReproductionRecord, plan: ReproductionPlan, code: OldCode, dagster: OldCodeDagster,
            run: OldCodeRun, outcomes: Sequence[PassOutcome], *, work: Path,
            registry: ModelRegistry | None) -> Reproduction:
    """The certificate of every comparison, in the order made (environment, each pass, the live days no pass
    could hold), with its facts; written to the work directory and, given ``registry``, stored beside the
    version."""
    comparisons = [code.environment, *(c for o in outcomes for c in o.comparisons), *plan.unreproducible]
    certificate = certificate_of(comparisons, model=record.model, version=record.version, commit=record.commit,
                                 facts=certificate_facts(plan, code, dagster, run, outcomes, work=work))
    (work / "certificate.json").write_bytes(certificate.to_json())
    (work / "certificate.md").write_text(certificate.summary())
    stored = None if registry is None else store_certificate(
        registry, certificate, stamp=dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ"))
    backfill_ids = tuple(o.backfill.outcome.backfill_id for o in outcomes if o.backfill)
    return Reproduction(certificate, stored, work, backfill_ids[0] if backfill_ids else None, backfill_ids)
