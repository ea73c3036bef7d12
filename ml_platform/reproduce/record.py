"""What reproduction needs, read from the registry record of one version (and the store that holds its data).

No Dagster. The contract gives the commit, windows, hashes, seeds and environment lock; the version's
MLflow run gives the training run's parameters (seed, validation fraction, embargo); the store gives
the training set's key, found by the data hash the contract records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ml_platform.errors import IntegrityError, ReproductionFailed
from ml_platform.io.store import PinnedStore
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.entities import check_model_name, check_version

__all__ = ["TRAINING_PARAMS", "ReproductionRecord", "find_training_key"]

#: The training run parameters a reproduction replays (``TrainingRunConfig`` fields).
TRAINING_PARAMS = ("seed", "validation_fraction", "embargo_days")


@dataclass(frozen=True)
class ReproductionRecord:
    """The registry's record of one version, as reproduction reads it.

    Attributes:
        model / version: the registered version.
        contract: its deploy contract.
        training_config: the recorded ``TrainingRunConfig`` values (seed, validation_fraction, embargo_days).
        trained_by: who trained it (replayed so the contract matches).
        git_diff: the stored patch of the uncommitted changes it was trained with (None: a clean commit),
            verified against the SHA-256 recorded at registration.
    """

    model: str
    version: str
    contract: DeployContract
    training_config: dict[str, Any]
    git_diff: bytes | None = None

    @property
    def commit(self) -> str:
        assert self.contract.git_commit is not None
        return self.contract.git_commit

    @property
    def uv_lock_hash(self) -> str | None:
        return self.contract.environment_lock.get("uv_lock_hash")

    @classmethod
    def from_registry(cls, registry, model: str, version: str | int) -> ReproductionRecord:  # type: ignore[no-untyped-def]
        """Read and check the record.

        Raises:
            ConfigurationError: a malformed model name or version.
            ModelNotFound: no such model or version.
            ReproductionFailed: the record lacks what reproduction needs (named: no git commit, a dirty
                tree without its stored diff or with an altered one, no uv.lock hash, no training parameters),
                with what it means.
        """
        check_model_name(model)
        number = check_version(version)
        contract = registry.load_contract(model, number)
        where = f"model {model!r} version {number}"
        if contract.git_commit is None:
            raise ReproductionFailed(f"{where} records no git commit: it was trained outside a git checkout, so its "
                                     "code cannot be checked out again")
        git_diff = None
        if contract.git_dirty:
            try:
                git_diff = registry.load_git_diff(model, number)
            except IntegrityError as exc:
                raise ReproductionFailed(f"{where} was trained from a checkout with uncommitted changes at "
                                         f"{contract.git_commit[:12]}, and its code cannot be recovered: {exc}") from exc
            if not git_diff:
                raise ReproductionFailed(f"{where} was trained from a checkout with uncommitted changes at "
                                         f"{contract.git_commit[:12]} but records no diff of them (registered by an "
                                         "older ml_platform): its exact code is not recoverable")
        if not contract.environment_lock.get("uv_lock_hash"):
            raise ReproductionFailed(f"{where} records no uv.lock hash: its environment cannot be rebuilt from a lock")
        run_id = registry.model_version(model, number).run_id
        try:
            from mlflow import MlflowClient

            params = MlflowClient(tracking_uri=registry.tracking_uri,
                                  registry_uri=registry.registry_uri).get_run(run_id).data.params
        except Exception as exc:
            raise ReproductionFailed(f"the training run {run_id} of {where} cannot be read: {exc}") from exc
        missing = [p for p in TRAINING_PARAMS if p not in params]
        if missing:
            raise ReproductionFailed(f"{where} records no training parameter(s) {missing} (an older registration); "
                                     "its training run cannot be replayed")
        try:
            config = {"seed": int(params["seed"]), "validation_fraction": float(params["validation_fraction"]),
                      "embargo_days": int(params["embargo_days"])}
        except ValueError as exc:
            raise ReproductionFailed(f"{where}: a recorded training parameter is malformed: {exc}") from exc
        return cls(model, number, contract, {**config, "trained_by": contract.trained_by, "model_name": model},
                   git_diff)


def find_training_key(store: PinnedStore, data_hash: str) -> str:
    """The unpartitioned store key that holds a version with ``data_hash`` (the training set).

    Raises:
        ReproductionFailed: no key, or several, hold it.
    """
    holders = store.keys_holding(data_hash)
    if not holders:
        raise ReproductionFailed(f"no stored training set has data hash {data_hash} under {store.base}: it was never "
                                 "stored here, or garbage collection removed it")
    if len(holders) > 1:
        raise ReproductionFailed(f"several stored nodes hold data hash {data_hash} ({holders}); cannot tell which "
                                 "was the training set")
    return holders[0]
