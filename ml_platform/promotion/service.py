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
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ml_platform.champions import LedgerEntry, MoveKind
from ml_platform.champions.location import open_ledger
from ml_platform.champions.service import ChampionService
from ml_platform.crashpoints import crash_point
from ml_platform.environment import EnvironmentPolicy, capture_environment
from ml_platform.errors import (
    ConfigurationError,
    DataError,
    IntegrityError,
    MLPlatformError,
    ModelNotFound,
    RegistryError,
)
from ml_platform.io.store import PinnedStore
from ml_platform.keys import FrameKeys
from ml_platform.models.protocol import SignalModel
from ml_platform.promotion import gates as promotion_gates
from ml_platform.promotion.policy import PromotionPolicy
from ml_platform.promotion.rationales import PROMOTION_DIR, RATIONALE_FILE, previous_rationales
from ml_platform.promotion.report import render_report, sha256_hex
from ml_platform.registry import run_files
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.entities import check_model_name, check_version
from ml_platform.registry.schema import FeatureSchema
from ml_platform.registry.store import ModelRegistry

logger = logging.getLogger(__name__)

__all__ = ["Candidate", "PromotionWiring", "check_request", "contract_gate", "four_eyes_gate", "live_section",
           "make_report", "rationale_gate", "read_rationale_file", "record", "thresholds_gate"]

_MAX_REASON = 2000


@dataclass(frozen=True)
class PromotionWiring:
    """What the job knows of the project: the model, its nodes' store keys and the live graph hash.

    ``label_key`` is the label node's store key; None: the report does not compare the live days.
    """

    model_name: str
    keys: FrameKeys
    label_column: str
    training_key: str
    model_input_key: str
    live_graph_hash: str
    policy: PromotionPolicy
    project_root: str | None = None
    label_key: str | None = None


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
    report: promotion_gates.NumericReport | None = None
    report_ref: str | None = None
    report_sha256: str | None = None
    report_markdown: str = ""
    plot_path: str = ""
    live_schema: tuple[dict[str, Any], ...] = ()
    override: str | None = None
    gates: tuple[promotion_gates.GateResult, ...] = ()

    @property
    def contract(self) -> DeployContract:
        return DeployContract.from_json(self.contract_json, source=f"contract of {self.model} version {self.version}")

    @property
    def folder(self) -> str:
        return f"{PROMOTION_DIR}/{self.stamp}"

    def passed(self, result: promotion_gates.GateResult, **changes: Any) -> Candidate:
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


def _dated_partitions(store: PinnedStore, key: str) -> list[tuple[dt.date, str]]:
    """``(first day, partition)`` of the stored partitions of ``key`` named by a day (``2021-03-17...``), sorted."""
    dated = []
    for _, partition in store.locations(key):
        if partition is None:
            continue
        try:
            dated.append((dt.date.fromisoformat(partition[:10]), partition))
        except ValueError:
            continue
    return sorted(dated)


def _read_after(store: PinnedStore, key: str, day: dt.date) -> pl.DataFrame | None:
    """The stored partitions of ``key`` that can hold days after ``day`` (those starting after it, and the last
    one starting on or before it: a weekly or monthly partition reaches past its first day); None: none."""
    dated = _dated_partitions(store, key)
    before = [p for start, p in dated if start <= day][-1:]
    wanted = before + [p for start, p in dated if start > day]
    if not wanted:
        return None
    frame, _ = store.read_many(key, wanted)
    return frame


