"""The MLflow-backed model registry: a validating thin client over ``mlflow.MlflowClient``.

How it works, and why: docs/architecture.md, "ml_platform/registry/store.py".
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.entities.model_registry import ModelVersion, RegisteredModel
from mlflow.exceptions import MlflowException

from ml_platform.compat import bounded_sqlite_waits, install_sqlite_wait_bounds
from ml_platform.crashpoints import crash_point
from ml_platform.database import preflight
from ml_platform.errors import ConfigurationError, DataError, IntegrityError, ModelNotFound, RegistryError
from ml_platform.models.protocol import SignalModel, load_model_bytes
from ml_platform.registry import entities
from ml_platform.registry.artifacts import stage_run_artifacts
from ml_platform.registry.boundary import (
    abandon_registration,
    as_uri,
    from_millis,
    mlflow_errors,
    quiet_mlflow,
    sha256_of,
    sqlite_database_path,
    store_label,
)
from ml_platform.registry.contract import DeployContract
from ml_platform.registry.entities import ModelSummary, RegisteredVersion, VersionDetails, VersionStatus
from ml_platform.registry.process import process_identity
from ml_platform.registry.pyfunc import model_signature
from ml_platform.registry.registration import (
    check_code_snapshot,
    check_git_diff,
    check_registration,
    image_tags,
    param_values,
    run_tags,
    training_set_anchor,
    version_tags,
)

__all__ = ["DEFAULT_BUSY_TIMEOUT_SECONDS", "ModelRegistry", "sqlite_database_path"]

logger = logging.getLogger(__name__)

_PAGE = 1000
#: How long a busy (locked) SQLite database is waited on by default, per MLflow call.
DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0


class ModelRegistry:
    """Registered models, their deploy contracts and the champion alias, stored in MLflow.

    Args:
        tracking_uri: MLflow tracking URI, e.g. ``sqlite:///.ml_platform/mlflow/mlflow.db`` or
            ``postgresql+psycopg://user@host/db``.
        registry_uri: Model registry URI; defaults to ``tracking_uri``.
        artifact_location: Artefact root for experiments this registry creates (a path or URI); each
            experiment gets a sub-folder named after it. Default: ``artifacts/`` next to a SQLite
            database, else the tracking server's default.
        busy_timeout_seconds: How long each MLflow call waits for a SQLite database another
            connection holds locked before failing with :class:`~ml_platform.errors.RegistryUnavailable`
            (MLflow alone waits 20 s); also the connect timeout of a PostgreSQL store. Default 5 s.

    Example:
        >>> registry = ModelRegistry("sqlite:///.ml_platform/mlflow/mlflow.db")  # doctest: +SKIP
        >>> registry.register(model_name="alpha", model=model, contract=contract, params={},
        ...                   metrics=report.to_dict(), code_snapshot=sources)  # doctest: +SKIP
    """

    def __init__(self, tracking_uri: str, registry_uri: str | None = None, artifact_location: str | None = None,
                 *, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS, ledger_url: str | None = None) -> None:
        for name, value in (("tracking_uri", tracking_uri), ("registry_uri", registry_uri),
                            ("artifact_location", artifact_location), ("ledger_url", ledger_url)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
        if (isinstance(busy_timeout_seconds, bool) or not isinstance(busy_timeout_seconds, (int, float))
                or not 0 <= busy_timeout_seconds <= 3600):
            raise ConfigurationError(
                f"busy_timeout_seconds must be a number of seconds from 0 to 3600, got {busy_timeout_seconds!r}")
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        self.busy_timeout_seconds = float(busy_timeout_seconds)
        self.sqlite_file = sqlite_database_path(tracking_uri)
        if artifact_location is not None:
            self.artifact_location: str | None = as_uri(artifact_location)
        elif self.sqlite_file is not None:
            self.artifact_location = (self.sqlite_file.parent / "artifacts").resolve().as_uri()
        else:
            self.artifact_location = None
        self._client_instance: MlflowClient | None = None
        self.ledger_url = ledger_url

    def __repr__(self) -> str:
        return f"ModelRegistry(tracking_uri={store_label(self.tracking_uri)!r}, registry_uri={store_label(self.registry_uri)!r})"

    @property
    def store(self) -> str:
        """The tracking store's URI as messages name it (a password hidden)."""
        return store_label(self.tracking_uri)

    @contextmanager
    def mlflow_call(self, action: str, *, missing: str | None = None) -> Iterator[None]:
        """Around MLflow calls: bounded busy waits, and every failure re-raised naming the store and cause."""
        with bounded_sqlite_waits(self.busy_timeout_seconds), mlflow_errors(
                action, missing=missing, store=self.store, busy_timeout=self.busy_timeout_seconds):
            yield

    @property
    def client(self) -> MlflowClient:
        if self._client_instance is None:
            if self.sqlite_file is not None:
                self.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            quiet_mlflow()
            install_sqlite_wait_bounds()
            with self.mlflow_call("connect"):
                for uri in dict.fromkeys((self.tracking_uri, self.registry_uri)):
                    preflight(uri, self.busy_timeout_seconds)
                self._client_instance = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)
        return self._client_instance

    # -- registration ----------------------------------------------------------------------------

    def register(
        self,
        *,
        model_name: str,
        model: SignalModel,
        contract: DeployContract,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        code_snapshot: Mapping[str, str],
        code_hashes: Mapping[str, Mapping[str, str]] | None = None,
        experiment: str = "ml_platform",
        git_diff: bytes | None = None,
        training_set_manifest_hash: str | None = None,
        image_digest: str | None = None,
    ) -> RegisteredVersion:
        """Log a training run and register its model as a new version with its deploy contract.

        Every artefact is uploaded first; the version is then created with all its tags in one MLflow
        call, so it is never visible half-made (see the module docstring). A failure before that
        marks the run FAILED and removes a registered model this call created and left empty.

        Args:
            model_name: Registered model name (letters, digits, ``_.-``).
            model: The trained model, of any registered format; its ``sha256`` and ``format_id`` must equal
                ``contract.model_sha256`` and ``contract.model_format``. Its bytes are stored under one
                artefact name whatever the family, and its format id is tagged on the run and the version.
            contract: The deploy contract, ``model_version`` still ``None``.
            params: Run params (values logged as strings, non-strings as JSON).
            metrics: Run metrics, real numbers (e.g. ``BacktestReport.to_dict()`` minus the window).
            code_snapshot: Feature node key -> source text of that node's function, logged under ``code/``.
            code_hashes: Optional feature node key -> ``{"code_hash": ..., "graph_hash": ...}``, added to
                ``code/index.json``.
            experiment: MLflow experiment of the run (created if missing).
            git_diff: The uncommitted changes of a dirty checkout (``working_tree_diff(...).patch``), stored as
                ``code/git.diff`` and hashed into a version tag; required when ``contract.git_dirty``.
            training_set_manifest_hash: The manifest hash of the stored training set (``sha256:<hex>``),
                tagged on the version: an anchor the store cannot rewrite alone (``ml-platform verify``).
            image_digest: The digest of the container image that trained it (``sha256:<hex>``), tagged on the run
                and the version beside the git commit (None: not in an image).

        Returns:
            The registered version, its run and its contract with ``model_version`` filled in.

        Raises:
            ConfigurationError: an argument is malformed or inconsistent with the contract.
            RegistryError: MLflow failed before the version was created; no version exists.
        """
        entities.check_model_name(model_name)
        check_registration(model_name, model, contract, params, metrics, experiment)
        check_code_snapshot(code_snapshot, code_hashes)
        check_git_diff(contract, git_diff)
        anchor_tags = training_set_anchor(training_set_manifest_hash)
        image = image_tags(image_digest)  # beside the git commit, on the run and the version
        model_signature(contract.feature_schema, contract.keys)  # refuse what MLflow cannot describe, before writing
        client = self.client
        experiment_id = self.experiment_id(experiment)
        diff_tags = {entities.GIT_DIFF_SHA256_TAG: sha256_of(git_diff)} if git_diff else {}
        tags = {**run_tags(model_name, contract), **diff_tags, **image, entities.REGISTRATION_PROCESS_TAG: process_identity()}
        with self.mlflow_call(f"start a training run for model {model_name!r}"):
            run = client.create_run(experiment_id, tags=tags, run_name=f"{model_name}-{contract.model_sha256[7:19]}")
        run_id = run.info.run_id
        crash_point("register.run_created")
        created_model = False
        try:
            self._log_params_and_metrics(run_id, params, metrics)
            crash_point("register.params_logged")
            with tempfile.TemporaryDirectory(prefix="ml_platform_run_") as staging:
                contract_bytes = stage_run_artifacts(Path(staging), model, contract, code_snapshot, code_hashes,
                                                     git_diff)
                with self.mlflow_call(f"upload the artefacts of run {run_id}"):
                    client.log_artifacts(run_id, staging)
            crash_point("register.artifacts_uploaded")
            created_model = self._ensure_registered_model(model_name)
            crash_point("register.model_ready")
            tags = {**version_tags(contract, sha256_of(contract_bytes)), **diff_tags, **image, **anchor_tags,
                    entities.STATUS_TAG: VersionStatus.READY}
            created = self._create_version(model_name, f"{run.info.artifact_uri}/{entities.MODEL_DIR}", run_id, tags)
        except BaseException:
            with bounded_sqlite_waits(self.busy_timeout_seconds):
                abandon_registration(client, model_name, run_id, created_model=created_model)
            raise
        version = str(created.version)
        crash_point("register.version_created")
        try:  # the version is complete: a run left RUNNING is only bookkeeping, which `registry repair` ends
            with self.mlflow_call(f"mark run {run_id} FINISHED"):
                client.set_terminated(run_id, "FINISHED")
        except RegistryError as exc:
            logger.warning("model %r version %s is registered, but its run %s stays RUNNING: %s; "
                           "`ml-platform registry repair` ends it", model_name, version, run_id, exc)
        crash_point("register.run_finished")
        logger.info("registered model %r version %s (run %s)", model_name, version, run_id)
        return RegisteredVersion(model_name, version, run_id, f"models:/{model_name}/{version}",
                                 contract.with_version(version))

    def _create_version(self, name: str, source: str, run_id: str, tags: Mapping[str, str]) -> ModelVersion:
        """The version with all its tags, in one MLflow call; once more if the model vanished meanwhile.

        A concurrent ``registry repair`` may delete a registered model that was empty when it looked;
        the model is then created again and the version created once more.
        """
        for attempt in (1, 2):
            with self.mlflow_call(f"create a version of model {name!r}"):
                try:
                    return self.client.create_model_version(name, source=source, run_id=run_id, tags=dict(tags))
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_DOES_NOT_EXIST" or attempt == 2:
                        raise
            self._ensure_registered_model(name)
        raise AssertionError("unreachable")

    def experiment_id(self, name: str) -> str:
        client = self.client
        with self.mlflow_call(f"find or create experiment {name!r}"):
            found = client.get_experiment_by_name(name)
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    raise RegistryError(f"experiment {name!r} is deleted; restore it in MLflow or use another name")
                return str(found.experiment_id)
            location = None
            if self.artifact_location is not None:
                location = f"{self.artifact_location}/{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"
            try:
                return str(client.create_experiment(name, artifact_location=location))
            except MlflowException as exc:  # created concurrently by another process
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                return str(client.get_experiment_by_name(name).experiment_id)

    def _ensure_registered_model(self, name: str) -> bool:
        with self.mlflow_call(f"create registered model {name!r}"):
            try:
                self.client.create_registered_model(name, tags={entities.CREATED_BY_TAG: "ml_platform"})
                return True
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                return False

    def _log_params_and_metrics(self, run_id: str, params: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        param_list = [Param(k, v) for k, v in param_values(params).items()]
        metric_list = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())]
        with self.mlflow_call(f"log params and metrics of run {run_id}"):
            for start in range(0, max(len(param_list), len(metric_list)), 100):
                self.client.log_batch(run_id, metrics=metric_list[start:start + 100],
                                       params=param_list[start:start + 100])

    # -- reading ---------------------------------------------------------------------------------

    def registered_models(self) -> list[RegisteredModel]:
        found: list[RegisteredModel] = []
        token = None
        with self.mlflow_call("list registered models"):
            while True:
                page = self.client.search_registered_models(max_results=_PAGE, page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    return sorted(found, key=lambda m: m.name)

    def _known_names(self) -> list[str]:
        return [m.name for m in self.registered_models()]

    def _unknown(self, name: str) -> str:
        known = self._known_names()
        return (f"no registered model {name!r}; known models: {known or 'none'}. "
                "Register one with ModelRegistry.register (or the training job) first")

    def _registered_model(self, name: str) -> RegisteredModel:
        entities.check_model_name(name)
        with self.mlflow_call(f"read registered model {name!r}"):
            try:
                return self.client.get_registered_model(name)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                    raise
                missing = exc
        raise ModelNotFound(self._unknown(name)) from missing

    def _version(self, name: str, version: str | int) -> ModelVersion:
        number = entities.check_version(version)
        self._registered_model(name)
        with self.mlflow_call(f"read model {name!r} version {number}",
                     missing=f"model {name!r} has no version {number}; see `ml-platform models show {name}`"):
            return self.client.get_model_version(name, number)

    def _ready_version(self, name: str, version: str | int) -> ModelVersion:
        found = self._version(name, version)
        status = found.tags.get(entities.STATUS_TAG)
        if status != VersionStatus.READY:
            state = "failed" if status == VersionStatus.FAILED else "never finished"
            raise RegistryError(
                f"model {name!r} version {found.version} is not usable: its registration {state} "
                f"({entities.STATUS_TAG}={status!r}); `ml-platform registry repair` finishes or removes it, or register "
                "the model again"
            )
        return found

    def download_artifact(self, run_id: str, path: str, what: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="ml_platform_dl_") as target:
            with self.mlflow_call(f"download {what}"):
                try:
                    local = self.client.download_artifacts(run_id, path, target)
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                        raise
                    raise IntegrityError(
                        f"{what} is missing from the artefacts of run {run_id} although it was recorded at "
                        "registration; do not serve this version, register it again"
                    ) from exc
            try:
                return Path(local).read_bytes()
            except OSError as exc:
                raise RegistryError(f"{what} could not be read from run {run_id}: {exc}") from exc

    def load_contract(self, name: str, version: str | int) -> DeployContract:
        """Load a version's deploy contract, verified against the SHA-256 recorded at registration.

        The artefact's bytes must hash to the version's ``ml_platform.contract_sha256`` tag, which was
        created with the version in one transaction; the returned contract carries this version's
        number (the artefact, written before the version existed, records none).

        Raises:
            ModelNotFound: no such model or version.
            RegistryError: the version is not ``ready``, or the contract is corrupt or names another model.
            IntegrityError: the artefact bytes no longer match the recorded SHA-256 (tampered or corrupted).
        """
        found = self._ready_version(name, version)
        number = str(found.version)  # an int or a string, depending on the MLflow store
        what = f"contract of model {name!r} version {number}"
        data = self.download_artifact(found.run_id, entities.CONTRACT_ARTIFACT, what)
        recorded, actual = found.tags.get(entities.CONTRACT_SHA256_TAG), sha256_of(data)
        if actual != recorded:
            raise IntegrityError(
                f"{what} hashes to {actual} but {recorded} was recorded at registration: the artefact was "
                "altered or corrupted after registration; do not serve this version, register it again"
            )
        contract = DeployContract.from_json(data, source=what)
        # Written before the version existed, the artefact names no version (earlier releases wrote it in).
        if contract.model_name != name or contract.model_version not in (None, number):
            raise RegistryError(
                f"{what} describes {contract.label} instead; the registry is inconsistent, register it again"
            )
        if contract.model_sha256 != found.tags.get(entities.MODEL_SHA256_TAG):
            raise IntegrityError(f"{what} promises model {contract.model_sha256} but the version is tagged "
                                 f"{found.tags.get(entities.MODEL_SHA256_TAG)}; register it again")
        return contract if contract.model_version == number else contract.with_version(number)

    def load_git_diff(self, name: str, version: str | int) -> bytes | None:
        """The stored diff of the uncommitted changes a version was trained with, verified; None: a clean tree.

        Raises:
            ModelNotFound: no such model or version.
            RegistryError: the version is not ``ready``.
            IntegrityError: the version was trained dirty but its diff is missing, or its bytes no longer hash
                to the SHA-256 recorded at registration.
        """
        found = self._ready_version(name, version)
        recorded = found.tags.get(entities.GIT_DIFF_SHA256_TAG)
        what = f"the diff of the uncommitted changes of model {name!r} version {found.version}"
        if recorded is None:
            if found.tags.get(entities.GIT_DIRTY_TAG) == "true":
                raise IntegrityError(f"model {name!r} version {found.version} was trained from a dirty checkout "
                                     "but records no diff of its changes (registered by an older ml_platform): its "
                                     "exact code is not recoverable")
            return None
        data = self.download_artifact(found.run_id, entities.GIT_DIFF_ARTIFACT, what)
        if sha256_of(data) != recorded:
            raise IntegrityError(f"{what} hashes to {sha256_of(data)} but {recorded} was recorded at registration: "
                                 "it was altered after registration")
        return data

    def load_model(self, name: str, version: str | int) -> SignalModel:
        """Load a version's model from its bytes, verified against the recorded SHA-256, by its recorded format.

        Raises:
            ModelNotFound: no such model or version.
            RegistryError: the version is not ``ready``, records no model format, or records a format
                this process cannot load (the known formats are listed).
            IntegrityError: the bytes do not match the recorded SHA-256 or do not decode.
            EnvironmentMismatch: the format needs another library version than installed (e.g. scikit-learn).
        """
        found = self._ready_version(name, version)
        what = f"model bytes of model {name!r} version {found.version}"
        model_format = found.tags.get(entities.MODEL_FORMAT_TAG)
        if not model_format:
            raise RegistryError(
                f"model {name!r} version {found.version} records no model format (tag {entities.MODEL_FORMAT_TAG}); it was "
                "registered by an older ml_platform: retrain and register it again"
            )
        data = self.download_artifact(found.run_id, entities.MODEL_BYTES_ARTIFACT, what)
        recorded, actual = found.tags.get(entities.MODEL_SHA256_TAG), sha256_of(data)
        if actual != recorded:
            raise IntegrityError(f"{what} hash to {actual} but {recorded} was recorded at registration: the "
                                 "artefact was altered or corrupted; do not serve this version, register it again")
        try:
            model = load_model_bytes(model_format, data)
        except ConfigurationError as exc:
            raise RegistryError(f"cannot load model {name!r} version {found.version}: {exc}") from exc
        except DataError as exc:
            raise IntegrityError(f"{what} match their hash but do not decode as {model_format!r}: {exc}") from exc
        if model.sha256 != recorded:
            raise IntegrityError(f"{what} decode to a model whose sha256 is {model.sha256}, not the recorded "
                                 f"{recorded}: the {model_format!r} loader is not canonical; register it again")
        return model

    def pyfunc_uri(self, name: str, version: str | int) -> str:
        """Where the version's MLflow pyfunc model lives, for ``mlflow.pyfunc.load_model``."""
        found = self._ready_version(name, version)
        with self.mlflow_call(f"resolve the download URI of model {name!r} version {found.version}"):
            return str(self.client.get_model_version_download_uri(name, str(found.version)))

    # -- the champion alias (the ledger's mirror; the champion of record is in ml_platform.champions) --

    def champion_alias(self, name: str) -> str | None:
        """The version the MLflow ``champion`` alias points to (the mirror of the ledger head), or ``None``.

        Raises:
            ModelNotFound: no registered model of that name (the message lists the known ones).
        """
        aliases = dict(getattr(self._registered_model(name), "aliases", {}) or {})
        value = aliases.get(entities.CHAMPION_ALIAS)
        return None if value is None else str(value)

    def write_champion_alias(self, name: str, version: str | int) -> None:
        """Point the MLflow ``champion`` alias at ``version`` (no checks: the ledger head is what it mirrors)."""
        number = entities.check_version(version)
        with self.mlflow_call(f"set the {entities.CHAMPION_ALIAS!r} alias of model {name!r}"):
            self.client.set_registered_model_alias(name, entities.CHAMPION_ALIAS, number)

    def model_tags(self, name: str) -> dict[str, str]:
        """The registered model's tags (one MLflow read); the champion ledger's anchor is one of them.

        Raises:
            ModelNotFound: no registered model of that name (the message lists the known ones).
        """
        return {str(k): str(v) for k, v in dict(self._registered_model(name).tags or {}).items()}

    def write_model_tag(self, name: str, key: str, value: str) -> None:
        """Set one tag of the registered model ``name`` (no checks: the caller owns the tag's meaning)."""
        entities.check_model_name(name)
        with self.mlflow_call(f"set the tag {key!r} of model {name!r}"):
            self.client.set_registered_model_tag(name, key, value)

    def model_version(self, name: str, version: str | int) -> ModelVersion:
        """MLflow's record of one version (tags included).

        Raises:
            ModelNotFound: no such model or version.
        """
        return self._version(name, version)

    def models_with_champion_alias(self) -> list[str]:
        """The registered models whose MLflow ``champion`` alias is set."""
        return [m.name for m in self.registered_models() if entities.CHAMPION_ALIAS in dict(getattr(m, "aliases", {}) or {})]

    # -- listing ---------------------------------------------------------------------------------

    def versions(self, name: str) -> list[ModelVersion]:
        found: list[ModelVersion] = []
        token = None
        with self.mlflow_call(f"list the versions of model {name!r}"):
            while True:
                page = self.client.search_model_versions(f"name='{name}'", max_results=_PAGE, page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    return sorted(found, key=lambda v: int(v.version))

    def list_models(self) -> list[ModelSummary]:
        """Every registered model with its usable versions and champion, by name."""
        summaries = []
        for model in self.registered_models():
            versions = self.versions(model.name)
            ready = tuple(str(v.version) for v in versions if v.tags.get(entities.STATUS_TAG) == VersionStatus.READY)
            unusable = tuple(str(v.version) for v in versions if v.tags.get(entities.STATUS_TAG) != VersionStatus.READY)
            champion = dict(getattr(model, "aliases", {}) or {}).get(entities.CHAMPION_ALIAS)
            summaries.append(ModelSummary(model.name, ready, unusable, None if champion is None else str(champion),
                                          model.description or ""))
        return summaries

    def show(self, name: str, version: str | int | None = None) -> tuple[VersionDetails, ...]:
        """Details of one version, or of every version of a model, each with its verified contract.

        A version whose contract cannot be loaded is reported with ``contract=None`` and the reason
        in ``problem`` rather than raised, so one bad version does not hide the others.

        Raises:
            ModelNotFound: no such model (or version, when one is named).
        """
        versions = [self._version(name, version)] if version is not None else self.versions(name)
        champion = self.champion_alias(name)
        details = []
        for found in versions:
            status = found.tags.get(entities.STATUS_TAG)
            contract, problem = None, None
            if status == VersionStatus.READY:
                try:
                    contract = self.load_contract(name, found.version)
                except (RegistryError, IntegrityError) as exc:
                    problem = str(exc)
            else:
                problem = f"registration {'failed' if status == VersionStatus.FAILED else 'never finished'}"
            details.append(VersionDetails(
                name=name, version=str(found.version), run_id=found.run_id,
                status=status if status in (VersionStatus.READY, VersionStatus.FAILED) else VersionStatus.INCOMPLETE,
                is_champion=str(found.version) == champion,
                created_at=from_millis(found.creation_timestamp),
                contract=contract, problem=problem,
            ))
        return tuple(details)
