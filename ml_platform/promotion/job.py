"""The ``promote_model`` Dagster job: one op per gate, in order, then the record.

``promotion_report -> rationale_gate -> contract_gate -> four_eyes_gate -> thresholds_gate -> record_promotion``.
Each op is built by its own function (``report_op``, ``rationale_gate_op``, ...) as a thin wrapper over the
step of the same name in :mod:`~ml_platform.promotion.service`.
A refusing gate raises ``dagster.Failure`` naming the gate (metadata ``ml_platform/gate``); the ops after
it are skipped, so nothing moves: no ledger entry, no alias change.
"""


import functools
import getpass
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import dagster as dg
from pydantic import Field

from ml_platform import metadata
from ml_platform.dagster_boundary import failure_from, link_metadata
from ml_platform.errors import ConfigurationError, GateFailed, GraphError, MLPlatformError
from ml_platform.features.assets import FeatureAssetsTranslator
from ml_platform.features.graph import FeatureGraph
from ml_platform.promotion import gates, service
from ml_platform.promotion.policy import PromotionPolicy

__all__ = ["GATE_METADATA", "IO_MANAGER_KEY", "JOB_MODEL_TAG", "OP_NAMES", "PromoteConfig", "build_promotion_job",
           "contract_gate_op", "four_eyes_gate_op", "promotion_resources", "promotion_wiring", "rationale_gate_op",
           "record_op", "report_op", "thresholds_gate_op"]

GATE_METADATA = metadata.GATE
JOB_MODEL_TAG = "ml_platform/promotes_model"
OP_NAMES = ("promotion_report", "rationale_gate", "contract_gate", "four_eyes_gate", "thresholds_gate",
            "record_promotion")

T = TypeVar("T")
#: The gates hand the candidate on through Dagster's own pickling IO manager (the platform's pins assets only).
IO_MANAGER_KEY = "promotion_io_manager"


class PromoteConfig(dg.Config):
    """What to promote, why, and who approves (the Launchpad form of ``promote_model``)."""

    model: str = Field(description="Registered model name.")
    version: str = Field(description="The challenger version to promote.")
    approver: str = Field(description="Who approves the promotion; must not be whoever trained the version.")
    rationale: str = Field(default="", description="Why this version should be champion (or use rationale_file).")
    rationale_file: str = Field(default="", description="Path of a UTF-8 file holding the rationale.")
    rationale_author: str = Field(default="", description="Who wrote the rationale; default: the actor.")
    actor: str = Field(default="", description="Who runs the promotion; default: the OS user of the run.")


