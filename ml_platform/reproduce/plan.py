"""The plan of a reproduction: what the record asks to rebuild, checked before any work directory exists.

From the store alone: the training set (found by the data hash its contract records), the live-signal
days the version served, and the recorded lineage beneath both, every object re-read and its bytes
checked against the recorded file hash and size; then the passes (:mod:`~ml_platform.reproduce.passes`).
An altered or lost version is named here, before anything starts. No Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml_platform.errors import ReproductionFailed
from ml_platform.io.recorded_lineage import (
    RecordedLineage,
    RecordedPartition,
    describe_lost,
    recorded_lineage,
)
from ml_platform.io.store import PinnedStore
from ml_platform.reproduce.compare import Comparison, ComparisonKind
from ml_platform.reproduce.passes import ReproductionPass, plan_passes
from ml_platform.reproduce.record import find_training_key
from ml_platform.reproduce.signals import served_signals

__all__ = ["ReproductionPlan", "plan_reproduction"]


@dataclass(frozen=True)
class ReproductionPlan:
    """What one reproduction rebuilds, in passes, and what it cannot.

    Attributes:
        training_key: the store key of the training set.
        lineage: every recorded version beneath the training set and the served live days (complete).
        passes: the passes, in order; the first also retrains and holds the training set's lineage.
        unreproducible: a comparison for each live day no pass can hold, saying why (never equal).
    """

    training_key: str
    lineage: RecordedLineage
    passes: tuple[ReproductionPass, ...]
    unreproducible: tuple[Comparison, ...] = ()

    @property
    def root(self) -> RecordedPartition:
        """The training set's recorded version."""
        assert self.lineage.root is not None
        return self.lineage.root

    @property
    def live_days(self) -> int:
        """The live signal days the passes score."""
        return sum(len(p.live_days) for p in self.passes)


def plan_reproduction(store: PinnedStore, model: str, version: str, training_set_data_hash: str) -> ReproductionPlan:
    """Find the training set and the live days ``model`` ``version`` served, walk their recorded lineage with
    every object verified, and split it into passes of consistent versions.

    Raises:
        ReproductionFailed: the training set is not stored (or several keys hold it), or a recorded version
            beneath it or beneath a served day is lost or altered (each named).
    """
    training_key = find_training_key(store, training_set_data_hash)
    # the live days this version served, and beneath them the model-input versions it scored
    served = {(s.key, s.partition, s.data_hash) for s in served_signals(store, model, version)}
    # every recorded object re-read and its bytes checked against the recorded file hash and size (the bytes
    # hashed as the data hash when written): an altered or lost one is named before anything starts
    lineage = recorded_lineage(store, training_key, None, training_set_data_hash, verify_objects=True,
                               also=sorted(served, key=str))
    if not lineage.complete:
        raise ReproductionFailed(f"model {model!r} version {version}: " + describe_lost(lineage.lost))
    # one pass per consistent set of versions: the training set's, then live days that read other versions
    planned = plan_passes(lineage, [p for p in lineage.partitions if (p.key, p.partition, p.data_hash) in served])
    unreproducible = tuple(
        Comparison(ComparisonKind.SIGNALS, f"signals {day.label}", day.data_hash, None,
                   f"not reproduced: this live day read {conflict}, and one reproduction pass holds one version of "
                   "each partition") for day, conflict in planned.unplaceable)
    return ReproductionPlan(training_key, lineage, planned.passes, unreproducible)
