"""The promotion steps over the registry and the store, each a plain function the Dagster ops call.

No Dagster here: :mod:`ml_platform.promotion.job` wraps each step in an op. A step either returns the
:class:`Candidate` (enriched) or raises: :class:`~ml_platform.errors.GateFailed` naming its gate, or
another platform error for bad input. Nothing moves before :func:`record`, which appends the ledger
entry compare-and-set on the head the report was made against, then mirrors the MLflow alias.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ml_platform.environment import EnvironmentPolicy, capture_environment
from ml_platform.errors import ConfigurationError, DataError, IntegrityError, ModelNotFound, RegistryError
from ml_platform.io.store import PinnedStore
from ml_platform.keys import FrameKeys
from ml_platform.ledger import LedgerEntry
from ml_platform.promotion import artifacts as A
from ml_platform.promotion import gates as G
from ml_platform.promotion.champions import Champions, champions_for
from ml_platform.promotion.policy import PromotionPolicy
from ml_platform.promotion.report import render_report, sha256_hex
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.entities import check_model_name, check_version
from ml_platform.registry.schema import FeatureSchema
from ml_platform.registry.store import ModelRegistry

__all__ = ["Candidate", "PromotionWiring", "check_request", "contract_gate", "four_eyes_gate", "make_report",
           "rationale_gate", "read_rationale_file", "record", "thresholds_gate"]

_MAX_REASON = 2000


@dataclass(frozen=True)
class PromotionWiring:
    """What the job knows of the project: the model, its nodes' store keys and the live graph hash."""

    model_name: str
    keys: FrameKeys
    label_column: str
    training_key: str
    model_input_key: str
    live_graph_hash: str
    policy: PromotionPolicy
    project_root: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A challenger on its way through the gates (passed from op to op)."""

    model: str
    version: str
    run_id: str
    contract_json: str
    approver: str
    actor: str
    rationale: str
    rationale_author: str
    stamp: str
    incumbent_version: str | None = None
    head_seq: int = 0
    report: G.NumericReport | None = None
    report_ref: str | None = None
    report_sha256: str | None = None
    report_markdown: str = ""
    plot_path: str = ""
    live_schema: tuple[dict[str, Any], ...] = ()
    override: str | None = None
    gates: tuple[G.GateResult, ...] = ()

    @property
    def contract(self) -> DeployContract:
        return DeployContract.from_json(self.contract_json, source=f"contract of {self.model} version {self.version}")

    @property
    def folder(self) -> str:
        return f"{A.PROMOTION_DIR}/{self.stamp}"

    def passed(self, result: G.GateResult, **changes: Any) -> Candidate:
        return dataclasses.replace(self, gates=(*self.gates, result), **changes)


def read_rationale_file(path: str | Path) -> str:
    """The rationale file's text. Raises ConfigurationError: missing, not a file, or not UTF-8."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigurationError(f"rationale file {str(file)!r} does not exist (or is not a file)")
    try:
        return file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"rationale file {str(file)!r} is not UTF-8 text ({exc.reason} at byte "
                                 f"{exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise ConfigurationError(f"rationale file {str(file)!r} cannot be read: {exc}") from exc


def check_request(registry: ModelRegistry, wiring: PromotionWiring, model: str, version: str) -> tuple[DeployContract, str]:
    """The version's verified contract and run id; refuses an unknown model or version, a version of
    another model, a model this job does not promote, or a version that is not ready."""
    check_model_name(model)
    number = str(check_version(version))
    if model != wiring.model_name:
        raise ConfigurationError(f"this promotion job promotes model {wiring.model_name!r}, not {model!r}; run the "
                                 f"promotion job of {model!r}")
    details = registry.show(model, number)  # ModelNotFound: unknown model or version
    found = details[0]
    if found.contract is None:
        raise RegistryError(f"model {model!r} version {number} cannot be promoted: {found.problem}")
    if found.contract.model_name != model:
        raise ConfigurationError(f"version {number} of {model!r} holds a contract of model "
                                 f"{found.contract.model_name!r}; it is a version of another model")
    return found.contract, found.run_id


def _time_stamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


def new_candidate(registry: ModelRegistry, wiring: PromotionWiring, *, model: str, version: str, approver: str,
                  rationale: str, actor: str, rationale_author: str = "",
                  now: dt.datetime | None = None) -> Candidate:
    contract, run_id = check_request(registry, wiring, model, version)
    return Candidate(model=model, version=str(contract.model_version), run_id=run_id, contract_json=contract.to_json(),
                     approver=approver, actor=actor or getpass.getuser(), rationale=rationale,
                     rationale_author=rationale_author or actor or getpass.getuser(),
                     stamp=_time_stamp(now or dt.datetime.now(dt.UTC)))


def _live_schema(store: PinnedStore, wiring: PromotionWiring, contract: DeployContract,
                 training: pl.DataFrame) -> FeatureSchema:
    """The schema the live model-input partitions offer (the newest stored one; else the training set)."""
    frame = training
    manifests = sorted((m for m in store.manifests(wiring.model_input_key) if m.partition is not None),
                       key=lambda m: m.partition or "")
    if manifests:
        frame = store.read(wiring.model_input_key, manifests[-1].partition).frame
    names = [n for n in contract.feature_schema.names if n in frame.columns]
    return FeatureSchema.from_polars(frame.select(names))


