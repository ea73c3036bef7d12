"""The passes of a reproduction, run in the old commit's Dagster and compared while their versions are the heads.

Steps of :func:`~ml_platform.reproduce.service.reproduce_version`, each returning a frozen value:
:func:`connect` (the key prefix and executor the old code asks for, once its Dagster is up), then per
pass :func:`run_pass`: the pass's sources seeded as delivered, a daemon-run asset backfill of what it
rebuilds (:func:`backfill_pass`), for the first pass :func:`retrain` and :func:`compare_first_pass`
(its versions, the training set, the model's sha256), for later ones :func:`compare_pass`, then the
pass's live days scored by the reproduced champion (:func:`score_live_days`) and compared.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ml_platform.champions.shortcut import record_champion_shortcut
from ml_platform.errors import ReproductionFailed
from ml_platform.io.recorded_lineage import RecordedPartition
from ml_platform.io.store import PinnedStore
from ml_platform.keys import FrameKeys
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.store import ModelRegistry
from ml_platform.reproduce import backfill
from ml_platform.reproduce.compare import (
    Comparison,
    ComparisonKind,
    compare_bytes,
    compare_partition,
    compare_partitions,
)
from ml_platform.reproduce.dagster_services import ReproductionDagster
from ml_platform.reproduce.passes import ReproductionPass
from ml_platform.reproduce.plan import ReproductionPlan
from ml_platform.reproduce.record import ReproductionRecord
from ml_platform.reproduce.signals import compare_signals
from ml_platform.reproduce.sources import seed_sources
from ml_platform.settings import Settings

__all__ = ["TRAINED_MODEL", "Backfilled", "OldCodeRun", "PassOutcome", "Retrained", "backfill_pass",
           "compare_first_pass", "compare_pass", "connect", "retrain", "run_pass", "score_live_days"]

TRAINED_MODEL = "trained_model"


@dataclass(frozen=True)
class OldCodeRun:
    """The started Dagster the passes run in, and how they ask it.

    Attributes:
        services: the reproduction's Dagster (isolated, or production's with the old location beside).
        prefix: the key prefix of the old code's assets (the namespace, or none for an older library).
        execution: the run config every launch carries (in-process execution when the old code allows it).
        tags: the tags of every backfill and run.
        training_path / model_path: the training set's and the trained model's asset key paths, unprefixed.
        timeout: bound on each backfill and run, in seconds.
    """

    services: ReproductionDagster
    prefix: tuple[str, ...]
    execution: Mapping[str, Any]
    tags: Mapping[str, str]
    training_path: tuple[str, ...]
    model_path: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class Backfilled:
    """A pass's backfill: how it ended (id, status, runs), how many partitions it rebuilt, how long it took
    from launch (``outcome.seconds`` counts the wait only)."""

    outcome: backfill.BackfillOutcome
    partitions: int
    seconds: float


@dataclass(frozen=True)
class Retrained:
    """The old code's training run: the version it registered in the reproduction's own registry."""

    registry: ModelRegistry
    model: str
    version: str
    run_id: str
    seconds: float


@dataclass(frozen=True)
class PassOutcome:
    """What one pass did and found.

    Attributes:
        index: the pass (0: the training set's).
        backfill: its backfill (None: nothing to rebuild).
        retrained: the first pass's training run (None for later passes).
        comparisons: every comparison of the pass, in the order made.
        signals_seconds: how long scoring its live days took (None: it has none).
    """

    index: int
    backfill: Backfilled | None
    retrained: Retrained | None
    comparisons: tuple[Comparison, ...]
    signals_seconds: float | None


def _key_prefix(services: ReproductionDagster, namespace: Sequence[str], probe: Sequence[str]) -> tuple[str, ...]:
    """``namespace`` when the old code put its keys under it (its ml_platform reads ``ML_PLATFORM_KEY_NAMESPACE``),
    else none: an older library in its own isolated instance, where nothing else holds keys."""
    data = services.graphql("""query ($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { id } }""",
                            {"keys": [{"path": [*namespace, *probe]}]}, timeout=120)
    return tuple(namespace) if data["assetNodes"] else ()


def connect(services: ReproductionDagster, plan: ReproductionPlan, namespace: tuple[str, ...], *, beside: bool,
            tags: Mapping[str, str], timeout: float) -> OldCodeRun:
    """Ask the started Dagster where the old code's keys are (beside production: always under the namespace)
    and whether its executor lets steps run in their run worker (no Python start per step)."""
    training_path = tuple(plan.training_key.split("/"))
    model_path = (*training_path[:-1], TRAINED_MODEL)
    prefix = tuple(namespace) if beside else _key_prefix(services, namespace, model_path)
    execution = backfill.in_process_config(services, [[*prefix, *path] for path in [
        *{tuple(p.key.split("/")) for p in plan.lineage.computed()}, training_path, model_path]])
    return OldCodeRun(services, prefix, execution, dict(tags), training_path, model_path, timeout)


def backfill_pass(run: OldCodeRun, step: ReproductionPass, *, title: str, description: str) -> Backfilled:
    """One daemon-run asset backfill of the versions a pass rebuilds; refuses an unsuccessful one."""
    started = time.perf_counter()
    wanted: dict[tuple[str, ...], list[str]] = {}
    for part in step.rebuilt:
        wanted.setdefault((*run.prefix, *part.key.split("/")), []).append(str(part.partition))
    backfill_id = backfill.launch_asset_backfill(run.services, wanted, tags=dict(run.tags), title=title,
                                                 description=description, run_config=run.execution)
    outcome = backfill.wait_for_backfill(run.services, backfill_id, timeout=run.timeout)
    if not outcome.succeeded:
        failed = [r for r, s in outcome.runs if s != "SUCCESS"]
        raise ReproductionFailed(f"the reproduction backfill {backfill_id} ended {outcome.status} (runs not "
                                 f"successful: {failed[:5]}); see {run.services.url} and {run.services.logs}")
    return Backfilled(outcome, len(step.rebuilt), round(time.perf_counter() - started, 2))


def _newest_version(registry: ModelRegistry, model: str) -> str:
    details = registry.show(model)
    if not details:
        raise ReproductionFailed(f"the reproduction's training run registered no version of {model!r}")
    return str(max(int(d.version) for d in details))


def retrain(run: OldCodeRun, production: PinnedStore, record: ReproductionRecord, settings: Settings, *,
            say: Callable[[str], None]) -> Retrained:
    """One run of the old code: the training set over its recorded window, then the model with the recorded
    seed and parameters, registered in the reproduction's own registry (never the production one)."""
    contract = record.contract
    window = production.manifest("/".join(run.training_path), None, data_hash=contract.training_set_data_hash).window
    run_config = {**run.execution, "ops": {"__".join(run.training_path): {"config": {"window": str(window)}},
                                           "__".join(run.model_path): {"config": record.training_config}}}
    started = time.perf_counter()
    launched = backfill.launch_asset_run(run.services, [[*run.prefix, *run.training_path],
                                                        [*run.prefix, *run.model_path]],
                                         run_config=run_config, tags=dict(run.tags))
    done = backfill.wait_for_run(run.services, launched, timeout=run.timeout)
    seconds = round(time.perf_counter() - started, 2)
    say(f"model: training run {done.run_id} {done.status} in {seconds} s")
    if done.status != "SUCCESS":
        raise ReproductionFailed(f"the reproduction's training run {done.run_id} ended {done.status}; see "
                                 f"{run.services.url}/runs/{done.run_id}")
    # the ledger is the reproduction's own (explicit: never the production ledger an env var may name)
    registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location,
                             ledger_url=settings.tracking_uri)
    return Retrained(registry, record.model, _newest_version(registry, record.model), done.run_id, seconds)


