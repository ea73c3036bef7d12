"""The ``rollback_model`` Dagster job: roll a model's champion back from the Launchpad, in one call.

How it works, and why: docs/architecture.md, "ml_platform/promotion/rollback_job.py".
"""
# No ``from __future__ import annotations`` here: Dagster resolves the op's Config parameter at runtime.

import getpass
import time
from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from ml_platform import metadata
from ml_platform.champions.service import ChampionService
from ml_platform.dagster_boundary import failure_from
from ml_platform.errors import GraphError, MLPlatformError
from ml_platform.features.assets import FeatureAssetsTranslator
from ml_platform.features.graph import FeatureGraph
from ml_platform.registry.entities import check_model_name

__all__ = ["JOB_MODEL_TAG", "OP_NAME", "RollbackConfig", "build_rollback_job"]

JOB_MODEL_TAG = "ml_platform/rolls_back_model"
OP_NAME = "rollback_champion"


class RollbackConfig(dg.Config):
    """Where to roll back to, why, and who does it (the Launchpad form of ``rollback_model``)."""

    to: str = Field(default="", description="An earlier champion version to return to; empty: the previous "
                                            "champion (the one before the current champion of record).")
    reason: str = Field(description="Why the champion is rolled back, in words; recorded in the ledger entry.")
    actor: str = Field(default="", description="Who rolls back; default: the OS user of the run and its run id.")


def build_rollback_job(
    graph: FeatureGraph,
    *,
    model_input: str,
    model_name: str,
    key_prefix: str | Sequence[str] = (),
    job_name: str = "rollback_model",
) -> dg.JobDefinition:
    """The ``rollback_model`` job of one model, wired like :func:`~ml_platform.build_promotion_job`.

    Args:
        graph / model_input / model_name / key_prefix: as given to ``build_model_assets``; the model
            input's graph hash is the live feature graph a rollback target's contract must need.
        job_name: ``rollback_model`` by default; give another for a second model in one Definitions.

    Needs the resource ``model_registry`` (``platform_resources``).

    Raises:
        GraphError: ``model_input`` is not a node of ``graph``.
        ConfigurationError: ``model_name`` is not a valid registered model name, or ``key_prefix`` is malformed.
    """
    if model_input not in graph:
        raise GraphError(f"build_rollback_job: model_input={model_input!r} is not a node of the graph; its nodes "
                         f"are {sorted(n.key for n in graph)}")
    check_model_name(model_name)
    node = graph[model_input]
    live_graph_hash = node.graph_hash
    live_asset = FeatureAssetsTranslator(key_prefix).get_asset_key(node).to_user_string()

    @dg.op(name=OP_NAME, required_resource_keys={"model_registry"},
           description=f"Roll {model_name!r} back to the previous (or a named earlier) champion in one ledger "
                       f"transaction; the target must need the live feature graph of {live_asset}.")
    def rollback_champion(context: dg.OpExecutionContext, config: RollbackConfig) -> None:
        actor = config.actor or f"{getpass.getuser()} (dagster run {context.run_id[:8]})"
        try:
            with ChampionService.open(context.resources.model_registry.get_registry()) as service:
                started = time.perf_counter()
                entry = service.rollback(model_name, to=config.to or None, reason=config.reason, actor=actor,
                                         live_feature_graph_hash=live_graph_hash)
                latency_ms = (time.perf_counter() - started) * 1000
        except MLPlatformError as error:
            failure = failure_from(error)
            raise dg.Failure(description=failure.description,
                             metadata={**failure.metadata, metadata.MODEL_NAME: model_name,
                                       "requested_to": config.to or "previous champion"},
                             allow_retries=False) from error
        context.log.info(f"{model_name}: champion {entry.from_version} -> {entry.to_version} (ledger entry "
                         f"{entry.seq}, {latency_ms:.1f} ms)")
        context.add_output_metadata({
            metadata.MODEL_NAME: model_name, "ledger_seq": entry.seq, "entry_hash": entry.entry_hash,
            "from_version": entry.from_version or "none", "to_version": entry.to_version,
            "latency_ms": dg.MetadataValue.float(round(latency_ms, 3)), "actor": entry.actor,
            metadata.FEATURE_GRAPH_HASH: live_graph_hash})

    @dg.job(name=job_name, tags={JOB_MODEL_TAG: model_name},
            description=f"Roll the champion of {model_name!r} back to the previous (or a named earlier) champion "
                        "and record it in the champion ledger; a refused rollback moves nothing.")
    def rollback_model() -> None:
        rollback_champion()

    return rollback_model
