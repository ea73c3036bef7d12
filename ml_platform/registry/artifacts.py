"""Stage the artefacts of a training run in a local folder before they are uploaded to MLflow.

How it works, and why: docs/architecture.md, "ml_platform/registry/artifacts.py".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from ml_platform.errors import ConfigurationError
from ml_platform.models.protocol import SignalModel
from ml_platform.registry import entities
from ml_platform.registry.boundary import sha256_of
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.pyfunc import save_pyfunc
from ml_platform.registry.registration import check_code_snapshot

__all__ = ["code_file_names", "stage_run_artifacts"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _canonical(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def code_file_names(keys: list[str]) -> dict[str, str]:
    """A distinct, filesystem-safe ``.py`` file name for each feature node key (``a/b`` -> ``a__b.py``)."""
    names: dict[str, str] = {}
    used: set[str] = set()
    for key in sorted(keys):
        stem = _UNSAFE.sub("_", key.replace("/", "__")).strip("._") or "node"
        candidate, counter = f"{stem}.py", 1
        while candidate.lower() in used:
            counter += 1
            candidate = f"{stem}_{counter}.py"
        used.add(candidate.lower())
        names[key] = candidate
    return names


def stage_run_artifacts(
    staging: Path,
    model: SignalModel,
    contract: DeployContract,
    code_snapshot: Mapping[str, str],
    code_hashes: Mapping[str, Mapping[str, str]] | None = None,
    git_diff: bytes | None = None,
) -> bytes:
    """Write every artefact of the run under the empty folder ``staging``; return the contract's bytes.

    Raises:
        ConfigurationError: the code snapshot or hashes are malformed.
        RegistryError: the pyfunc model cannot be saved.
    """
    check_code_snapshot(code_snapshot, code_hashes)
    if contract.model_version is not None:
        raise ConfigurationError(f"the contract artefact is written before the version exists; got {contract.label}")
    contract_bytes = contract.to_json().encode("ascii")
    contract_path = staging / entities.CONTRACT_ARTIFACT
    contract_path.parent.mkdir(parents=True)
    contract_path.write_bytes(contract_bytes)

    environment = staging / entities.ENVIRONMENT_ARTIFACT
    environment.parent.mkdir(parents=True)
    environment.write_bytes(_canonical(dict(contract.environment_lock)))

    code_dir = staging / entities.CODE_DIR
    code_dir.mkdir()
    index: dict[str, dict[str, str]] = {}
    for key, file_name in code_file_names(list(code_snapshot)).items():
        source = code_snapshot[key].encode("utf-8")
        (code_dir / file_name).write_bytes(source)
        entry = {"file": f"{entities.CODE_DIR}/{file_name}", "source_sha256": sha256_of(source)}
        entry.update(dict((code_hashes or {}).get(key, {})))
        index[key] = entry
    (staging / entities.CODE_INDEX_ARTIFACT).write_bytes(_canonical(index))
    if git_diff is not None:
        (staging / entities.GIT_DIFF_ARTIFACT).write_bytes(git_diff)

    save_pyfunc(staging / entities.MODEL_DIR, model, contract.feature_schema)
    return contract_bytes
