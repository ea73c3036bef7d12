"""The certificate's facts, assembled once from the steps' results (no Dagster: the results are built as values)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_platform.environment import capture_environment
from ml_platform.io.manifest import UpstreamRef
from ml_platform.io.recorded_lineage import RecordedLineage, RecordedPartition
from ml_platform.reproduce.compare import Comparison, ComparisonKind
from ml_platform.reproduce.dagster_services import CodeLocation
from ml_platform.reproduce.old_commit import OldCode, OldCodeDagster
from ml_platform.reproduce.passes import ReproductionPass
from ml_platform.reproduce.plan import ReproductionPlan
from ml_platform.reproduce.backfill import BackfillOutcome
from ml_platform.reproduce.rebuild import Backfilled, OldCodeRun, PassOutcome, Retrained
from ml_platform.reproduce.service import certificate_facts
from ml_platform.settings import Settings

NAMESPACE = ("repro", "a" * 12)
BARS = RecordedPartition("team/bars", "2024-01-02", "xxh3_128:" + "1" * 32, (), "g")
REVISED = RecordedPartition("team/bars", "2024-01-02", "xxh3_128:" + "2" * 32, (), "g")
FEATURE = RecordedPartition("team/f", "2024-01-02", "xxh3_128:" + "3" * 32,
                            (UpstreamRef(BARS.key, BARS.partition, BARS.data_hash),), "g")
TRAIN = RecordedPartition("team/train", None, "xxh3_128:" + "4" * 32,
                          (UpstreamRef(FEATURE.key, FEATURE.partition, FEATURE.data_hash),), "g")
DAY_1 = RecordedPartition("team/sig", "2024-01-03", "xxh3_128:" + "5" * 32, (), "g")
DAY_2 = RecordedPartition("team/sig", "2024-01-04", "xxh3_128:" + "6" * 32, (), "g")


class Webserver:
    """What the facts read of the reproduction's Dagster: its address."""

    url = "http://127.0.0.1:3999"
    location_name = f"repro_{'a' * 12}"
    logs = Path("logs")

    def graphql(self, query: str, variables: object = None, timeout: float = 60.0) -> dict[str, object]:
        raise AssertionError("the facts ask Dagster nothing")


def _plan() -> ReproductionPlan:
    passes = (ReproductionPass(0, (BARS,), (FEATURE,), (DAY_1,)), ReproductionPass(1, (REVISED,), (), (DAY_2,)))
    return ReproductionPlan("team/train", RecordedLineage(TRAIN, (TRAIN, FEATURE, BARS, REVISED, DAY_1, DAY_2), ()),
                            passes)


def _code(tmp_path: Path, git_diff_sha256: str | None) -> OldCode:
    environment = Comparison(ComparisonKind.ENVIRONMENT, "environment", "x", "x")
    return OldCode(tmp_path / "src", tmp_path / "venv/bin/python", capture_environment(), environment,
                   ("numpy 1.26.0 -> 1.26.4",), git_diff_sha256, 12.5)


def _dagster(tmp_path: Path) -> OldCodeDagster:
    location = CodeLocation(Webserver.location_name, "project.definitions", "defs", tmp_path / "src",
                            tmp_path / "venv/bin/python")
    return OldCodeDagster(Settings.local(tmp_path / "home"), location, Webserver(), NAMESPACE,
                          "an isolated Dagster instance in the work directory")


def _run(execution: dict[str, object]) -> OldCodeRun:
    return OldCodeRun(Webserver(), NAMESPACE, execution, {}, ("team", "train"), ("team", "trained_model"), 60.0)


def test_the_facts_name_the_deployment_every_backfill_and_the_timings_of_each_step(tmp_path: Path) -> None:
    retrained = Retrained(None, "m", "1", "run-1", 4.0)  # type: ignore[arg-type]  # the facts read its time only
    outcomes = (PassOutcome(0, Backfilled(BackfillOutcome("bf-1", "COMPLETED_SUCCESS", (("r1", "SUCCESS"), ("r2", "SUCCESS")), 3.0), 1, 3.25),
                            retrained, (), 1.004),
                PassOutcome(1, None, None, (), 2.003))
    facts = certificate_facts(_plan(), _code(tmp_path, "sha256:" + "d" * 64), _dagster(tmp_path),
                              _run({"execution": {"config": {"in_process": {}}}}), outcomes, work=tmp_path)
    first = {"id": "bf-1", "status": "COMPLETED_SUCCESS", "runs": 2, "pass": 1, "partitions": 1}
    assert facts == {
        "workdir": str(tmp_path), "training_set": "team/train", "recorded_versions": 6, "live_days": 2, "passes": 2,
        "git_diff_sha256": "sha256:" + "d" * 64, "environment_differences": ["numpy 1.26.0 -> 1.26.4"],
        "deployment": "an isolated Dagster instance in the work directory", "dagster_ui": Webserver.url,
        "code_location": Webserver.location_name, "key_prefix": "repro/aaaaaaaaaaaa", "executor": "in_process",
        "backfill": first, "backfills": [first],
        "timings": {"environment_s": 12.5, "backfill_s": 3.25, "training_s": 4.0, "signals_s": 3.0}}  # 1.0 + 2.003
    assert list(facts["timings"]) == ["environment_s", "backfill_s", "training_s", "signals_s"]  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", [NAMESPACE, ()])
def test_without_diff_or_backfill_those_facts_are_absent(tmp_path: Path, prefix: tuple[str, ...]) -> None:
    retrained = Retrained(None, "m", "1", "run-1", 4.0)  # type: ignore[arg-type]
    outcomes = (PassOutcome(0, None, retrained, (), None),
                PassOutcome(1, Backfilled(BackfillOutcome("bf-2", "COMPLETED", (), 1.0), 2, 1.5), None, (), None))
    run = OldCodeRun(Webserver(), prefix, {}, {}, ("team", "train"), ("team", "trained_model"), 60.0)
    facts = certificate_facts(_plan(), _code(tmp_path, None), _dagster(tmp_path), run, outcomes, work=tmp_path)
    assert "git_diff_sha256" not in facts and facts["executor"] == "the project's own"
    assert facts["key_prefix"] == "/".join(prefix)
    assert facts["backfills"] == [{"id": "bf-2", "status": "COMPLETED", "runs": 0, "pass": 2, "partitions": 2}]
    assert facts["timings"] == {"environment_s": 12.5, "training_s": 4.0, "backfill_s2": 1.5}
