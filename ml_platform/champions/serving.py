"""Load the champion model through its deploy contract: the check at the serving boundary.

:func:`load_champion` is the only way live code should obtain a model to score with. It resolves the
champion of record (the champion ledger's head, one read; the MLflow ``champion`` alias only mirrors
it and is read only for a registry without a ledger), loads the verified contract and model bytes, and runs
:func:`~ml_platform.registry.contract.check_contract` against the live feature stream *before*
returning; on any mismatch it raises and hands out nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml_platform.champions.catalog import champion_of_record
from ml_platform.environment import EnvironmentLock, EnvironmentPolicy, capture_environment
from ml_platform.errors import IntegrityError, ModelNotFound
from ml_platform.models.protocol import SignalModel
from ml_platform.registry.contract import ContractCheck, DeployContract, LiveFeatureStream, check_contract
from ml_platform.registry.entities import CHAMPION_ALIAS
from ml_platform.registry.store import ModelRegistry

__all__ = ["LoadedChampion", "load_champion"]


@dataclass(frozen=True)
class LoadedChampion:
    """A champion model that passed its contract check.

    Attributes:
        name: Registered model name.
        version: The champion version.
        contract: Its verified deploy contract.
        model: The model (of the contract's ``model_format``), ready to ``predict`` on the live stream it
            was checked against.
        check: The passed check (with any environment differences a ``warn`` policy tolerated).
    """

    name: str
    version: str
    contract: DeployContract
    model: SignalModel
    check: ContractCheck


def load_champion(
    registry: ModelRegistry,
    model_name: str,
    live: LiveFeatureStream,
    *,
    policy: EnvironmentPolicy | str,
    running_env: EnvironmentLock | None = None,
) -> LoadedChampion:
    """Resolve, load and contract-check the champion version of ``model_name``.

    Args:
        registry: The model registry.
        model_name: Registered model name.
        live: The live feature stream the model is about to score.
        policy: Environment policy for the check (``strict``/``warn``/``off``).
        running_env: The running environment; default :func:`~ml_platform.environment.capture_environment`.

    Returns:
        The champion with its contract and model; only ever returned after the check passed.

    Raises:
        ModelNotFound: unknown model (the known names are listed) or no champion alias yet.
        ContractViolation: the contract does not match the live stream or environment.
        IntegrityError / RegistryError: the stored contract or model is corrupt or unusable.
    """
    version = champion_of_record(registry, model_name)  # the ledger head (the alias only without a ledger)
    if version is None:
        raise ModelNotFound(
            f"model {model_name!r} has no champion of record ({CHAMPION_ALIAS!r}): promote a version first "
            f"(the promotion job, `ml-platform promote {model_name} VERSION`); "
            f"see `ml-platform history {model_name}`"
        )
    contract = registry.load_contract(model_name, version)
    check = check_contract(contract, live, running_env=running_env or capture_environment(), policy=policy)
    model = registry.load_model(model_name, version)
    # load_model verified the bytes against the version tags; the contract is what was checked above.
    if (model.sha256, model.format_id, model.keys) != (contract.model_sha256, contract.model_format, contract.keys):
        raise IntegrityError(
            f"{contract.label}: the model is {model.sha256} of format {model.format_id!r} keyed by ({model.keys}) but "
            f"its contract promises {contract.model_sha256} of format {contract.model_format!r} keyed by "
            f"({contract.keys}); do not serve it, register the model again"
        )
    return LoadedChampion(model_name, version, contract, model, check)
