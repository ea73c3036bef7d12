"""Find and finish or remove what interrupted registrations left in the registry.

How it works, and why: docs/architecture.md, "ml_platform/registry/repair.py".
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException

from ml_platform.errors import ConfigurationError, IntegrityError, MLPlatformError
from ml_platform.registry import entities
from ml_platform.registry.boundary import sha256_of
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.entities import VersionStatus
from ml_platform.registry.process import process_alive
from ml_platform.registry.registration import version_tags
from ml_platform.registry.store import ModelRegistry

__all__ = ["DEFAULT_STALE_AFTER", "RepairFinding", "RepairReport",
           "repair_registry"]

#: How old a RUNNING registration run must be to count as abandoned when its process cannot be checked.
DEFAULT_STALE_AFTER = dt.timedelta(hours=1)
_PAGE = 1000
_MLMODEL = f"{entities.MODEL_DIR}/MLmodel"


# -- the registering process -----------------------------------------------------------------------


@dataclass(frozen=True)
class RepairFinding:
    """One inconsistency an interrupted registration left, and what repair does about it.

    Attributes:
        subject: What it concerns: ``model 'a' version 3``, ``run <id> of model 'a'`` or ``model 'a'``.
        problem: What is wrong.
        action: What repair does (``finish``, ``remove``, ``end FINISHED``, ``end KILLED``,
            ``remove model``) and why that action.
        done: Whether it was done (``False`` under ``check_only``).
    """

    subject: str
    problem: str
    action: str
    done: bool

    def describe(self) -> str:
        return f"{self.subject}: {self.problem} -> {self.action}{'' if self.done else ' (not done: --check)'}"

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "problem": self.problem, "action": self.action, "done": self.done}


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_registry` found and did.

    Attributes:
        store: The tracking store (password hidden).
        check_only: Nothing was changed.
        findings: The inconsistencies found (each done unless ``check_only``).
        in_progress: Registrations left alone because their process may still finish them.
        left_alone: What is not the platform's (a version made from no platform run), noticed only.
        models: How many registered models were examined.
    """

    store: str
    check_only: bool
    findings: tuple[RepairFinding, ...]
    in_progress: tuple[str, ...] = ()
    left_alone: tuple[str, ...] = ()
    models: int = 0

    @property
    def consistent(self) -> bool:
        """No inconsistency was found (``in_progress`` and ``left_alone`` are not inconsistencies)."""
        return not self.findings

    def lines(self) -> list[str]:
        """The report as text lines, for the CLI."""
        if self.consistent:
            head = f"registry {self.store}: consistent ({self.models} registered model(s) examined)"
        elif self.check_only:
            head = (f"registry {self.store}: {len(self.findings)} inconsistency(ies) an interrupted registration "
                    "left; `ml-platform registry repair` fixes them")
        else:
            head = f"registry {self.store}: repaired {len(self.findings)} inconsistency(ies)"
        out = [head, *(f"  {f.describe()}" for f in self.findings)]
        out += [f"  in progress, left alone: {item}" for item in self.in_progress]
        out += [f"  not the platform's, left alone: {item}" for item in self.left_alone]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "check_only": self.check_only, "consistent": self.consistent,
                "models": self.models, "findings": [f.to_dict() for f in self.findings],
                "in_progress": list(self.in_progress), "left_alone": list(self.left_alone)}


# -- the repair ------------------------------------------------------------------------------------


@dataclass
class _Scan:
    registry: ModelRegistry
    check_only: bool
    stale_after: dt.timedelta
    now_ms: float = field(default_factory=lambda: time.time() * 1000)
    findings: list[RepairFinding] = field(default_factory=list)
    in_progress: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    experiment_ids: list[str] = field(default_factory=list)
    running: dict[str, Run] = field(default_factory=dict)
    live: dict[str, bool] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)

    @property
    def client(self) -> Any:
        return self.registry.client

    def note(self, subject: str, problem: str, action: str) -> None:
        self.findings.append(RepairFinding(subject, problem, action, not self.check_only))


