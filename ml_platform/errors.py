"""The one exception family of ml_platform.

Every error the platform raises on purpose is an :class:`MLPlatformError`. Each class carries a
stable ``code`` (like MLflow's error codes) so that logs, CLI exit paths and alerts can match on it,
and each message names the problem *and* what to do about it. Third-party failures are re-raised at
layer boundaries as one of these, chained with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator


class MLPlatformError(Exception):
    """Root of every deliberate ml_platform error."""

    code: str = "ML_PLATFORM_ERROR"

    def __str__(self) -> str:  # keep the code visible in logs and CLI output
        return f"[{self.code}] {super().__str__()}"


class ConfigurationError(MLPlatformError, ValueError):
    """A setting, parameter or argument is malformed or inconsistent."""

    code = "CONFIGURATION_ERROR"


class WindowError(ConfigurationError):
    """A data window is malformed (bad dates, start after end, outside the available history)."""

    code = "WINDOW_ERROR"


class PartitionError(ConfigurationError):
    """A partition key is unknown or malformed."""

    code = "PARTITION_ERROR"


class CodeHashError(MLPlatformError):
    """The code hasher could not derive a content hash for a function."""

    code = "CODE_HASH_ERROR"


class UnresolvableReference(CodeHashError):
    """A hashed function references a name the hasher cannot resolve to an object."""

    code = "UNRESOLVABLE_REFERENCE"


class GraphError(MLPlatformError):
    """The feature graph is malformed: a cycle, a missing upstream node, a duplicate key."""

    code = "GRAPH_ERROR"


class DataHashError(MLPlatformError):
    """A table cannot be content-hashed (for example an unsupported Arrow type)."""

    code = "DATA_HASH_ERROR"


class HashSchemeError(MLPlatformError):
    """A record names a hash scheme this code cannot verify: unknown, retired, or of another kind."""

    code = "HASH_SCHEME_ERROR"


class DataError(MLPlatformError):
    """Input data is unusable: missing, empty, NaN-only, or of the wrong shape."""

    code = "DATA_ERROR"


class IntegrityError(MLPlatformError):
    """Stored bytes no longer match the hash recorded when they were written."""

    code = "INTEGRITY_ERROR"


class ManifestError(IntegrityError):
    """A manifest is missing, unreadable, of an unknown schema version, or inconsistent with its data."""

    code = "MANIFEST_ERROR"


class ManifestTampered(ManifestError):
    """A manifest's fields no longer hash to the manifest hash it records, or disagree with its anchors."""

    code = "MANIFEST_TAMPERED"


class EnvironmentMismatch(MLPlatformError):
    """The running environment differs from the pinned one under a ``strict`` policy."""

    code = "ENVIRONMENT_MISMATCH"


class ProvenanceError(ConfigurationError):
    """The recorded git commit cannot be established: a checkout and ``ML_PLATFORM_GIT_COMMIT`` disagree, or a
    production write would record none."""

    code = "PROVENANCE_ERROR"


class AcceptanceTampered(IntegrityError):
    """A recorded environment acceptance no longer hashes to the hash it records; it accepts nothing."""

    code = "ACCEPTANCE_TAMPERED"


class RegistryError(MLPlatformError):
    """The model registry (MLflow) failed or holds something unusable."""

    code = "REGISTRY_ERROR"


class ModelNotFound(RegistryError):
    """No registered model (or version, or champion alias) by that name."""

    code = "MODEL_NOT_FOUND"


class ContractViolation(MLPlatformError):
    """A model's deploy contract does not match the live feature stream; the model is refused."""

    code = "CONTRACT_VIOLATION"


class GateFailed(MLPlatformError):
    """A promotion gate refused a challenger."""

    code = "GATE_FAILED"


class RollbackRefused(MLPlatformError):
    """A rollback cannot be carried out safely."""

    code = "ROLLBACK_REFUSED"


class NonDeterministicModel(MLPlatformError):
    """Two fits of the same trainer on the same rows gave different model bytes; the model is refused."""

    code = "NON_DETERMINISTIC_MODEL"


class ReproductionFailed(MLPlatformError):
    """A reproduction did not rebuild the recorded bytes."""

    code = "REPRODUCTION_FAILED"


class RegistryUnavailable(RegistryError):
    """The model registry's store is busy (locked) or unreachable; the wait for it was bounded and ran out."""

    code = "REGISTRY_UNAVAILABLE"


class ConcurrencyError(MLPlatformError):
    """A read lost a race with concurrent writers every time it was retried; retry it later (not corruption)."""

    code = "CONCURRENCY_ERROR"