def _gate_failures(gate: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def body(*args: Any, **kwargs: Any) -> T:
            try:
                return fn(*args, **kwargs)
            except GateFailed as error:
                failure = failure_from(error)
                raise dg.Failure(description=failure.description,
                                 metadata={**failure.metadata, GATE_METADATA: getattr(error, "gate", gate)},
                                 allow_retries=False) from error
            except MLPlatformError as error:
                failure = failure_from(error)
                raise dg.Failure(description=f"promotion gate '{gate}' could not run: {error}",
                                 metadata={**failure.metadata, GATE_METADATA: gate}, allow_retries=False) from error
        return body
    return wrap


def promotion_resources() -> dict[str, Any]:
    """The resource the promotion ops hand the candidate through; add it to the Definitions' resources."""
    return {IO_MANAGER_KEY: dg.FilesystemIOManager()}


def _out() -> dg.Out:
    return dg.Out(dg.Any, io_manager_key=IO_MANAGER_KEY)


def _gate_op(name: str, gate: str, check: Callable[[dg.OpExecutionContext, service.Candidate], service.Candidate], *,
             needs: frozenset[str] = frozenset()) -> dg.OpDefinition:
    """An op that passes the candidate through one gate (``check``) and records the gate's detail."""

    @dg.op(name=name, required_resource_keys=set(needs), out=_out())
    @_gate_failures(gate)
    def gate_op(context: dg.OpExecutionContext, candidate: Any) -> Any:
        out = check(context, candidate)
        context.add_output_metadata({"detail": out.gates[-1].detail})
        return out

    return gate_op


def report_op(wiring: service.PromotionWiring) -> dg.OpDefinition:
    """``promotion_report``: the candidate from the run's config, with its report stored in MLflow."""

    @dg.op(name="promotion_report", required_resource_keys={"model_registry", "feature_store"}, out=_out(),
           description="Challenger vs incumbent on the challenger's validation window and on the live days since "
                       "the incumbent became champion; JSON/HTML/PNG in MLflow.")
    @_gate_failures(gates.REPORT)
    def promotion_report(context: dg.OpExecutionContext, config: PromoteConfig) -> Any:
        registry = context.resources.model_registry.get_registry()
        store = context.resources.feature_store.get_store()
        if config.rationale and config.rationale_file:
            raise ConfigurationError("give the rationale as text or as a file, not both")
        text = service.read_rationale_file(config.rationale_file) if config.rationale_file else config.rationale
        actor = config.actor or f"{getpass.getuser()} (dagster run {context.run_id[:8]})"
        candidate = service.new_candidate(registry, wiring, model=config.model, version=config.version,
                                          approver=config.approver, rationale=text, actor=actor,
                                          rationale_author=config.rationale_author)
        candidate = service.make_report(registry, store, wiring, candidate)
        context.add_output_metadata({
            "report": dg.MetadataValue.md(candidate.report_markdown),
            "plot": link_metadata(metadata.file_link(candidate.plot_path)),
            "report_ref": candidate.report_ref or "",
            "report_sha256": candidate.report_sha256 or "",
            metadata.MODEL_NAME: candidate.model, metadata.MODEL_VERSION: candidate.version,
            "incumbent_version": candidate.incumbent_version or "none",
            "live_days": candidate.report.live_section.days if candidate.report else 0,
            "live": candidate.report.live_section.summary if candidate.report else "",
        })
        return candidate

    return promotion_report


def rationale_gate_op(policy: PromotionPolicy) -> dg.OpDefinition:
    """``rationale_gate``: a rationale of the policy's length, no placeholder, not a copy of an earlier one."""

    def check(context: dg.OpExecutionContext, candidate: service.Candidate) -> service.Candidate:
        return service.rationale_gate(context.resources.model_registry.get_registry(), policy, candidate)

    return _gate_op("rationale_gate", gates.RATIONALE, check, needs=frozenset({"model_registry"}))


def contract_gate_op(wiring: service.PromotionWiring) -> dg.OpDefinition:
    """``contract_gate``: the challenger's contract against the live feature graph, schema and environment."""

    def check(context: dg.OpExecutionContext, candidate: service.Candidate) -> service.Candidate:
        return service.contract_gate(wiring, candidate, context.resources.model_registry.environment_policy)

    return _gate_op("contract_gate", gates.CONTRACT, check, needs=frozenset({"model_registry"}))


def four_eyes_gate_op() -> dg.OpDefinition:
    """``four_eyes_gate``: the approver is named and did not train the version."""

    def check(context: dg.OpExecutionContext, candidate: service.Candidate) -> service.Candidate:
        return service.four_eyes_gate(candidate)

    return _gate_op("four_eyes_gate", gates.FOUR_EYES, check)


def thresholds_gate_op(policy: PromotionPolicy) -> dg.OpDefinition:
    """``thresholds_gate``: no worse than the incumbent beyond the policy, unless the rationale overrides."""

    def check(context: dg.OpExecutionContext, candidate: service.Candidate) -> service.Candidate:
        return service.thresholds_gate(policy, candidate)

    return _gate_op("thresholds_gate", gates.THRESHOLDS, check)


def record_op() -> dg.OpDefinition:
    """``record_promotion``: the rationale beside the version, the ledger entry, then the alias mirror."""

    @dg.op(name="record_promotion", required_resource_keys={"model_registry"}, out=_out())
    @_gate_failures("record")
    def record_promotion(context: dg.OpExecutionContext, candidate: Any) -> Any:
        entry = service.record(context.resources.model_registry.get_registry(), candidate)
        context.add_output_metadata({  # the move's anchor in the Dagster run, beside the MLflow tag's
            metadata.MODEL_NAME: entry.model,
            "ledger_seq": entry.seq, "entry_hash": entry.entry_hash, "from_version": entry.from_version or "none",
            "to_version": entry.to_version, "override": entry.override,
            "rationale_ref": entry.rationale_ref or "", "report_ref": entry.report_ref or ""})
        return entry.to_dict()

    return record_promotion


def promotion_wiring(graph: FeatureGraph, *, model_input: str, label_column: str, training_node: str,
                     model_name: str, policy: PromotionPolicy, label: str | None,
                     key_prefix: str | Sequence[str]) -> service.PromotionWiring:
    """The promotion's store keys and live graph hash from the feature graph, its arguments checked."""
    if not isinstance(policy, PromotionPolicy):
        raise ConfigurationError(f"policy must be a PromotionPolicy, got {type(policy).__name__}")
    for role, key in (("model_input", model_input), ("training_node", training_node)):
        if key not in graph:
            raise GraphError(f"build_promotion_job: {role}={key!r} is not a node of the graph; its nodes are "
                             f"{sorted(n.key for n in graph)}")
    if label is not None:
        if not isinstance(label, str) or label not in graph:
            raise GraphError(f"build_promotion_job: label={label!r} is not a node of the graph; its nodes are "
                             f"{sorted(n.key for n in graph)}")
        for role, key in (("model_input", model_input), ("label", label)):
            if not graph[key].spec.partitioned:
                raise GraphError(f"build_promotion_job: {role} {key!r} must be a partitioned node (the live days "
                                 "are its daily partitions)")
    if not isinstance(label_column, str) or not label_column:
        raise ConfigurationError(f"label_column must name the label column, got {label_column!r}")
    translator = FeatureAssetsTranslator(key_prefix)
    return service.PromotionWiring(
        model_name=model_name, keys=graph.keys, label_column=label_column,
        training_key=translator.store_key(graph[training_node]),
        model_input_key=translator.store_key(graph[model_input]),
        live_graph_hash=graph[model_input].graph_hash, policy=policy, project_root=graph.project_root,
        label_key=None if label is None else translator.store_key(graph[label]))


def build_promotion_job(
    graph: FeatureGraph,
    *,
    model_input: str,
    label_column: str,
    training_node: str,
    model_name: str,
    policy: PromotionPolicy | None = None,
    label: str | None = None,
    key_prefix: str | Sequence[str] = (),
    job_name: str = "promote_model",
) -> dg.JobDefinition:
    """The ``promote_model`` job of one model, wired like :func:`~ml_platform.build_model_assets`.

    Args:
        graph / model_input / label_column / training_node / model_name / key_prefix: as given to
            ``build_model_assets``; the model input's graph hash is the live feature graph the contract
            gate compares with, the training node's store key is where the report reads its rows.
        policy: the model's :class:`PromotionPolicy` (default margins if omitted).
        label: the label node, as given to ``build_model_assets``. The report then also compares challenger
            and incumbent on the live days stored since the incumbent became champion (the model-input and
            label partitions after that day, up to the newest known label; informational, the thresholds
            stay on the validation window). ``None``: no live comparison, and the report says so.
        job_name: ``promote_model`` by default; give another for a second model in one Definitions.

    Needs the resources ``model_registry`` and ``feature_store`` (``platform_resources``) and
    ``promotion_io_manager`` (:func:`promotion_resources`).
    """
    policy = policy if policy is not None else PromotionPolicy()
    wiring = promotion_wiring(graph, model_input=model_input, label_column=label_column, training_node=training_node,
                              model_name=model_name, policy=policy, label=label, key_prefix=key_prefix)
    report, *steps = (  # in order: each takes the candidate the one before hands on
        report_op(wiring),
        rationale_gate_op(policy),
        contract_gate_op(wiring),
        four_eyes_gate_op(),
        thresholds_gate_op(policy),
        record_op(),
    )

    @dg.job(name=job_name, tags={JOB_MODEL_TAG: model_name},
            description=f"Promote a version of {model_name!r} through the gates (report, rationale, contract, "
                        "four eyes, thresholds) and record it in the champion ledger.")
    def promote_model() -> None:
        candidate = report()
        for step in steps:
            candidate = step(candidate)

    return promote_model
