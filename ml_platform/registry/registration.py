"""Pure rules of registration: argument checks and the MLflow tags a run and a model version get.

No MLflow import: :class:`~ml_platform.registry.store.ModelRegistry` delegates here before it talks
to MLflow, so every malformed argument is refused before anything is written, including a model
whose bytes do not load back through its own format (what the registry could not serve).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ml_platform.environment.provenance import check_image_digest
from ml_platform.errors import ConfigurationError, MLPlatformError
from ml_platform.models.protocol import SignalModel, load_model_bytes
from ml_platform.registry import entities
from ml_platform.registry.contract import DeployContract

__all__ = ["check_code_snapshot", "check_git_diff", "check_registration", "image_tags", "param_values", "run_tags",
           "training_set_anchor", "version_tags"]

_MANIFEST_HASH = re.compile(r"sha256:[0-9a-f]{64}")

_HASH_KEYS = frozenset({"code_hash", "graph_hash"})


def check_registration(
    model_name: str,
    model: SignalModel,
    contract: DeployContract,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    experiment: str,
) -> None:
    """Refuse a registration whose arguments are malformed or disagree with each other.

    Raises:
        ConfigurationError: naming the first problem found and how to fix it.
    """
    if not isinstance(model, SignalModel):
        raise ConfigurationError(
            f"model must implement the SignalModel protocol (format_id, keys, feature_columns, predict, to_bytes, "
            f"sha256), got {type(model).__name__}; fit one with a Trainer such as RidgeTrainer or SklearnTrainer"
        )
    if not isinstance(contract, DeployContract):
        raise ConfigurationError(f"contract must be a DeployContract, got {type(contract).__name__}")
    if contract.model_name != model_name:
        raise ConfigurationError(f"the contract is for model {contract.model_name!r}, not {model_name!r}")
    if contract.model_version is not None:
        raise ConfigurationError(
            f"the contract already names version {contract.model_version}; the registry assigns versions: "
            "pass a contract with model_version=None"
        )
    if contract.model_sha256 != model.sha256:
        raise ConfigurationError(
            f"the contract promises model bytes {contract.model_sha256} but the model is {model.sha256}; "
            "build the contract from this model"
        )
    if contract.model_format != model.format_id:
        raise ConfigurationError(
            f"the contract promises a model of format {contract.model_format!r} but the model is "
            f"{model.format_id!r}; build the contract from this model"
        )
    if contract.keys != model.keys:
        raise ConfigurationError(
            f"the contract's keys ({contract.keys}) differ from the model's ({model.keys}); build the contract from "
            "the frame the model was trained on"
        )
    missing = [c for c in model.feature_columns if c not in contract.feature_schema.names]
    if missing:
        raise ConfigurationError(f"the contract's feature schema lacks the model's feature column(s) {missing}")
    _check_round_trip(model)
    if not isinstance(params, Mapping) or not all(isinstance(k, str) and k for k in params):
        raise ConfigurationError("params must map non-empty string names to values")
    if not isinstance(metrics, Mapping):
        raise ConfigurationError("metrics must map names to real numbers")
    for key, value in metrics.items():
        if not isinstance(key, str) or not key or isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigurationError(f"metric {key!r} must be a real number, got {value!r}")
    if not isinstance(experiment, str) or not experiment.strip():
        raise ConfigurationError(f"experiment must be a non-empty name, got {experiment!r}")


def _check_round_trip(model: SignalModel) -> None:
    """Refuse a model whose bytes do not load back, through its format, to the same bytes."""
    data = model.to_bytes()
    try:
        again = load_model_bytes(model.format_id, data).to_bytes()
    except MLPlatformError as exc:
        raise ConfigurationError(
            f"the model's bytes do not load back through its format {model.format_id!r}: {exc}") from exc
    if again != data:
        raise ConfigurationError(
            f"the model's bytes load back through its format {model.format_id!r} as different bytes; its to_bytes is "
            "not canonical, so its sha256 could not be verified after registration"
        )


def check_code_snapshot(code_snapshot: Mapping[str, str], code_hashes: Mapping[str, Mapping[str, str]] | None) -> None:
    """Refuse a code snapshot that is empty or not text, or hashes naming nodes it does not hold.

    Raises:
        ConfigurationError: naming the offending key.
    """
    if not isinstance(code_snapshot, Mapping) or not code_snapshot:
        raise ConfigurationError("code_snapshot must map each feature node key to its source text (got none)")
    for key, source in code_snapshot.items():
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(f"code_snapshot keys must be feature node keys, got {key!r}")
        if not isinstance(source, str) or not source.strip():
            raise ConfigurationError(f"code_snapshot[{key!r}] must be the node's source text, got {source!r}")
    if code_hashes is None:
        return
    if not isinstance(code_hashes, Mapping):
        raise ConfigurationError("code_hashes must map feature node keys to {'code_hash', 'graph_hash'}")
    unknown = sorted(set(code_hashes) - set(code_snapshot))
    if unknown:
        raise ConfigurationError(f"code_hashes names node(s) {unknown} that are not in code_snapshot")
    for key, hashes in code_hashes.items():
        if not isinstance(hashes, Mapping) or not set(hashes) <= _HASH_KEYS or not all(
                isinstance(v, str) and v for v in hashes.values()):
            raise ConfigurationError(
                f"code_hashes[{key!r}] must hold string 'code_hash' and/or 'graph_hash' entries, got {hashes!r}"
            )


def check_git_diff(contract: DeployContract, git_diff: bytes | None) -> None:
    """A dirty tree's contract needs the diff of its uncommitted changes; a clean one must have none.

    Raises:
        ConfigurationError: a dirty contract without a (non-empty, bytes) diff, or a diff with a clean one.
    """
    if git_diff is not None and not isinstance(git_diff, bytes):
        raise ConfigurationError(f"git_diff must be the patch's bytes, got {type(git_diff).__name__}")
    if contract.git_dirty and not git_diff:
        raise ConfigurationError(
            f"the contract records a dirty checkout at {contract.git_commit}, but no diff of its uncommitted changes "
            "was given: pass git_diff=working_tree_diff(project_root).patch, or train from a clean commit (without "
            "the diff the exact code could never be recovered)")
    if git_diff and not contract.git_dirty:
        raise ConfigurationError("a git_diff was given, but the contract records a clean checkout; capture the git "
                                 "state and the diff together")
    if git_diff and contract.git_commit is None:
        raise ConfigurationError("a git_diff was given, but the contract records no git commit it applies to")


def run_tags(model_name: str, contract: DeployContract) -> dict[str, str]:
    """Tags of the training run: who trained it (``mlflow.user``), seeds, windows, hashes, git state."""
    tags = {
        "mlflow.user": contract.trained_by,
        entities.MODEL_NAME_TAG: model_name,
        entities.SEEDS_TAG: json.dumps(dict(contract.seeds), sort_keys=True),
        entities.ENVIRONMENT_HASH_TAG: contract.environment_hash,
        entities.TRAINING_WINDOW_TAG: str(contract.training_window),
        entities.VALIDATION_WINDOW_TAG: str(contract.validation_window),
        entities.TRAINING_SET_DATA_HASH_TAG: contract.training_set_data_hash,
        entities.FEATURE_GRAPH_HASH_TAG: contract.feature_graph_hash,
        entities.MODEL_SHA256_TAG: contract.model_sha256,
        entities.MODEL_FORMAT_TAG: contract.model_format,
        entities.GIT_DIRTY_TAG: json.dumps(contract.git_dirty),
    }
    tags.update({f"{entities.SEED_TAG_PREFIX}{name}": str(seed) for name, seed in contract.seeds.items()})
    if contract.git_commit is not None:
        tags[entities.GIT_COMMIT_TAG] = contract.git_commit
        tags["mlflow.source.git.commit"] = contract.git_commit
    return tags

def version_tags(contract: DeployContract, contract_sha256: str) -> dict[str, str]:
    """Tags of the model version: the contract's hashes and windows, and the contract artefact's SHA-256."""
    tags = {
        entities.FEATURE_GRAPH_HASH_TAG: contract.feature_graph_hash,
        entities.MODEL_SHA256_TAG: contract.model_sha256,
        entities.MODEL_FORMAT_TAG: contract.model_format,
        entities.CONTRACT_SHA256_TAG: contract_sha256,
        entities.TRAINING_WINDOW_TAG: str(contract.training_window),
        entities.VALIDATION_WINDOW_TAG: str(contract.validation_window),
        entities.TRAINING_SET_DATA_HASH_TAG: contract.training_set_data_hash,
        entities.ENVIRONMENT_HASH_TAG: contract.environment_hash,
        entities.TRAINED_BY_TAG: contract.trained_by,
    }
    if contract.git_commit is not None:
        tags[entities.GIT_COMMIT_TAG] = contract.git_commit
    return tags


def image_tags(image_digest: str | None) -> dict[str, str]:
    """The tag recording the digest of the image that trained the version (none outside an image).

    Raises:
        ConfigurationError: ``image_digest`` is not ``sha256:<64 hex digits>``.
    """
    if image_digest is None:
        return {}
    return {entities.IMAGE_DIGEST_TAG: check_image_digest(image_digest)}


def training_set_anchor(manifest_hash: str | None) -> dict[str, str]:
    """The version tag recording the training set's manifest hash (none when not given).

    Raises:
        ConfigurationError: ``manifest_hash`` is not ``sha256:<64 hex digits>``.
    """
    if manifest_hash is None:
        return {}
    if not isinstance(manifest_hash, str) or not _MANIFEST_HASH.fullmatch(manifest_hash):
        raise ConfigurationError(f"training_set_manifest_hash must be a manifest hash (sha256:<64 hex digits>), "
                                 f"got {manifest_hash!r}; pass the stored training set's Manifest.manifest_hash")
    return {entities.TRAINING_SET_MANIFEST_HASH_TAG: manifest_hash}


def param_values(params: Mapping[str, Any]) -> dict[str, str]:
    """Run params as MLflow strings: strings as they are, anything else as sorted-key JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str) for k, v in sorted(params.items())}
