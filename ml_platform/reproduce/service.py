"""``reproduce_version``: rebuild a registered model from its record in an isolated work directory and certify it.

1. **record**: the version's contract and training parameters (:mod:`~ml_platform.reproduce.record`);
   the training set's recorded lineage in the production store, down to the sources, by data hash, and
   the live signal days the version served with the model-input versions they scored
   (:mod:`~ml_platform.reproduce.signals`);
2. **code**: the recorded commit checked out inside the work directory (with its recorded diff of
   uncommitted changes applied, for a model trained from a dirty tree);
3. **environment**: a virtual environment synced from that commit's ``uv.lock`` (its hash must be the
   recorded one), compared with the recorded environment lock package by package;
4. **data**: the old commit runs as a code location whose asset keys are all under ``repro/<commit>``
   (``ML_PLATFORM_KEY_NAMESPACE``) and whose store and MLflow are in the work directory: beside
   production's own location in production's Dagster (``beside=``, :mod:`~ml_platform.reproduce.beside`),
   or in an isolated Dagster deployment in the work directory (the default). The recorded source
   versions are seeded as delivered and a real asset **backfill** of every other recorded partition
   is executed by the daemon. Live days that read
   another version of a partition than training did (a vendor revision between them) get a later pass
   of their own: the versions they read seeded, what differs backfilled again (:mod:`~ml_platform.reproduce.passes`);
5. **model**: one run of the old code materializes the training set over its recorded window and trains
   with the recorded seed and parameters; the reproduced version becomes the reproduction's own champion
   and the old code's live signals score the recorded live days;
6. **compare** every partition's data hash, the training set's, the model's sha256 and every live
   signal day (all columns but the registry version number), and store the
   **certificate** beside the version in the production registry.

The production store and registry are only read, except for the certificate artefacts and tags.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_platform.champions.shortcut import record_champion_shortcut
from ml_platform.environment import DETERMINISM_ENV_VARS, EnvironmentLock, diff_environments
from ml_platform.errors import ReproductionFailed
from ml_platform.io.recorded_lineage import RecordedPartition
from ml_platform.io.store import PinnedStore
from ml_platform.keys import FrameKeys
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.store import ModelRegistry
from ml_platform.reproduce import backfill
from ml_platform.reproduce.beside import (
    BesideProduction,
    ProductionDagster,
    check_namespaced,
    definition_keys,
    interpreter_script,
)
from ml_platform.reproduce.certificate import Certificate, certificate_of
from ml_platform.reproduce.checkout import build_environment, check_workdir, checkout_commit, repository_root
from ml_platform.reproduce.compare import Comparison, ComparisonKind, compare_bytes, compare_partitions
from ml_platform.reproduce.dagster_services import (
    CodeLocation,
    DagsterServices,
    IsolatedDeployment,
    ReproductionDagster,
)
from ml_platform.reproduce.passes import ReproductionPass
from ml_platform.reproduce.plan import plan_reproduction
from ml_platform.reproduce.publish import StoredCertificate, store_certificate
from ml_platform.reproduce.record import ReproductionRecord
from ml_platform.reproduce.signals import compare_signals
from ml_platform.reproduce.sources import seed_sources
from ml_platform.settings import Settings
from ml_platform.workspace import workspace_target

__all__ = ["REPRODUCES_TAG", "Reproduction", "reproduce_version"]

REPRODUCES_TAG = "ml_platform/reproduces"
#: The old commit's asset keys live under ``repro/<first 12 hex digits of the commit>``.
NAMESPACE_ROOT = "repro"
TRAINED_MODEL = "trained_model"


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


def _definitions_target(source: Path, defs: str | None) -> tuple[str, str]:
    target = defs or workspace_target(source / "workspace.yaml")
    module, _, attribute = target.partition(":")
    return module, attribute or "defs"


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
    contract = record.contract
    plan = plan_reproduction(store, model, record.version, contract.training_set_data_hash)
    training_key, lineage, unreproducible = plan.training_key, plan.lineage, list(plan.unreproducible)
    root_repo = repository_root(repo)
    if beside is not None:
        ProductionDagster.ping(beside.url)
    work = check_workdir(workdir)  # only now: every refusal above leaves no work directory behind
    comparisons: list[Comparison] = []
    live_days = plan.live_days
    facts: dict[str, object] = {"workdir": str(work), "training_set": training_key,
                                "recorded_versions": len(lineage.partitions), "live_days": live_days,
                                "passes": len(plan.passes)}
    timings: dict[str, float] = {}

    dirty = f" with its recorded diff of uncommitted changes ({len(record.git_diff)} bytes)" if record.git_diff else ""
    say(f"code: commit {record.commit[:12]} of {root_repo}{dirty}")
    source = checkout_commit(root_repo, record.commit, work / "src", patch=record.git_diff)
    if record.git_diff:
        facts["git_diff_sha256"] = "sha256:" + hashlib.sha256(record.git_diff).hexdigest()
    say("environment: uv sync --frozen of that commit's uv.lock")
    started = time.perf_counter()
    rebuilt = build_environment(source, work / "venv", recorded_lock_hash=str(record.uv_lock_hash),
                                project_root=source)
    timings["environment_s"] = round(time.perf_counter() - started, 2)
    recorded_env = EnvironmentLock.from_dict(contract.environment_lock)
    differences = [d for d in diff_environments(recorded_env, rebuilt.lock).differences if not d.startswith("env ")]
    shown = "; ".join(differences[:5]) + (f" (+{len(differences) - 5} more)" if len(differences) > 5 else "")
    comparisons.append(Comparison(ComparisonKind.ENVIRONMENT, "environment (python, platform, uv.lock, packages, BLAS)",
                                  _environment_summary(recorded_env), _environment_summary(rebuilt.lock),
                                  shown or None))
    facts["environment_differences"] = differences

    settings = Settings.local(work / "home")
    deterministic = {name: value for name, value in recorded_env.env_vars if value is not None}
    module, attribute = _definitions_target(source, defs)
    namespace = (NAMESPACE_ROOT, record.commit[:12])
    old_env = {
        "ML_PLATFORM_HOME": str(settings.home), "ML_PLATFORM_DEPLOYMENT": "local", "ML_PLATFORM_ENV_POLICY": "warn",
        "ML_PLATFORM_REPRODUCTION": "1", "ML_PLATFORM_KEY_NAMESPACE": "/".join(namespace),
        **{k: v for k, v in deterministic.items() if k in DETERMINISM_ENV_VARS}}
    services: ReproductionDagster
    if beside is not None:
        location = CodeLocation(f"repro_{record.commit[:12]}", module, attribute, source,
                                interpreter_script(work / "python.sh", rebuilt.python, old_env))
        say(f"code location {location.name}: the old commit's definitions, keys under {'/'.join(namespace)}")
        check_namespaced(definition_keys(location), namespace)  # before production's Dagster sees it
        facts["deployment"] = f"beside production's code location ({beside.url})"
        services = ProductionDagster(beside, location, logs=work / "logs")
    else:
        location = CodeLocation(f"repro_{record.commit[:12]}", module, attribute, source, rebuilt.python)
        facts["deployment"] = "an isolated Dagster instance in the work directory"
        services = DagsterServices(IsolatedDeployment(work, location, env=old_env))
    isolated = PinnedStore(settings.storage)
    first = plan.passes[0]
    say(f"data: {len(first.seeded)} source partitions seeded as delivered, {len(first.rebuilt)} partitions to "
        f"backfill, {live_days} live signal days to score"
        + (f", in {len(plan.passes)} passes (live days that read revised versions)" if len(plan.passes) > 1 else ""))
    tags = {REPRODUCES_TAG: f"{model}:{record.version}", "ml_platform/commit": record.commit}
    backfills: list[dict[str, object]] = []
    assert lineage.root is not None
    with services:
        say(f"the reproduction's Dagster UI: {services.url} (Backfills)"
            if beside is None else f"production's Dagster UI: {services.url} (Backfills), location {location.name}")
        facts["dagster_ui"] = services.url
        facts["code_location"] = location.name
        training_path = training_key.split("/")
        model_path = [*training_path[:-1], TRAINED_MODEL]
        prefix = namespace if beside is not None else _key_prefix(services, namespace, model_path)
        facts["key_prefix"] = "/".join(prefix)
        # steps run in their run worker when the old code's executor allows it: no Python start per step
        execution = backfill.in_process_config(services, [[*prefix, *path] for path in [
            *{tuple(p.key.split("/")) for p in lineage.computed()}, training_path, model_path]])
        facts["executor"] = "in_process" if execution else "the project's own"
        for step in plan.passes:
            label = "" if len(plan.passes) == 1 else f" (pass {step.index + 1} of {len(plan.passes)})"
            seed_sources(store, isolated, step.as_lineage(lineage.root))
            if step.rebuilt:
                started = time.perf_counter()
                outcome = _backfill(services, step, prefix, tags=tags, execution=execution, timeout=timeout_seconds,
                                    title=f"reproduce {model} v{record.version}{label}",
                                    description=f"commit {record.commit}")
                timings[f"backfill_s{'' if step.index == 0 else step.index + 1}"] = round(
                    time.perf_counter() - started, 2)
                backfills.append({"id": outcome.backfill_id, "status": outcome.status, "runs": len(outcome.runs),
                                  "pass": step.index + 1, "partitions": len(step.rebuilt)})
                say(f"backfill {outcome.backfill_id}{label}: {outcome.status}, {len(outcome.runs)} runs in "
                    f"{round(time.perf_counter() - started, 2)} s")
            elif step.index > 0:
                say(f"pass {step.index + 1}: {len(step.seeded)} revised source partitions seeded, nothing to backfill")
            if step.index == 0:
                rebuilt_registry = _retrain(services, store, contract, record, model, training_path, model_path,
                                            prefix=prefix, settings=settings, tags=tags, execution=execution,
                                            timeout=timeout_seconds, timings=timings, say=say)
                reproduced_version = _newest_version(rebuilt_registry, model)
                comparisons.extend(_compare_pass(store, isolated, step, contract.keys))
                comparisons.extend(compare_partitions(store, isolated, [lineage.root], keys=contract.keys))
                comparisons[-1] = Comparison(ComparisonKind.TRAINING_SET, comparisons[-1].subject,
                                             comparisons[-1].recorded, comparisons[-1].reproduced,
                                             comparisons[-1].difference)
                reproduced_sha = rebuilt_registry.load_contract(model, reproduced_version).model_sha256
                comparisons.append(compare_bytes(ComparisonKind.MODEL, "model sha256", contract.model_sha256,
                                                 reproduced_sha))
                if live_days:
                    record_champion_shortcut(  # the reproduction's own registry, a local deployment
                        rebuilt_registry, model, reproduced_version, actor="ml-platform reproduce",
                        reason=f"reproduction of {model} version {record.version}: scores the live days it served",
                        production=settings.deployment == "production")
            else:
                comparisons.extend(_compare_pass(store, isolated, step, contract.keys))
            if step.live_days:
                started = time.perf_counter()
                _score_live_days(services, model, step.live_days, prefix, tags=tags, timeout=timeout_seconds,
                                 execution=execution)
                timings["signals_s"] = round(timings.get("signals_s", 0.0) + time.perf_counter() - started, 2)
                say(f"signals{label}: {len(step.live_days)} live days scored by the reproduced model")
                comparisons.extend(compare_signals(store, isolated, step.live_days, keys=contract.keys))
    if backfills:
        facts["backfill"] = backfills[0]
        facts["backfills"] = backfills
    facts["timings"] = timings
    comparisons += unreproducible
    certificate = certificate_of(comparisons, model=model, version=record.version, commit=record.commit, facts=facts)
    (work / "certificate.json").write_bytes(certificate.to_json())
    (work / "certificate.md").write_text(certificate.summary())
    stored = store_certificate(registry, certificate,
                               stamp=dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")) if store_result else None
    return Reproduction(certificate, stored, work, str(backfills[0]["id"]) if backfills else None,
                        tuple(str(b["id"]) for b in backfills))


@dataclass(frozen=True)
class _Backfilled:
    backfill_id: str
    status: str
    runs: tuple[tuple[str, str], ...]


def _key_prefix(services: ReproductionDagster, namespace: tuple[str, ...], probe: list[str]) -> tuple[str, ...]:
    """``namespace`` when the old code put its keys under it (its ml_platform reads ``ML_PLATFORM_KEY_NAMESPACE``),
    else none: an older library in its own isolated instance, where nothing else holds keys."""
    data = services.graphql("""query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { id } }""",
                            {"keys": [{"path": [*namespace, *probe]}]}, timeout=120)
    return namespace if data["assetNodes"] else ()


def _backfill(services: ReproductionDagster, step: ReproductionPass, prefix: Sequence[str], *, tags: dict[str, str],
              execution: Mapping[str, Any], timeout: float, title: str, description: str) -> _Backfilled:
    """One daemon-run asset backfill of the versions a pass rebuilds; refuses an unsuccessful one."""
    wanted: dict[tuple[str, ...], list[str]] = {}
    for part in step.rebuilt:
        wanted.setdefault((*prefix, *part.key.split("/")), []).append(str(part.partition))
    backfill_id = backfill.launch_asset_backfill(services, wanted, tags=tags, title=title, description=description,
                                          run_config=execution)
    outcome = backfill.wait_for_backfill(services, backfill_id, timeout=timeout)
    if not outcome.succeeded:
        failed = [r for r, s in outcome.runs if s != "SUCCESS"]
        raise ReproductionFailed(f"the reproduction backfill {backfill_id} ended {outcome.status} (runs not "
                                 f"successful: {failed[:5]}); see {services.url} and {services.logs}")
    return _Backfilled(backfill_id, outcome.status, tuple(outcome.runs))


def _retrain(services: ReproductionDagster, store: PinnedStore, contract: DeployContract, record: ReproductionRecord,
             model: str, training_path: list[str], model_path: list[str], *, prefix: Sequence[str], settings: Settings,
             tags: dict[str, str], execution: Mapping[str, Any], timeout: float, timings: dict[str, float],
             say: Callable[[str], None]) -> ModelRegistry:
    """One run of the old code: the training set over its recorded window, then the model with the recorded
    seed and parameters; returns the reproduction's own registry (never the production one)."""
    window = store.manifest("/".join(training_path), None, data_hash=contract.training_set_data_hash).window
    run_config = {**execution, "ops": {"__".join(training_path): {"config": {"window": str(window)}},
                                       "__".join(model_path): {"config": record.training_config}}}
    started = time.perf_counter()
    run = backfill.wait_for_run(services, backfill.launch_asset_run(services, [[*prefix, *training_path], [*prefix, *model_path]],
                                                      run_config=run_config, tags=tags), timeout=timeout)
    timings["training_s"] = round(time.perf_counter() - started, 2)
    say(f"model: training run {run.run_id} {run.status} in {timings['training_s']} s")
    if run.status != "SUCCESS":
        raise ReproductionFailed(f"the reproduction's training run {run.run_id} ended {run.status}; see "
                                 f"{services.url}/runs/{run.run_id}")
    # the ledger is the reproduction's own (explicit: never the production ledger an env var may name)
    return ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location,
                         ledger_url=settings.tracking_uri)


