"""The trace of one live signal: typed, frozen values and their JSON form. Pure: no Dagster, no MLflow.

How it works, and why: docs/architecture.md, "ml_platform/trace/record.py".
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ChampionEntry",
    "Evidence",
    "FeatureRow",
    "ModelFacts",
    "Recomputation",
    "SignalValue",
    "StoredVersion",
    "TraceRecord",
    "float_hex",
    "reproduce_command",
]

TRACE_SCHEMA = "ml_platform.trace/v1"


def float_hex(value: object) -> str | None:
    """``float.hex()`` of a float (the exact bits, NaN and signed zero included), else ``None``."""
    return value.hex() if isinstance(value, float) else None


def _plain(value: object) -> object:
    """A JSON-ready form of a frame value (dates and times as ISO text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity: the exact bits are in the ``*_hex`` field beside it
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    iso = getattr(value, "isoformat", None)
    return iso() if callable(iso) else str(value)


def reproduce_command(model: str, version: str) -> str:
    """The command that rebuilds ``model`` ``version`` from its record and certifies it (the full proof)."""
    return f"ml-platform reproduce {model} {version} --workdir <an empty directory>"


@dataclass(frozen=True)
class StoredVersion:
    """One recorded version of one partition on the signal's path.

    Attributes:
        key: store key (the asset key path joined by ``/``).
        partition: partition key (``None``: unpartitioned, e.g. a training set).
        data_hash: content hash of that version (it names the object).
        code_hash / graph_hash: of the node code that wrote it (``None`` for a plain asset).
        object_path: where the immutable object lives.
        file_hash: hash of the object's bytes, as recorded.
        rows: row count.
        written_at: when it was written (UTC, ISO).
        window: the data window it covers (``START..END``), if recorded.
        run_id: the Dagster run that wrote it.
        git_commit: the commit of the project code that wrote it.
        upstream: ``(key, partition, data_hash)`` of every version it was computed from.
        role: ``signal``, ``model_input``, ``feature``, ``source`` or ``training_set``.
        image_digest: the digest of the container image that wrote it (``None``: not written in an image).
    """

    key: str
    partition: str | None
    data_hash: str
    code_hash: str | None
    graph_hash: str | None
    object_path: str
    file_hash: str | None
    rows: int
    written_at: str
    window: str | None
    run_id: str | None
    git_commit: str | None
    upstream: tuple[tuple[str, str | None, str], ...]
    role: str
    image_digest: str | None = None

    @property
    def label(self) -> str:
        return self.key if self.partition is None else f"{self.key} partition {self.partition}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "partition": self.partition, "data_hash": self.data_hash,
                "code_hash": self.code_hash, "graph_hash": self.graph_hash, "object": self.object_path,
                "file_hash": self.file_hash, "rows": self.rows, "written_at": self.written_at,
                "window": self.window, "run_id": self.run_id, "git_commit": self.git_commit,
                "image_digest": self.image_digest,
                "upstream": [{"key": k, "partition": p, "data_hash": h} for k, p, h in self.upstream],
                "role": self.role}


@dataclass(frozen=True)
class SignalValue:
    """The signal as stored: its row of the live-signal partition.

    Attributes:
        key / partition: where it is stored.
        time: the row's time value (ISO).
        instrument: entity column -> value.
        score / weight: the model's score and the portfolio weight, exactly as stored.
        model_name / model_version: what the row says produced it.
        row: every column of the row.
    """

    key: str
    partition: str
    time: str
    instrument: Mapping[str, object]
    score: float | None
    weight: float | None
    model_name: str
    model_version: str
    row: Mapping[str, object] = field(hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "partition": self.partition, "time": self.time,
                "instrument": {k: _plain(v) for k, v in self.instrument.items()},
                "score": _plain(self.score), "score_hex": float_hex(self.score),
                "weight": _plain(self.weight), "weight_hex": float_hex(self.weight),
                "model_name": self.model_name, "model_version": self.model_version,
                "row": {k: _plain(v) for k, v in self.row.items()}}