def live_section(store: PinnedStore, wiring: PromotionWiring, *, head: LedgerEntry | None, challenger: SignalModel,
                 challenger_version: str, incumbent: SignalModel | None) -> promotion_gates.LiveSection:
    """Challenger vs incumbent on the live days stored since the incumbent became champion (the day of the
    ledger head, UTC): the model-input and label partitions after it, joined on the frame keys."""
    if head is None or incumbent is None:
        return promotion_gates.compute_live_section(
            challenger=challenger, challenger_version=challenger_version, incumbent=None, incumbent_version=None,
            since=None, model_input=None, labels=None, keys=wiring.keys, label_column=wiring.label_column)
    since = head.recorded_at.astimezone(dt.UTC).date()
    moved = "promoted" if head.kind == MoveKind.PROMOTION else f"made champion by a {head.kind}"
    if wiring.label_key is None:
        return promotion_gates.LiveSection(head.to_version, since, reason=(
            f"the live days since version {head.to_version} was {moved} on {since.isoformat()} are not compared: "
            "the promotion job was built without the label node (build_promotion_job(label=...))"))
    frames = []
    for role, key in (("model input", wiring.model_input_key), ("label", wiring.label_key)):
        try:
            frames.append(_read_after(store, key, since))
        except MLPlatformError as exc:
            raise promotion_gates.gate_failed(promotion_gates.REPORT, f"the stored {role} partitions of {key} since version {head.to_version} "
                                          f"was {moved} on {since.isoformat()} cannot be read: {exc}") from exc
    return promotion_gates.compute_live_section(
        challenger=challenger, challenger_version=challenger_version, incumbent=incumbent,
        incumbent_version=head.to_version, since=since, model_input=frames[0], labels=frames[1], keys=wiring.keys,
        label_column=wiring.label_column, moved=moved)


def make_report(registry: ModelRegistry, store: PinnedStore, wiring: PromotionWiring, candidate: Candidate) -> Candidate:
    """Gate ``report``: challenger and incumbent on the challenger's validation rows, and on the live days
    stored since the incumbent became champion (informational); stored beside the version."""
    contract = candidate.contract
    with open_ledger(registry) as ledger:
        head = ledger.head(candidate.model)
    incumbent_version = None if head is None else head.to_version
    if incumbent_version == candidate.version:
        raise promotion_gates.gate_failed(promotion_gates.REPORT, f"version {candidate.version} of {candidate.model!r} is already the champion")
    try:
        stored = store.read(wiring.training_key, None, data_hash=contract.training_set_data_hash)
    except (DataError, IntegrityError) as exc:
        raise promotion_gates.gate_failed(promotion_gates.REPORT, f"the challenger's training set {wiring.training_key} as of "
                                      f"{contract.training_set_data_hash} cannot be read: {exc}") from exc
    challenger = registry.load_model(candidate.model, candidate.version)
    incumbent = None
    if incumbent_version is not None:
        try:
            incumbent = registry.load_model(candidate.model, incumbent_version)
        except (ModelNotFound, RegistryError) as exc:
            raise promotion_gates.gate_failed(promotion_gates.REPORT, f"the incumbent champion version {incumbent_version} cannot be loaded "
                                          f"({exc}); run `ml-platform registry reconcile`") from exc
    report = promotion_gates.compute_numeric_report(
        model=candidate.model, challenger=challenger, challenger_version=candidate.version, incumbent=incumbent,
        incumbent_version=incumbent_version, training_set=stored.frame, window=contract.validation_window,
        keys=wiring.keys, label_column=wiring.label_column, policy=wiring.policy)
    report = report.with_live(live_section(store, wiring, head=head, challenger=challenger,
                                           challenger_version=candidate.version, incumbent=incumbent))
    rendered = render_report(report, created_at=candidate.stamp, extra={
        "training_set": wiring.training_key, "training_set_data_hash": contract.training_set_data_hash,
        "policy": wiring.policy.to_dict(), "label": wiring.label_key})
    run_files.log_files(registry, candidate.run_id, candidate.folder, rendered.files())
    live = _live_schema(store, wiring, contract, stored.frame)
    live_part = report.live_section
    result = promotion_gates.GateResult(promotion_gates.REPORT, True, f"report on {report.window}: {report.rows} rows, challenger v"
                          f"{candidate.version} vs {'none' if incumbent_version is None else 'v' + incumbent_version}"
                          f"; live days: {live_part.summary}",
                          {"differences": report.differences, "live_days": live_part.days,
                           "live_differences": live_part.differences})
    return candidate.passed(
        result, incumbent_version=incumbent_version, head_seq=0 if head is None else head.seq, report=report,
        report_ref=run_files.artifact_ref(candidate.run_id, f"{candidate.folder}/report.json"),
        report_sha256=sha256_hex(rendered.json_bytes), report_markdown=report.markdown(),
        plot_path=run_files.artifact_link(registry, candidate.run_id, f"{candidate.folder}/report.png").target,
        live_schema=tuple(live.to_list()))