class LedgerError(MLPlatformError):
    """The champion ledger failed, or refused a write; the ledger is unchanged."""

    code = "LEDGER_ERROR"


class LedgerUnavailable(LedgerError):
    """The ledger's database is busy (locked) or unreachable; the bounded wait ran out and nothing was written."""

    code = "LEDGER_UNAVAILABLE"


class LedgerSchemaError(LedgerError):
    """The ledger's tables are missing, of an unknown schema version, or newer than this ml_platform."""

    code = "LEDGER_SCHEMA_ERROR"


class LedgerConflict(LedgerError):
    """A champion move was based on a stale head: another move was recorded first, and nothing was written.

    Attributes:
        model: The model whose head moved.
        expected_seq: The head sequence number the caller expected (0: an empty ledger).
        actual_seq: The head sequence number found (0: an empty ledger), ``None`` if unknown.
    """

    code = "LEDGER_CONFLICT"

    def __init__(self, message: str, *, model: str | None = None, expected_seq: int | None = None,
                 actual_seq: int | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq


class LedgerMoveRefused(LedgerError):
    """A champion move makes no sense against the current head (already champion, never champion); nothing written."""

    code = "LEDGER_MOVE_REFUSED"


class LedgerTampered(LedgerError, IntegrityError):
    """The ledger's hash chain does not verify: an entry was altered, deleted or reordered after it was written.

    Attributes:
        model: The model whose chain is broken.
        seq: The sequence number of the first bad entry.
        problem: What is wrong there (``altered``, ``missing``, ``reordered``, ``broken_link``, ``head``,
            ``moved_back``, or what the head's anchor names: ``cut_tail``, ``anchor_mismatch``, ``anchor_unreadable``).
    """

    code = "LEDGER_TAMPERED"

    def __init__(self, message: str, *, model: str | None = None, seq: int | None = None,
                 problem: str | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.seq = seq
        self.problem = problem


class MonitoringError(MLPlatformError):
    """A monitoring check, policy or route is misconfigured or could not evaluate."""

    code = "MONITORING_ERROR"


class MisroutedAlert(MonitoringError, TypeError):
    """An alert was given to the route of the other kind (an alpha finding to the pager, or the reverse)."""

    code = "MISROUTED_ALERT"


class DeliveryFailed(MonitoringError):
    """An alert endpoint refused or did not answer; the alert stays in the outbox for the next attempt."""

    code = "DELIVERY_FAILED"


class StorageFull(MLPlatformError, OSError):
    """A write found its partition full (``ENOSPC``) or its quota spent (``EDQUOT``); nothing was published."""

    code = "STORAGE_FULL"


class StorageUnavailable(MLPlatformError):
    """The store's object server (S3) could not be reached; the bounded retries ran out and nothing was published."""

    code = "STORAGE_UNAVAILABLE"


class InstanceDamaged(IntegrityError):
    """A Dagster instance's storage (its event log) holds a record that cannot be read back."""

    code = "INSTANCE_DAMAGED"


class TraceError(MLPlatformError):
    """A live signal cannot be traced back to what made it (see ``ml-platform trace``)."""

    code = "TRACE_ERROR"


class SignalNotFound(TraceError, DataError):
    """No stored live signal for that model or asset, day and instrument; the message says what exists."""

    code = "SIGNAL_NOT_FOUND"


class NoChampionInForce(SignalNotFound):
    """The day or the signal precedes every champion of record of the model: no champion made it."""

    code = "NO_CHAMPION_IN_FORCE"


class TraceBroken(TraceError, IntegrityError):
    """An object or manifest on a signal's recorded path is missing or no longer holds its recorded bytes.

    Attributes:
        lost: ``(label, data hash, reason)`` of every version on the path that could not be read back.
    """

    code = "TRACE_BROKEN"

    def __init__(self, message: str, *, lost: tuple[tuple[str, str, str], ...] = ()) -> None:
        super().__init__(message)
        self.lost = lost


def exception_chain(exc: BaseException,
                    links: Callable[[BaseException], Iterable[object]]) -> Iterator[BaseException]:
    """``exc`` and every exception reachable from it through ``links`` (breadth first, each once).

    ``links`` names what a client library chains an error through besides ``__cause__``/``__context__``
    (SQLAlchemy's ``orig``, urllib3's ``reason``, an exception passed as the first argument); anything it gives
    that is not an exception is skipped.
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in links(current) if isinstance(e, BaseException))