@dataclass(frozen=True)
class Evidence:
    """A document a ledger entry links to (the promotion report, the written rationale), read back and checked.

    Attributes:
        ref: where it is stored (``runs:/<run>/<path>`` of MLflow).
        sha256: the hash the ledger entry records.
        verified: the stored bytes hash to ``sha256``.
        text: the document's text (the rationale; ``None`` for the report, which is linked only).
        problem: why it could not be read or does not verify, else ``None``.
    """

    ref: str
    sha256: str
    verified: bool
    text: str | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "sha256": self.sha256, "verified": self.verified, "text": self.text,
                "problem": self.problem}


@dataclass(frozen=True)
class ChampionEntry:
    """The ledger entry that made the signal's model version champion, in force when the signal was written.

    Attributes:
        seq / kind / from_version / to_version / actor / approver / reason / recorded_at / entry_hash /
            override: the entry as recorded (see :class:`~ml_platform.champions.entry.LedgerEntry`).
        in_force_until: when the next entry replaced it (``None``: still the champion of record).
        chain_verified: the model's whole hash chain verified when the trace was made.
        report / rationale: the linked documents, read back and checked (``None``: the entry links none,
            e.g. the champion shortcut of tests and demos).
        note: set when the entry in force at the signal's write time is another one (the champion
            moved while the signal's run was scoring).
    """

    model: str
    seq: int
    kind: str
    from_version: str | None
    to_version: str
    actor: str
    approver: str | None
    reason: str
    recorded_at: str
    entry_hash: str
    override: bool
    in_force_until: str | None
    chain_verified: bool
    report: Evidence | None
    rationale: Evidence | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "seq": self.seq, "kind": self.kind, "from_version": self.from_version,
                "to_version": self.to_version, "actor": self.actor, "approver": self.approver,
                "reason": self.reason, "recorded_at": self.recorded_at, "entry_hash": self.entry_hash,
                "override": self.override, "in_force_until": self.in_force_until,
                "chain_verified": self.chain_verified,
                "report": None if self.report is None else self.report.to_dict(),
                "rationale": None if self.rationale is None else self.rationale.to_dict(), "note": self.note}


@dataclass(frozen=True)
class ModelFacts:
    """The registered model version and its deploy contract, as the registry holds it.

    ``contract`` is the contract's JSON form without the full package list of its environment lock
    (``environment`` summarizes it: interpreter, platform, ``uv.lock`` hash, package count).
    """

    name: str
    version: str
    model_sha256: str
    model_format: str
    feature_graph_hash: str
    input_columns: tuple[str, ...]
    training_window: str
    validation_window: str
    training_set_data_hash: str
    seeds: Mapping[str, int] = field(hash=False)
    environment_hash: str = ""
    uv_lock_hash: str | None = None
    environment: Mapping[str, object] = field(default_factory=dict, hash=False)
    git_commit: str | None = None
    git_dirty: bool = False
    trained_by: str = ""
    created_at: str = ""
    contract_sha256: str = ""
    contract: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "model_sha256": self.model_sha256,
                "model_format": self.model_format, "feature_graph_hash": self.feature_graph_hash,
                "input_columns": list(self.input_columns), "training_window": self.training_window,
                "validation_window": self.validation_window,
                "training_set_data_hash": self.training_set_data_hash, "seeds": dict(self.seeds),
                "environment_hash": self.environment_hash, "uv_lock_hash": self.uv_lock_hash,
                "environment": dict(self.environment), "git_commit": self.git_commit, "git_dirty": self.git_dirty,
                "trained_by": self.trained_by, "created_at": self.created_at,
                "contract_sha256": self.contract_sha256, "contract": dict(self.contract)}


@dataclass(frozen=True)
class FeatureRow:
    """The row of the model input the model scored: every input column's value for the instrument and day.

    Attributes:
        key / partition / data_hash: the model-input version the live-signal manifest records.
        values: ``(column, value)`` in the contract's input order (key columns first).
        types: ``(column, type)`` as the contract's schema records them.
    """

    key: str
    partition: str | None
    data_hash: str
    values: tuple[tuple[str, object], ...]
    types: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "partition": self.partition, "data_hash": self.data_hash,
                "values": {c: _plain(v) for c, v in self.values},
                "values_hex": {c: float_hex(v) for c, v in self.values if isinstance(v, float)},
                "types": dict(self.types)}