def compare_pass(production: PinnedStore, isolated: PinnedStore, step: ReproductionPass,
                 keys: FrameKeys | None) -> tuple[Comparison, ...]:
    """The versions a pass seeded and rebuilt, against the record, while they are the reproduction's heads."""
    return compare_partitions(production, isolated, [*step.seeded, *step.rebuilt], keys=keys)


def compare_first_pass(production: PinnedStore, isolated: PinnedStore, step: ReproductionPass,
                       root: RecordedPartition, contract: DeployContract, retrained: Retrained) -> tuple[Comparison, ...]:
    """The first pass's versions, then the training set by data hash, then the retrained model's sha256."""
    versions = compare_pass(production, isolated, step, contract.keys)
    training_set = compare_partition(production, isolated, root, keys=contract.keys, kind=ComparisonKind.TRAINING_SET)
    reproduced_sha = retrained.registry.load_contract(retrained.model, retrained.version).model_sha256
    return (*versions, training_set,
            compare_bytes(ComparisonKind.MODEL, "model sha256", contract.model_sha256, reproduced_sha))


def score_live_days(run: OldCodeRun, model: str, days: Sequence[RecordedPartition]) -> None:
    """Run the old code's live signals over the recorded days with the reproduction's champion (one run per
    contiguous range, as a single-run backfill would)."""
    by_key: dict[str, list[str]] = {}
    for day in days:
        by_key.setdefault(day.key, []).append(str(day.partition))
    for key, partitions in by_key.items():
        path = key.split("/")
        run_config = {**run.execution, "ops": {"__".join(path): {"config": {"model_name": model}}}}
        for run_id in backfill.launch_partition_runs(run.services, [*run.prefix, *path], partitions,
                                                     run_config=run_config, tags=dict(run.tags)):
            done = backfill.wait_for_run(run.services, run_id, timeout=run.timeout)
            if done.status != "SUCCESS":
                raise ReproductionFailed(f"the reproduction's live signal run {run_id} ({key}) ended {done.status}; "
                                         f"see {run.services.url}/runs/{run_id}")


