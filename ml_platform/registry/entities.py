"""Value objects the registry returns, and the MLflow tag names it writes. Pure: no MLflow import.

How it works, and why: docs/architecture.md, "ml_platform/registry/entities.py".
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ml_platform.errors import ConfigurationError
from ml_platform.registry.contract import DeployContract

__all__ = [
    "CHAMPION_ALIAS",
    "ModelSummary",
    "RegisteredVersion",
    "VersionDetails",
    "VersionStatus",
    "check_model_name",
    "check_version",
]

CHAMPION_ALIAS = "champion"

STATUS_TAG = "ml_platform.status"
FEATURE_GRAPH_HASH_TAG = "ml_platform.feature_graph_hash"
MODEL_SHA256_TAG = "ml_platform.model_sha256"
MODEL_FORMAT_TAG = "ml_platform.model_format"
CONTRACT_SHA256_TAG = "ml_platform.contract_sha256"
TRAINING_WINDOW_TAG = "ml_platform.training_window"
VALIDATION_WINDOW_TAG = "ml_platform.validation_window"
TRAINING_SET_DATA_HASH_TAG = "ml_platform.training_set_data_hash"
#: The manifest hash of the stored training set: the anchor ``verify`` compares the store's manifest with.
TRAINING_SET_MANIFEST_HASH_TAG = "ml_platform.training_set_manifest_hash"
ENVIRONMENT_HASH_TAG = "ml_platform.environment_hash"
TRAINED_BY_TAG = "ml_platform.trained_by"
GIT_COMMIT_TAG = "ml_platform.git_commit"
GIT_DIRTY_TAG = "ml_platform.git_dirty"
#: the digest of the container image that trained the version (``sha256:<64 hex>``), on the run and the version
IMAGE_DIGEST_TAG = "ml_platform.image_digest"
#: On a version trained from a dirty tree: ``sha256:<hex>`` of its stored diff (:data:`GIT_DIFF_ARTIFACT`).
GIT_DIFF_SHA256_TAG = "ml_platform.git_diff_sha256"
SEEDS_TAG = "ml_platform.seeds"
SEED_TAG_PREFIX = "ml_platform.seed."
MODEL_NAME_TAG = "ml_platform.model_name"
#: On a registration's run: the registering process (host, pid, start), so repair can tell a live one.
REGISTRATION_PROCESS_TAG = "ml_platform.registration_process"
#: On a registered model the platform created: ``"ml_platform"``.
CREATED_BY_TAG = "ml_platform.created_by"
#: On what ``registry repair`` changed: what it did and why.
REPAIR_TAG = "ml_platform.repair"
#: On a registered model: ``SEQ:sha256:HEX`` of its champion ledger's head, written after every move (the anchor).
LEDGER_HEAD_TAG = "ml_platform.ledger.head"

#: Run-relative artefact paths.
CONTRACT_ARTIFACT = "contract/contract.json"
ENVIRONMENT_ARTIFACT = "environment/environment_lock.json"
CODE_DIR = "code"
CODE_INDEX_ARTIFACT = "code/index.json"
#: The uncommitted changes of a dirty tree, as a ``git apply``-able binary patch against the recorded commit.
GIT_DIFF_ARTIFACT = "code/git.diff"
MODEL_DIR = "model"
MODEL_BYTES_ARTIFACT = "model/artifacts/signal_model.bin"  # where MLflow puts pyfunc._MODEL_FILE, any format

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_VERSION = re.compile(r"[0-9]+")  # not str.isdigit: it takes "²" and "٣", which int() or SQLite then refuse
_MAX_VERSION = 2**63 - 1  # SQLite's (and MLflow's) integer column


class VersionStatus:
    """Values of :data:`STATUS_TAG` (plus ``incomplete`` for a version without a final status)."""

    REGISTERING = "registering"
    READY = "ready"
    FAILED = "failed"
    INCOMPLETE = "incomplete"


def check_model_name(name: object) -> str:
    """Return ``name`` if it is a valid registered model name.

    Raises:
        ConfigurationError: the name is empty, too long or uses characters other than letters,
            digits, ``_``, ``.`` and ``-`` (MLflow forbids ``/`` and ``:``; quotes would break filters).
    """
    if not isinstance(name, str) or not _MODEL_NAME.match(name):
        raise ConfigurationError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def check_version(version: object) -> str:
    """Return a model version number as the string MLflow uses.

    Raises:
        ConfigurationError: the version is not a positive integer (or its decimal string).
    """
    text = str(version) if isinstance(version, int) and not isinstance(version, bool) else version
    if (not isinstance(text, str) or len(text) > 19 or not _VERSION.fullmatch(text)
            or not 1 <= int(text) <= _MAX_VERSION):
        raise ConfigurationError(f"invalid model version {version!r}: versions are positive integers like 3 "
                                 f"(ASCII digits, at most {_MAX_VERSION})")
    return str(int(text))


@dataclass(frozen=True)
class RegisteredVersion:
    """A model version as registered.

    Attributes:
        name: Registered model name.
        version: Version number assigned by the registry.
        run_id: MLflow run holding the artefacts.
        model_uri: ``models:/<name>/<version>``.
        contract: The deploy contract with ``model_version`` filled in.
    """

    name: str
    version: str
    run_id: str
    model_uri: str
    contract: DeployContract


@dataclass(frozen=True)
class ModelSummary:
    """One registered model.

    Attributes:
        name: Registered model name.
        versions: Usable (``ready``) versions, oldest first.
        unusable_versions: Versions that failed or never finished registering.
        champion: The version the ``champion`` alias points to, if any.
        description: The registered model's description (may be empty).
    """

    name: str
    versions: tuple[str, ...]
    unusable_versions: tuple[str, ...]
    champion: str | None
    description: str = ""


@dataclass(frozen=True)
class VersionDetails:
    """One model version as :meth:`ModelRegistry.show` reports it.

    Attributes:
        name: Registered model name.
        version: Version number.
        run_id: MLflow run holding the artefacts.
        status: ``ready``, ``failed`` or ``incomplete`` (see the module docstring).
        is_champion: Whether the ``champion`` alias points here.
        created_at: When the registry created the version (UTC).
        contract: The verified deploy contract, ``None`` if it could not be loaded.
        problem: Why the version is unusable or its contract could not be loaded, else ``None``.
    """

    name: str
    version: str
    run_id: str
    status: str
    is_champion: bool
    created_at: dt.datetime
    contract: DeployContract | None
    problem: str | None = None