def repair_registry(registry: ModelRegistry, *, check_only: bool = False,
                    stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> RepairReport:
    """Find (and unless ``check_only``, fix) what interrupted registrations left; see the module docstring.

    Raises:
        ConfigurationError: ``stale_after`` is not a non-negative timedelta.
        RegistryError: MLflow failed; what was already fixed stays fixed, and running repair again
            continues from there.
    """
    if not isinstance(stale_after, dt.timedelta) or stale_after < dt.timedelta(0):
        raise ConfigurationError(f"stale_after must be a non-negative datetime.timedelta, got {stale_after!r}")
    scan = _Scan(registry, check_only, stale_after)
    scan.experiment_ids = _experiment_ids(scan)
    for run in _running_registration_runs(scan):
        scan.running[run.info.run_id] = run
        scan.live[run.info.run_id] = _registration_live(scan, run)
    models = registry.registered_models()
    for model in models:
        _examine_model(scan, model)
    for run_id, run in scan.running.items():
        if run_id in scan.ended:
            continue
        if scan.live[run_id]:
            scan.in_progress.append(_run_subject(run) + _liveness_note(run))
            continue
        _end_run(scan, run, "KILLED", "left RUNNING by a registration that was interrupted before any version "
                 "was created")
    return RepairReport(registry.store, check_only, tuple(scan.findings), tuple(scan.in_progress),
                        tuple(scan.left_alone), len(models))


def _experiment_ids(scan: _Scan) -> list[str]:
    ids: list[str] = []
    token = None
    with scan.registry.mlflow_call("list experiments"):
        while True:
            page = scan.client.search_experiments(max_results=_PAGE, page_token=token)
            ids.extend(str(e.experiment_id) for e in page)
            token = page.token
            if not token:
                return ids


def _search_runs(scan: _Scan, filter_string: str, *, limit: int | None = None) -> Iterator[Run]:
    found = 0
    for start in range(0, len(scan.experiment_ids), 100):
        token = None
        with scan.registry.mlflow_call("search training runs"):
            while True:
                page = scan.client.search_runs(scan.experiment_ids[start:start + 100], filter_string=filter_string,
                                               max_results=_PAGE if limit is None else limit, page_token=token)
                for run in page:
                    yield run
                    found += 1
                    if limit is not None and found >= limit:
                        return
                token = page.token
                if not token:
                    break


def _running_registration_runs(scan: _Scan) -> list[Run]:
    return [run for run in _search_runs(scan, "attributes.status = 'RUNNING'")
            if run.data.tags.get(entities.MODEL_NAME_TAG)]


def _registration_live(scan: _Scan, run: Run) -> bool:
    alive = process_alive(run.data.tags.get(entities.REGISTRATION_PROCESS_TAG))
    if alive is not None:
        return alive
    return scan.now_ms - (run.info.start_time or 0) < scan.stale_after.total_seconds() * 1000


def _liveness_note(run: Run) -> str:
    alive = process_alive(run.data.tags.get(entities.REGISTRATION_PROCESS_TAG))
    if alive:
        return ": its process is still running"
    return ": it started less than the stale-after time ago and its process cannot be checked from here"


def _run_subject(run: Run) -> str:
    return f"run {run.info.run_id} of model {run.data.tags.get(entities.MODEL_NAME_TAG)!r}"


def _get_run(scan: _Scan, run_id: str | None) -> Run | None:
    if not run_id:
        return None
    if run_id in scan.running:
        return scan.running[run_id]
    with scan.registry.mlflow_call(f"read run {run_id}"):
        try:
            return scan.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return None


def _examine_model(scan: _Scan, model: RegisteredModel) -> None:
    name = model.name
    try:
        entities.check_model_name(name)
    except ConfigurationError:
        scan.left_alone.append(f"model {name!r}: not a name the platform registers")
        return
    versions = scan.registry.versions(name)
    remaining = len(versions)
    for version in versions:
        if not _examine_version(scan, name, version):
            remaining -= 1
    if remaining:
        return
    live = [run for run_id, run in scan.running.items()
            if scan.live[run_id] and run.data.tags.get(entities.MODEL_NAME_TAG) == name]
    if live:
        scan.in_progress.append(f"model {name!r} (no version yet): " + ", ".join(_run_subject(r) for r in live))
        return
    ours = (dict(model.tags or {}).get(entities.CREATED_BY_TAG) == "ml_platform"
            or any(True for _ in _search_runs(scan, f"tags.`{entities.MODEL_NAME_TAG}` = '{name}'", limit=1)))
    if not ours:
        scan.left_alone.append(f"model {name!r}: no versions, and no platform training run names it")
        return
    problem = ("no versions left once its unfinished ones are removed" if versions
               else "a registered model with no versions, left by an interrupted first registration")
    scan.note(f"model {name!r}", problem, "remove model")
    if scan.check_only:
        return
    with scan.registry.mlflow_call(f"remove the empty registered model {name!r}"):
        if not scan.client.search_model_versions(f"name='{name}'", max_results=1):
            scan.client.delete_registered_model(name)


def _examine_version(scan: _Scan, name: str, version: ModelVersion) -> bool:
    """Examine one version; ``False`` if it is (or, under ``check_only``, would be) removed."""
    number = str(version.version)
    subject = f"model {name!r} version {number}"
    status = version.tags.get(entities.STATUS_TAG)
    run = _get_run(scan, version.run_id)
    if status == VersionStatus.READY:
        if run is not None and run.info.run_id in scan.running and not scan.live[run.info.run_id]:
            _end_run(scan, run, "FINISHED", f"left RUNNING by a registration interrupted after it created {subject}")
        return True
    ours = run is not None and run.data.tags.get(entities.MODEL_NAME_TAG) == name
    if status is None and not ours:
        scan.left_alone.append(f"{subject}: none of the platform's tags, and not made from a platform training run")
        return True
    if run is not None and scan.live.get(run.info.run_id, False):
        scan.in_progress.append(f"{subject} ({_run_subject(run)}{_liveness_note(run)})")
        return True
    problem = {
        VersionStatus.REGISTERING: f"its registration never finished ({entities.STATUS_TAG}='registering')",
        VersionStatus.FAILED: f"its registration failed ({entities.STATUS_TAG}='failed') but it was never removed",
        None: "it carries none of the platform's tags",
    }.get(status, f"unknown {entities.STATUS_TAG}={status!r}")
    verified = _verify_artefacts(scan, name, number, run) if status != VersionStatus.FAILED and ours else None
    if isinstance(verified, tuple):
        contract, contract_bytes = verified
        scan.note(subject, problem, "finish: its run's contract, model bytes and MLflow model verify; tagged ready")
        if not scan.check_only:
            _finish(scan, name, number, contract, contract_bytes)
        if run is not None and run.info.run_id in scan.running:
            _end_run(scan, run, "FINISHED", f"left RUNNING by the registration of {subject}, finished by repair")
        return True
    why = verified or ("the registration recorded its failure" if status == VersionStatus.FAILED
                       else "its run is not a platform training run of this model")
    scan.note(subject, problem, f"remove: {why}")
    if not scan.check_only:
        with scan.registry.mlflow_call(f"remove {subject}"):
            scan.client.set_model_version_tag(name, number, entities.STATUS_TAG, VersionStatus.FAILED)
            scan.client.set_model_version_tag(name, number, entities.REPAIR_TAG, _stamp(f"removed: {why}"))
            scan.client.delete_model_version(name, number)
    if run is not None and run.info.run_id in scan.running:
        _end_run(scan, run, "KILLED", f"left RUNNING by the unfinished registration of {subject}")
    return False


def _verify_artefacts(scan: _Scan, name: str, number: str, run: Run | None) -> tuple[DeployContract, bytes] | str:
    """The version's contract (and its bytes) if its run's artefacts verify, else why not.

    A missing, unreadable or mismatched artefact is a reason; a failing MLflow (a
    :class:`~ml_platform.errors.RegistryError`) is raised, so a version is never removed because
    the artefact store was briefly unreachable.
    """
    if run is None:
        return "its run no longer exists"
    run_id = run.info.run_id
    what = f"the contract of model {name!r} version {number}"
    try:
        contract_bytes = scan.registry.download_artifact(run_id, entities.CONTRACT_ARTIFACT, what)
        try:
            contract = DeployContract.from_json(contract_bytes, source=what)
        except MLPlatformError as exc:
            return f"its run's contract is unreadable ({exc})"
        if contract.model_name != name or contract.model_version not in (None, number):
            return f"its run's contract describes {contract.label}"
        model_bytes = scan.registry.download_artifact(run_id, entities.MODEL_BYTES_ARTIFACT, f"the model bytes of run {run_id}")
        if sha256_of(model_bytes) != contract.model_sha256:
            return f"its run's model bytes hash to {sha256_of(model_bytes)}, not the contract's {contract.model_sha256}"
        scan.registry.download_artifact(run_id, _MLMODEL, f"the MLflow model of run {run_id}")
    except IntegrityError as exc:  # an artefact is missing: the registration never uploaded it
        return f"an artefact is missing ({exc})"
    return contract, contract_bytes


def _finish(scan: _Scan, name: str, number: str, contract: DeployContract, contract_bytes: bytes) -> None:
    with scan.registry.mlflow_call(f"finish model {name!r} version {number}"):
        for key, value in version_tags(contract, sha256_of(contract_bytes)).items():
            scan.client.set_model_version_tag(name, number, key, value)
        scan.client.set_model_version_tag(name, number, entities.REPAIR_TAG,
                                          _stamp("finished: tagged from its run's verified contract"))
        scan.client.set_model_version_tag(name, number, entities.STATUS_TAG, VersionStatus.READY)  # the commit point


def _end_run(scan: _Scan, run: Run, status: str, problem: str) -> None:
    run_id = run.info.run_id
    if run_id in scan.ended:
        return
    scan.ended.add(run_id)
    scan.note(_run_subject(run), problem, f"end {status}")
    if scan.check_only:
        return
    with scan.registry.mlflow_call(f"end run {run_id}"):
        if status != "FINISHED":
            scan.client.set_tag(run_id, entities.STATUS_TAG, VersionStatus.FAILED)
        scan.client.set_tag(run_id, entities.REPAIR_TAG, _stamp(f"ended {status}: {problem}"))
        scan.client.set_terminated(run_id, status)


def _stamp(text: str) -> str:
    return f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} registry repair: {text}"