@dataclass(frozen=True)
class Recomputation:
    """The signal recomputed in this process from the stored model input and the registered model.

    Attributes:
        score / weight: recomputed.
        score_equal / weight_equal: bit-for-bit equal to the stored values (``float.hex``).
        partition_data_hash: data hash of the whole recomputed partition (every instrument of the day).
        partition_equal: it equals the stored partition's data hash.
        environment_differences: how this process's environment differs from the training one.
        reproduce: the command for the full proof (rebuild the model from its record and certify it).
    """

    score: float | None
    weight: float | None
    score_equal: bool
    weight_equal: bool
    partition_data_hash: str
    partition_equal: bool
    environment_differences: tuple[str, ...]
    reproduce: str

    @property
    def equal(self) -> bool:
        """The recomputed row and partition equal the stored ones bit for bit."""
        return self.score_equal and self.weight_equal and self.partition_equal

    def to_dict(self) -> dict[str, Any]:
        return {"score": _plain(self.score), "score_hex": float_hex(self.score), "weight": self.weight,
                "weight_hex": float_hex(self.weight), "score_equal": self.score_equal,
                "weight_equal": self.weight_equal, "partition_data_hash": self.partition_data_hash,
                "partition_equal": self.partition_equal, "equal": self.equal,
                "environment_differences": list(self.environment_differences), "reproduce": self.reproduce}


@dataclass(frozen=True)
class TraceRecord:
    """Everything that made one live signal, as recorded at the time it was written.

    Attributes:
        target: what was asked for (a model name or a live-signal store key).
        day: the day (ISO).
        signal: the stored row.
        signal_version: the live-signal partition version traced (its data hash and object).
        other_versions: ``(written_at, data_hash)`` of the partition's other recorded versions (later
            rematerializations); the trace does not follow them.
        model: the model version that produced the row and its deploy contract.
        champion: the ledger entry that made that version champion, in force at the signal's write time.
        feature_row: the model-input row the model scored.
        features: every computed feature version beneath the signal (model input first), by recorded hash.
        sources: the source versions underneath (data as delivered).
        training_set: the model's training set version, if still stored.
        notes: consistency findings worth a reader's attention (none on a clean trace).
        recompute: the recomputation, when asked for.
        traced_at: when the trace was made (UTC, ISO).
    """

    target: str
    day: str
    signal: SignalValue
    signal_version: StoredVersion
    other_versions: tuple[tuple[str, str], ...]
    model: ModelFacts
    champion: ChampionEntry
    feature_row: FeatureRow
    features: tuple[StoredVersion, ...]
    sources: tuple[StoredVersion, ...]
    training_set: StoredVersion | None
    notes: tuple[str, ...]
    recompute: Recomputation | None
    traced_at: str

    def nodes(self) -> tuple[str, ...]:
        """Store keys on the path, from the signal down to the sources (first-seen order)."""
        return tuple(dict.fromkeys([self.signal_version.key, *(f.key for f in self.features),
                                    *(s.key for s in self.sources)]))

    def edges(self) -> tuple[tuple[str, str], ...]:
        """``(upstream key, downstream key)`` between the nodes on the path, each once."""
        pairs: dict[tuple[str, str], None] = {}
        for version in (self.signal_version, *self.features):
            for key, _, _ in version.upstream:
                if key != version.key:
                    pairs[(key, version.key)] = None
        return tuple(pairs)

    def versions_of(self, key: str) -> tuple[StoredVersion, ...]:
        """Every traced version of one node, by partition."""
        every = (self.signal_version, *self.features, *self.sources)
        return tuple(sorted((v for v in every if v.key == key), key=lambda v: v.partition or ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": TRACE_SCHEMA, "target": self.target, "day": self.day,
            "signal": self.signal.to_dict(), "signal_version": self.signal_version.to_dict(),
            "other_versions": [{"written_at": w, "data_hash": h} for w, h in self.other_versions],
            "model": self.model.to_dict(), "champion": self.champion.to_dict(),
            "feature_row": self.feature_row.to_dict(),
            "features": [f.to_dict() for f in self.features], "sources": [s.to_dict() for s in self.sources],
            "training_set": None if self.training_set is None else self.training_set.to_dict(),
            "lineage": {"nodes": list(self.nodes()), "edges": [list(e) for e in self.edges()]},
            "notes": list(self.notes),
            "recompute": None if self.recompute is None else self.recompute.to_dict(),
            "traced_at": self.traced_at,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)