def _compare_pass(production: PinnedStore, isolated: PinnedStore, step: ReproductionPass,
                  keys: FrameKeys | None) -> tuple[Comparison, ...]:
    """The versions a pass seeded and rebuilt, against the record, while they are the reproduction's heads."""
    return compare_partitions(production, isolated, [*step.seeded, *step.rebuilt], keys=keys)


def _score_live_days(services: ReproductionDagster, model: str, days: Sequence[RecordedPartition],
                     prefix: Sequence[str], *, tags: dict[str, str], timeout: float,
                     execution: Mapping[str, Any]) -> None:
    """Run the old code's live signals over the recorded days with the reproduction's champion (one run per
    contiguous range, as a single-run backfill would)."""
    by_key: dict[str, list[str]] = {}
    for day in days:
        by_key.setdefault(day.key, []).append(str(day.partition))
    for key, partitions in by_key.items():
        path = key.split("/")
        run_config = {**execution, "ops": {"__".join(path): {"config": {"model_name": model}}}}
        for run_id in backfill.launch_partition_runs(services, [*prefix, *path], partitions, run_config=run_config,
                                              tags=tags):
            run = backfill.wait_for_run(services, run_id, timeout=timeout)
            if run.status != "SUCCESS":
                raise ReproductionFailed(f"the reproduction's live signal run {run_id} ({key}) ended {run.status}; "
                                         f"see {services.url}/runs/{run_id}")


def _environment_summary(lock) -> str:  # type: ignore[no-untyped-def]
    return (f"{lock.python_implementation} {lock.python_version}, {lock.platform}, uv.lock {lock.uv_lock_hash}, "
            f"{len(lock.package_versions)} packages")


def _newest_version(registry: ModelRegistry, model: str) -> str:
    details = registry.show(model)
    if not details:
        raise ReproductionFailed(f"the reproduction's training run registered no version of {model!r}")
    return str(max(int(d.version) for d in details))