def rationale_gate(registry: ModelRegistry, policy: PromotionPolicy, candidate: Candidate) -> Candidate:
    """Gate ``rationale``: not empty, no placeholder, long enough, not a copy of an earlier one."""
    result = promotion_gates.check_rationale(candidate.rationale, previous=previous_rationales(registry, candidate.model),
                               policy=policy)
    return candidate.passed(result, override=promotion_gates.declares_override(candidate.rationale, policy))


def contract_gate(wiring: PromotionWiring, candidate: Candidate, environment_policy: EnvironmentPolicy | str) -> Candidate:
    """Gate ``contract``: the challenger's contract against the live feature graph, schema and environment."""
    result = promotion_gates.check_contract_gate(
        candidate.contract, live_graph_hash=wiring.live_graph_hash,
        live_schema=FeatureSchema.from_list(list(candidate.live_schema)), keys=wiring.keys,
        running_env=capture_environment(wiring.project_root), policy=environment_policy)
    return candidate.passed(result)


def four_eyes_gate(candidate: Candidate) -> Candidate:
    """Gate ``four_eyes``: the approver is named and did not train the version."""
    return candidate.passed(promotion_gates.check_four_eyes(candidate.approver, candidate.contract.trained_by))


def thresholds_gate(policy: PromotionPolicy, candidate: Candidate) -> Candidate:
    """Gate ``thresholds``: no worse than the incumbent beyond the policy, unless the rationale overrides."""
    assert candidate.report is not None
    return candidate.passed(promotion_gates.check_thresholds(candidate.report, policy, override=candidate.override))


def record(registry: ModelRegistry, candidate: Candidate) -> LedgerEntry:
    """Store the rationale beside the version, then append the ledger entry (compare-and-set on the head the
    report compared against) and mirror the alias. A move recorded meanwhile fails with LedgerConflict.

    The rationale the entry links to is stored before the entry, under ``<folder>/submitted/`` (so the
    entry's ref resolves whenever the entry exists), and published as ``<folder>/rationale.md``, where
    the rationale gate of later promotions compares with it, only once the entry is recorded: an attempt
    that fails or is killed before its entry leaves no rationale that the same promotion, run again,
    would be refused as a copy of. A kill between the entry and the publication (or a failed
    publication, logged) leaves that one recorded rationale out of later copy checks.
    """
    missing = sorted(set(promotion_gates.GATE_ORDER) - {g.name for g in candidate.gates})
    if missing:
        raise promotion_gates.gate_failed(missing[0], "the gate did not run; nothing recorded")
    text = candidate.rationale.strip() + "\n"
    data = text.encode("utf-8")
    meta = {"author": candidate.rationale_author, "approver": candidate.approver, "actor": candidate.actor,
            "recorded_at": dt.datetime.now(dt.UTC).isoformat(), "model": candidate.model,
            "version": candidate.version, "sha256": sha256_hex(data), "override": candidate.override}
    files = {RATIONALE_FILE: data, "rationale.json": json.dumps(meta, indent=2, sort_keys=True).encode()}
    submitted = f"{candidate.folder}/submitted"  # what the entry links to, stored before the entry
    run_files.log_files(registry, candidate.run_id, submitted, files)
    crash_point("promotion.rationale_logged")
    overridden = any(g.name == promotion_gates.THRESHOLDS and g.facts.get("override") for g in candidate.gates)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    reason = f"promotion through the gates: {first}"[:_MAX_REASON]
    with ChampionService.open(registry) as champions:
        entry = champions.promote(
            candidate.model, candidate.version, expected_head_seq=candidate.head_seq, actor=candidate.actor,
            approver=candidate.approver, reason=reason, report_ref=candidate.report_ref,
            report_sha256=candidate.report_sha256,
            rationale_ref=run_files.artifact_ref(candidate.run_id, f"{submitted}/{RATIONALE_FILE}"),
            rationale_sha256=sha256_hex(data), override=bool(overridden))
    crash_point("promotion.recorded")
    try:
        run_files.log_files(registry, candidate.run_id, candidate.folder, files)
    except Exception as exc:  # noqa: BLE001 - the entry is recorded: the promotion stands, logged
        logger.warning(
            "model %r version %s is champion (ledger entry %d); its rationale could not be published to %s for the "
            "copy check of later promotions (%s: %s); the entry links to %s", candidate.model, candidate.version,
            entry.seq, candidate.folder, type(exc).__name__, exc, entry.rationale_ref)
    crash_point("promotion.rationale_published")
    return entry