def make_report(registry: ModelRegistry, store: PinnedStore, wiring: PromotionWiring, candidate: Candidate,
                champions: Champions | None = None) -> Candidate:
    """Gate ``report``: challenger and incumbent on the challenger's validation rows; stored beside the version."""
    champions = champions or champions_for(registry)
    contract = candidate.contract
    head = champions.head(candidate.model)
    incumbent_version = None if head is None else head.to_version
    if incumbent_version == candidate.version:
        raise G.gate_failed(G.REPORT, f"version {candidate.version} of {candidate.model!r} is already the champion")
    try:
        stored = store.read(wiring.training_key, None, data_hash=contract.training_set_data_hash)
    except (DataError, IntegrityError) as exc:
        raise G.gate_failed(G.REPORT, f"the challenger's training set {wiring.training_key} as of "
                                      f"{contract.training_set_data_hash} cannot be read: {exc}") from exc
    challenger = registry.load_model(candidate.model, candidate.version)
    incumbent = None
    if incumbent_version is not None:
        try:
            incumbent = registry.load_model(candidate.model, incumbent_version)
        except (ModelNotFound, RegistryError) as exc:
            raise G.gate_failed(G.REPORT, f"the incumbent champion version {incumbent_version} cannot be loaded "
                                          f"({exc}); run `ml-platform registry reconcile`") from exc
    report = G.compute_numeric_report(
        model=candidate.model, challenger=challenger, challenger_version=candidate.version, incumbent=incumbent,
        incumbent_version=incumbent_version, training_set=stored.frame, window=contract.validation_window,
        keys=wiring.keys, label_column=wiring.label_column, policy=wiring.policy)
    rendered = render_report(report, created_at=candidate.stamp, extra={
        "training_set": wiring.training_key, "training_set_data_hash": contract.training_set_data_hash,
        "policy": wiring.policy.to_dict()})
    A.log_files(registry, candidate.run_id, candidate.folder, rendered.files())
    live = _live_schema(store, wiring, contract, stored.frame)
    result = G.GateResult(G.REPORT, True, f"report on {report.window}: {report.rows} rows, challenger v"
                          f"{candidate.version} vs {'none' if incumbent_version is None else 'v' + incumbent_version}",
                          {"differences": report.differences})
    return candidate.passed(
        result, incumbent_version=incumbent_version, head_seq=0 if head is None else head.seq, report=report,
        report_ref=A.artifact_ref(candidate.run_id, f"{candidate.folder}/report.json"),
        report_sha256=sha256_hex(rendered.json_bytes), report_markdown=report.markdown(),
        plot_path=A.local_artifact_path(registry, candidate.run_id, f"{candidate.folder}/report.png"),
        live_schema=tuple(live.to_list()))


def rationale_gate(registry: ModelRegistry, policy: PromotionPolicy, candidate: Candidate) -> Candidate:
    """Gate ``rationale``: not empty, no placeholder, long enough, not a copy of an earlier one."""
    result = G.check_rationale(candidate.rationale, previous=A.previous_rationales(registry, candidate.model),
                               policy=policy)
    return candidate.passed(result, override=G.declares_override(candidate.rationale, policy))


def contract_gate(wiring: PromotionWiring, candidate: Candidate, environment_policy: EnvironmentPolicy | str) -> Candidate:
    """Gate ``contract``: the challenger's contract against the live feature graph, schema and environment."""
    result = G.check_contract_gate(
        candidate.contract, live_graph_hash=wiring.live_graph_hash,
        live_schema=FeatureSchema.from_list(list(candidate.live_schema)), keys=wiring.keys,
        running_env=capture_environment(wiring.project_root), policy=environment_policy)
    return candidate.passed(result)


def four_eyes_gate(candidate: Candidate) -> Candidate:
    """Gate ``four_eyes``: the approver is named and did not train the version."""
    return candidate.passed(G.check_four_eyes(candidate.approver, candidate.contract.trained_by))


def thresholds_gate(policy: PromotionPolicy, candidate: Candidate) -> Candidate:
    """Gate ``thresholds``: no worse than the incumbent beyond the policy, unless the rationale overrides."""
    assert candidate.report is not None
    return candidate.passed(G.check_thresholds(candidate.report, policy, override=candidate.override))


def record(registry: ModelRegistry, candidate: Candidate, champions: Champions | None = None) -> LedgerEntry:
    """Store the rationale beside the version, then append the ledger entry (compare-and-set on the head the
    report compared against) and mirror the alias. A move recorded meanwhile fails with LedgerConflict."""
    missing = sorted(set(G.GATE_ORDER) - {g.name for g in candidate.gates})
    if missing:
        raise G.gate_failed(missing[0], "the gate did not run; nothing recorded")
    champions = champions or champions_for(registry)
    text = candidate.rationale.strip() + "\n"
    data = text.encode("utf-8")
    meta = {"author": candidate.rationale_author, "approver": candidate.approver, "actor": candidate.actor,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(), "model": candidate.model,
            "version": candidate.version, "sha256": sha256_hex(data), "override": candidate.override}
    import json

    A.log_files(registry, candidate.run_id, candidate.folder,
                {A.RATIONALE_FILE: data, "rationale.json": json.dumps(meta, indent=2, sort_keys=True).encode()})
    overridden = any(g.name == G.THRESHOLDS and g.facts.get("override") for g in candidate.gates)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    reason = f"promotion through the gates: {first}"[:_MAX_REASON]
    return champions.promote(
        candidate.model, candidate.version, expected_head_seq=candidate.head_seq, actor=candidate.actor,
        approver=candidate.approver, reason=reason, report_ref=candidate.report_ref,
        report_sha256=candidate.report_sha256,
        rationale_ref=A.artifact_ref(candidate.run_id, f"{candidate.folder}/{A.RATIONALE_FILE}"),
        rationale_sha256=sha256_hex(data), override=bool(overridden))
