"""The deploy contract: what a registered model promises about its inputs, checked at the boundary.

How it works, and why: docs/architecture.md, "ml_platform/registry/contract.py".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ml_platform.environment import EnvironmentLock, EnvironmentPolicy, check_environment, diff_environments
from ml_platform.errors import ConfigurationError, ContractViolation, EnvironmentMismatch, RegistryError
from ml_platform.keys import FrameKeys
from ml_platform.lineage.schemes import HashSchemeError, current_schemes, recorded_schemes
from ml_platform.models.protocol import check_format_id
from ml_platform.registry.schema import FeatureField, FeatureSchema
from ml_platform.window import DataWindow

__all__ = ["CONTRACT_SCHEMA_VERSION", "ContractCheck", "DeployContract", "LiveFeatureStream", "check_contract", "schema_differences"]

CONTRACT_SCHEMA_VERSION = "ml_platform.contract/v2"
#: Earlier schema versions, refused with a message saying what changed.
_OLDER_SCHEMA_VERSIONS = {"ml_platform.contract/v1": "written before model formats and frame keys were recorded"}
_HASH = re.compile(r"^[a-z0-9_]+:[0-9a-f]{16,128}$")
_SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")
_FIELDS = (
    "schema_version", "model_name", "model_version", "feature_graph_hash", "feature_schema", "keys",
    "training_window", "validation_window", "training_set_data_hash", "model_sha256", "model_format",
    "environment_hash", "environment_lock", "seeds", "git_commit", "git_dirty", "trained_by", "created_at",
    "hash_schemes",
)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


@dataclass(frozen=True)
class DeployContract:
    """A model version's promise about its inputs and its provenance.

    Attributes:
        model_name: Registered model name.
        model_version: Registered version, ``None`` until the registry assigns one.
        feature_graph_hash: Graph hash (``"sha256:..."``) of the model's training input node.
        feature_schema: Schema of the model's input frame (keys and features, in order).
        keys: The key columns of that frame (all in ``feature_schema``; the time column a date or timestamp).
        training_window: Days the model was trained on.
        validation_window: Days it was validated on.
        training_set_data_hash: Data hash of the training set (``"xxh3_128:..."``).
        model_sha256: ``SignalModel.sha256`` of the registered model bytes.
        model_format: The model's format id (``SignalModel.format_id``), which loads the bytes back.
        environment_hash: Hash of ``environment_lock``; checked against it on construction.
        environment_lock: ``EnvironmentLock.to_dict()`` of the training environment.
        seeds: Every seed used in training, by name.
        git_commit: Commit of the training code, ``None`` outside a git checkout.
        git_dirty: Whether the checkout had uncommitted changes.
        trained_by: Who trained it (recorded as MLflow's ``mlflow.user``).
        created_at: Timezone-aware creation time.
        schema_version: ``"ml_platform.contract/v2"``; it is part of the hashed JSON, so it versions the
            contract's own hash (:attr:`sha256`).
        hash_schemes: kind -> scheme id of the code, graph, data and environment hashes recorded here
            (:mod:`ml_platform.lineage.schemes`), so they stay recomputable after a scheme changes.
    """

    model_name: str
    model_version: str | None
    feature_graph_hash: str
    feature_schema: FeatureSchema
    keys: FrameKeys
    training_window: DataWindow
    validation_window: DataWindow
    training_set_data_hash: str
    model_sha256: str
    model_format: str
    environment_hash: str
    environment_lock: Mapping[str, Any] = field(hash=False, repr=False)
    seeds: Mapping[str, int] = field(hash=False)
    git_commit: str | None
    git_dirty: bool
    trained_by: str
    created_at: dt.datetime
    schema_version: str = CONTRACT_SCHEMA_VERSION
    hash_schemes: Mapping[str, str] = field(default_factory=current_schemes, hash=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "hash_schemes", MappingProxyType(recorded_schemes(self.hash_schemes)))
        except HashSchemeError as exc:
            raise ConfigurationError(f"contract hash_schemes: {exc}") from exc
        _require(self.schema_version == CONTRACT_SCHEMA_VERSION,
                 f"unknown contract schema version {self.schema_version!r}; this code reads {CONTRACT_SCHEMA_VERSION!r}")
        _require(isinstance(self.model_name, str) and bool(self.model_name.strip()),
                 f"model_name must be a non-empty string, got {self.model_name!r}")
        _require(self.model_version is None or (isinstance(self.model_version, str) and self.model_version.isdigit()),
                 f"model_version must be None or a version number string like '3', got {self.model_version!r}")
        for name in ("feature_graph_hash", "training_set_data_hash", "environment_hash"):
            value = getattr(self, name)
            _require(isinstance(value, str) and bool(_HASH.match(value)),
                     f"{name} must look like 'algorithm:hexdigest', got {value!r}")
        _require(isinstance(self.model_sha256, str) and bool(_SHA256.match(self.model_sha256)),
                 f"model_sha256 must be 'sha256:<64 hex>', got {self.model_sha256!r}")
        _require(isinstance(self.feature_schema, FeatureSchema),
                 f"feature_schema must be a FeatureSchema, got {type(self.feature_schema).__name__}")
        _require(isinstance(self.keys, FrameKeys), f"keys must be a FrameKeys, got {type(self.keys).__name__}")
        missing = [c for c in self.keys.columns if c not in self.feature_schema.names]
        _require(not missing, f"the feature schema lacks the key column(s) {missing} of keys ({self.keys}); "
                              "build the schema from the model's input frame, keys included")
        time_type = self.feature_schema.field(self.keys.time).type
        _require(time_type == "date32[day]" or time_type.startswith("timestamp["),
                 f"time column {self.keys.time!r} is {time_type} in the feature schema, expected a date or timestamp")
        check_format_id(self.model_format)
        for name in ("training_window", "validation_window"):
            _require(isinstance(getattr(self, name), DataWindow), f"{name} must be a DataWindow")
        _require(self.git_commit is None or (isinstance(self.git_commit, str) and bool(self.git_commit)),
                 f"git_commit must be None or a commit id, got {self.git_commit!r}")
        _require(isinstance(self.git_dirty, bool), f"git_dirty must be a bool, got {self.git_dirty!r}")
        _require(isinstance(self.trained_by, str) and bool(self.trained_by.strip()),
                 f"trained_by must name who trained the model, got {self.trained_by!r}")
        _require(isinstance(self.created_at, dt.datetime) and self.created_at.utcoffset() is not None,
                 f"created_at must be a timezone-aware datetime, got {self.created_at!r}")
        _require(isinstance(self.seeds, Mapping) and all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in self.seeds.items()),
            f"seeds must map names to integers, got {self.seeds!r}")
        _require(isinstance(self.environment_lock, Mapping), "environment_lock must be EnvironmentLock.to_dict()")
        # Deep copies, read-only at the top level: the contract cannot be changed behind its hash.
        object.__setattr__(self, "seeds", MappingProxyType(dict(sorted(self.seeds.items()))))
        object.__setattr__(self, "environment_lock", MappingProxyType(json.loads(json.dumps(dict(self.environment_lock)))))
        lock = EnvironmentLock.from_dict(dict(self.environment_lock))
        _require(lock.hash == self.environment_hash,
                 f"environment_hash {self.environment_hash} does not match the environment lock, which hashes "
                 f"to {lock.hash}; record the lock and hash of the same capture")
        # Precomputed once so that check_contract stays far below a millisecond.
        object.__setattr__(self, "_lock", lock)
        object.__setattr__(self, "_columns", {f.name: f for f in self.feature_schema.fields})

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # Pickle (Dagster outputs, multiprocessing) through the canonical JSON: the read-only
        # mappings are not picklable themselves, and the JSON path re-validates on the way back.
        return (_contract_from_json, (self.to_json(),))

    @property
    def environment(self) -> EnvironmentLock:
        """The pinned training environment."""
        lock: EnvironmentLock = self.__dict__["_lock"]
        return lock

    @property
    def label(self) -> str:
        """``"model 'name' version N"`` (or ``"(unregistered)"``), for messages."""
        version = self.model_version if self.model_version is not None else "(unregistered)"
        return f"model {self.model_name!r} version {version}"

    def with_version(self, version: str) -> DeployContract:
        """A copy with ``model_version`` filled in by the registry."""
        data = self.to_dict()
        data["model_version"] = version
        return DeployContract._from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return {
            "schema_version": self.schema_version,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "feature_graph_hash": self.feature_graph_hash,
            "feature_schema": self.feature_schema.to_list(),
            "keys": self.keys.to_dict(),
            "training_window": self.training_window.to_dict(),
            "validation_window": self.validation_window.to_dict(),
            "training_set_data_hash": self.training_set_data_hash,
            "model_sha256": self.model_sha256,
            "model_format": self.model_format,
            "environment_hash": self.environment_hash,
            "environment_lock": json.loads(json.dumps(dict(self.environment_lock))),
            "seeds": dict(self.seeds),
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
            "trained_by": self.trained_by,
            "created_at": self.created_at.isoformat(),
            "hash_schemes": dict(self.hash_schemes),
        }

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, compact separators, ASCII; equal contracts, equal text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)

    @property
    def sha256(self) -> str:
        """``"sha256:<hex>"`` of :meth:`to_json` encoded as ASCII."""
        return "sha256:" + hashlib.sha256(self.to_json().encode("ascii")).hexdigest()

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "deploy contract") -> DeployContract:
        """Parse a contract written by :meth:`to_json`.

        Args:
            text: The JSON text or bytes.
            source: What is being read, named in errors (e.g. "contract of model 'alpha' version 3").

        Raises:
            RegistryError: the text is not JSON, of another schema version, misses or adds fields,
                or holds a malformed value; the message names ``source`` and the problem.
        """
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
            raise RegistryError(f"{source} is corrupt: not JSON ({exc}); re-register the model version") from exc
        if not isinstance(data, dict):
            raise RegistryError(f"{source} is corrupt: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version in _OLDER_SCHEMA_VERSIONS:
            raise RegistryError(
                f"{source} has schema version {version!r} ({_OLDER_SCHEMA_VERSIONS[version]}); this code reads "
                f"{CONTRACT_SCHEMA_VERSION!r} only: retrain and register the model again with this ml_platform"
            )
        if version != CONTRACT_SCHEMA_VERSION:
            raise RegistryError(
                f"{source} has schema version {version!r}; this code reads {CONTRACT_SCHEMA_VERSION!r}: "
                "upgrade ml_platform or re-register the model version"
            )
        missing, extra = sorted(set(_FIELDS) - set(data)), sorted(set(data) - set(_FIELDS))
        if missing or extra:
            raise RegistryError(f"{source} is corrupt: fields missing {missing}, unexpected {extra}")
        try:
            return cls._from_dict(data)
        except (ConfigurationError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise RegistryError(f"{source} is corrupt: {exc}") from exc

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> DeployContract:
        created_at = data["created_at"]
        if not isinstance(created_at, str):
            raise ConfigurationError(f"created_at must be an ISO timestamp string, got {created_at!r}")
        return cls(
            model_name=data["model_name"],
            model_version=data["model_version"],
            feature_graph_hash=data["feature_graph_hash"],
            feature_schema=FeatureSchema.from_list(data["feature_schema"]),
            keys=FrameKeys.from_dict(data["keys"]),
            training_window=DataWindow.from_dict(data["training_window"]),
            validation_window=DataWindow.from_dict(data["validation_window"]),
            training_set_data_hash=data["training_set_data_hash"],
            model_sha256=data["model_sha256"],
            model_format=data["model_format"],
            environment_hash=data["environment_hash"],
            environment_lock=data["environment_lock"],
            seeds=data["seeds"],
            git_commit=data["git_commit"],
            git_dirty=data["git_dirty"],
            trained_by=data["trained_by"],
            created_at=dt.datetime.fromisoformat(created_at),
            hash_schemes=data["hash_schemes"],
            schema_version=data["schema_version"],
        )


def _contract_from_json(text: str) -> DeployContract:
    return DeployContract.from_json(text, source="pickled deploy contract")


@dataclass(frozen=True)
class LiveFeatureStream:
    """What a live feature source offers a model: its graph hash, its frame's schema and, if known, its keys.

    ``keys=None`` (a source that does not say) skips the key comparison; the schema comparison still
    catches a key column that is missing or of another type.
    """

    feature_graph_hash: str
    feature_schema: FeatureSchema
    keys: FrameKeys | None = None

    def __post_init__(self) -> None:
        _require(isinstance(self.feature_graph_hash, str) and bool(_HASH.match(self.feature_graph_hash)),
                 f"live feature_graph_hash must look like 'algorithm:hexdigest', got {self.feature_graph_hash!r}")
        _require(isinstance(self.feature_schema, FeatureSchema),
                 f"live feature_schema must be a FeatureSchema, got {type(self.feature_schema).__name__}")
        _require(self.keys is None or isinstance(self.keys, FrameKeys),
                 f"live keys must be a FrameKeys or None, got {type(self.keys).__name__}")


@dataclass(frozen=True)
class ContractCheck:
    """A passed contract check.

    Attributes:
        model_name: The model checked.
        model_version: Its version.
        environment_differences: Environment differences tolerated by a ``warn`` or ``off`` policy.
    """

    model_name: str
    model_version: str | None
    environment_differences: tuple[str, ...] = ()


def schema_differences(contract: DeployContract, live: FeatureSchema) -> list[str]:
    """Every difference between the contract's feature schema and ``live`` (names, types, nullability, order)."""
    if live == contract.feature_schema:  # the common case: one tuple comparison
        return []
    expected: dict[str, FeatureField] = contract.__dict__["_columns"]
    offered = {f.name: f for f in live.fields}
    differences: list[str] = []
    for name, wanted in expected.items():
        got = offered.get(name)
        if got is None:
            differences.append(f"column {name}: missing from the live stream (contract: {wanted.describe()})")
            continue
        if got.type != wanted.type:
            differences.append(f"column {name}: type {wanted.type} -> {got.type}")
        if got.nullable and not wanted.nullable:
            differences.append(f"column {name}: nullable in the live stream, non-null in the contract")
    for name, got in offered.items():
        if name not in expected:
            differences.append(f"column {name}: not in the contract (live: {got.describe()})")
    contract_order = [n for n in contract.feature_schema.names if n in offered]
    live_order = [n for n in live.names if n in expected]
    if contract_order != live_order:
        differences.append(f"column order: contract [{', '.join(contract_order)}] != live [{', '.join(live_order)}]")
    return differences


def check_contract(
    contract: DeployContract,
    live: LiveFeatureStream,
    *,
    running_env: EnvironmentLock,
    policy: EnvironmentPolicy | str,
) -> ContractCheck:
    """Check a model's contract against the live feature stream and the running environment.

    Every difference is collected before anything is raised, so one refusal lists them all.

    Args:
        contract: The model version's deploy contract.
        live: The feature stream the model would score.
        running_env: The environment the model would run in (``capture_environment()``).
        policy: ``strict`` refuses any environment difference, ``warn`` logs it, ``off`` ignores it.

    Returns:
        A :class:`ContractCheck` recording any tolerated environment differences.

    Raises:
        ContractViolation: naming the model and version and listing each difference by kind.
        ConfigurationError: for arguments of the wrong type or an unknown policy.
    """
    if not isinstance(contract, DeployContract) or not isinstance(live, LiveFeatureStream):
        raise ConfigurationError("check_contract needs a DeployContract and a LiveFeatureStream")
    if not isinstance(running_env, EnvironmentLock):
        raise ConfigurationError(f"running_env must be an EnvironmentLock, got {type(running_env).__name__}")
    policy = EnvironmentPolicy.parse(policy)
    differences: list[str] = []
    if live.feature_graph_hash != contract.feature_graph_hash:
        differences.append(f"feature_graph_hash: contract {contract.feature_graph_hash} != live {live.feature_graph_hash}")
    if live.keys is not None and live.keys != contract.keys:
        differences.append(f"keys: contract ({contract.keys}) != live ({live.keys})")
    differences.extend(schema_differences(contract, live.feature_schema))
    tolerated: tuple[str, ...] = ()
    if running_env is not contract.environment and running_env.hash != contract.environment_hash:
        try:
            diff = check_environment(contract.environment, running_env, policy, f"{contract.label}")
            tolerated = tuple(diff.differences)
        except EnvironmentMismatch:
            diff = diff_environments(contract.environment, running_env)
            lines = diff.differences or (f"environment hash {contract.environment_hash} -> {running_env.hash}",)
            differences.extend(f"environment: {line}" for line in lines)
    if differences:
        listing = "\n".join(f"  - {line}" for line in differences)
        raise ContractViolation(
            f"{contract.label} refused at the deploy boundary: {len(differences)} difference(s) between its "
            f"contract and the live stream or environment:\n{listing}\nServe it the feature graph and environment it was "
            "validated on, or retrain, register and promote a model on the live ones."
        )
    return ContractCheck(contract.model_name, contract.model_version, tolerated)