def run_pass(run: OldCodeRun, step: ReproductionPass, plan: ReproductionPlan, record: ReproductionRecord, *,
             production: PinnedStore, isolated: PinnedStore, settings: Settings,
             say: Callable[[str], None]) -> PassOutcome:
    """One pass: seed its sources as delivered, backfill what it rebuilds, retrain (the first pass), compare
    while its versions are the reproduction's heads, then score its live days and compare them."""
    label = "" if len(plan.passes) == 1 else f" (pass {step.index + 1} of {len(plan.passes)})"
    seed_sources(production, isolated, step.as_lineage(plan.root))
    backfilled = None
    if step.rebuilt:
        backfilled = backfill_pass(run, step, title=f"reproduce {record.model} v{record.version}{label}",
                                   description=f"commit {record.commit}")
        done = backfilled.outcome
        say(f"backfill {done.backfill_id}{label}: {done.status}, {len(done.runs)} runs in "
            f"{backfilled.seconds} s")
    elif step.index > 0:
        say(f"pass {step.index + 1}: {len(step.seeded)} revised source partitions seeded, nothing to backfill")
    retrained = None
    if step.index == 0:
        retrained = retrain(run, production, record, settings, say=say)
        comparisons = compare_first_pass(production, isolated, step, plan.root, record.contract, retrained)
        if plan.live_days:
            record_champion_shortcut(  # the reproduction's own registry, a local deployment
                retrained.registry, record.model, retrained.version, actor="ml-platform reproduce",
                reason=f"reproduction of {record.model} version {record.version}: scores the live days it served",
                production=settings.deployment == "production")
    else:
        comparisons = compare_pass(production, isolated, step, record.contract.keys)
    signals_seconds = None
    if step.live_days:
        started = time.perf_counter()
        score_live_days(run, record.model, step.live_days)
        signals_seconds = time.perf_counter() - started
        say(f"signals{label}: {len(step.live_days)} live days scored by the reproduced model")
        comparisons = (*comparisons, *compare_signals(production, isolated, step.live_days, keys=record.contract.keys))
    return PassOutcome(step.index, backfilled, retrained, comparisons, signals_seconds)
