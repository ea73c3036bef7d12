"""``ml-platform promote`` through the command line: a promotion, a gate refusal, and bad input.

The command finds the project's Definitions with ``--defs``; here that is :func:`definitions` of this
module, which hands out the test's own project (tmp MLflow on SQLite, tmp store) and the command runs
the promote_model job on the test's Dagster instance (``DAGSTER_HOME`` set by ``instance_for_test``).
Exit codes: 0 promoted, 1 refused by a gate, 2 bad input (the ``ml-platform`` group's platform errors).
"""

from __future__ import annotations

import datetime as dt
import sys

import dagster as dg
import polars as pl
import pytest
from click.testing import CliRunner, Result

from ml_platform.champions.catalog import champion_of_record
from ml_platform.cli import main
from ml_platform.environment import capture_environment
from ml_platform.models import ModelInputs, RidgeTrainer
from ml_platform.registry import DeployContract, FeatureSchema
from ml_platform_tests.promotion.conftest import (
    FEATURES,
    KEYS,
    LABEL,
    MODEL,
    RATIONALE,
    TRAIN,
    VALID,
    Project,
    training_frame,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OTHER_MODEL = "other_ridge"
TARGET = f"{__name__}:definitions"
_DEFS: dg.Definitions | None = None


def definitions() -> dg.Definitions:
    """The ``--defs`` target: the current test's project Definitions."""
    assert _DEFS is not None, "the cli fixture sets the Definitions"
    return _DEFS


@pytest.fixture
def cli(project: Project, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(sys.modules[__name__], "_DEFS", project.defs)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, ["promote", *args, "--defs", TARGET])
    return invoke


def rationale_file(project: Project, text: str | bytes | None = None, name: str = "why.md") -> str:
    path = project.tmp / name
    body = RATIONALE.format(v="1", extra="") if text is None else text
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    return str(path)


def register_other_model(project: Project) -> str:
    """A version of another registered model (no promotion job in the Definitions) on the same registry."""
    frame = training_frame()
    train = frame.filter(pl.col("date").is_between(TRAIN.start, TRAIN.end))
    model = RidgeTrainer(alpha=1.0).fit(train, ModelInputs(KEYS, FEATURES, LABEL))
    manifest = project.store.write("train_rows", None, frame)
    env = capture_environment()
    contract = DeployContract(
        model_name=OTHER_MODEL, model_version=None, feature_graph_hash=project.graph["model_inputs"].graph_hash,
        feature_schema=FeatureSchema.from_polars(frame.select(*KEYS.columns, *FEATURES)), keys=KEYS,
        training_window=TRAIN, validation_window=VALID, training_set_data_hash=manifest.data_hash,
        model_sha256=model.sha256, model_format=model.format_id, environment_hash=env.hash,
        environment_lock=env.to_dict(), seeds={"training": 0}, git_commit=None, git_dirty=False,
        trained_by="alice", created_at=dt.datetime.now(dt.UTC))
    return project.registry.register(model_name=OTHER_MODEL, model=model, contract=contract, params={"alpha": 1.0},
                                     metrics={}, code_snapshot={"train_rows": "def train_rows(): ..."}).version


def promote_runs(project: Project) -> list[dg.DagsterRun]:
    return [r for r in project.instance.get_runs() if r.job_name == "promote_model"]


def assert_nothing_moved(project: Project) -> None:
    assert project.head() is None
    assert project.registry.champion_alias(MODEL) is None
    assert promote_runs(project) == []  # refused before any run started


def test_a_passing_promotion_exits_0_and_names_the_ledger_entry(project: Project, cli) -> None:  # type: ignore[no-untyped-def]
    v1 = project.register(trained_by="alice")
    result = cli(MODEL, v1, "--rationale-file", rationale_file(project), "--approver", "bob")
    assert result.exit_code == 0, result.output
    head = project.head()
    assert (head.seq, head.to_version, head.from_version, head.approver) == (1, v1, None, "bob")
    assert f"promoted {MODEL} version {v1} (from none); ledger entry 1 {head.entry_hash}" in result.stdout
    assert "| sharpe |" in result.stdout  # the numeric report is printed
    assert project.registry.champion_alias(MODEL) == v1
    runs = promote_runs(project)  # the job ran on the test's instance, visible in the Dagster UI
    assert len(runs) == 1 and runs[0].is_success and runs[0].run_id in result.stdout


def test_the_trainer_approving_is_refused_at_four_eyes_and_nothing_moves(project: Project, cli) -> None:  # type: ignore[no-untyped-def]
    v1 = project.register(trained_by="alice")
    result = cli(MODEL, v1, "--rationale-file", rationale_file(project), "--approver", "alice")
    assert result.exit_code == 1, result.output
    runs = promote_runs(project)
    assert len(runs) == 1 and runs[0].status == dg.DagsterRunStatus.FAILURE
    assert f"refused: [GATE_FAILED] run {runs[0].run_id} refused at gate 'four_eyes':" in result.stderr
    assert "'alice' trained this version" in result.stderr and "nothing moved" in result.stderr
    assert "Traceback" not in result.output and "promoted" not in result.stdout
    assert project.head() is None and project.registry.champion_alias(MODEL) is None


@pytest.mark.parametrize(("case", "needle"), [
    ("unknown model", "[CONFIGURATION_ERROR] the Definitions hold no promotion job for model 'no_such_model'"),
    ("unknown version", f"[MODEL_NOT_FOUND] model {MODEL!r} has no version 99"),
    ("version of another model", f"[MODEL_NOT_FOUND] model {MODEL!r} has no version 2"),
    ("model without a promotion job", f"the Definitions hold no promotion job for model {OTHER_MODEL!r}"),
    ("invalid version", "promote: Invalid value for 'VERSION': 'v1' is not a version number"),
    ("empty approver", "promote: Invalid value for '--approver': is empty"),
    ("blank approver", "Invalid value for '--approver': is empty"),
    ("missing rationale file", "nowhere/why.md' does not exist"),
    ("non-UTF-8 rationale file", "latin1.md' is not UTF-8 text"),
])
def test_bad_input_is_a_clear_error_with_exit_2_and_nothing_moves(project: Project, cli, case: str,  # type: ignore[no-untyped-def]
                                                                  needle: str) -> None:
    v1 = project.register(trained_by="alice")
    assert v1 == "1"
    args = {"model": MODEL, "version": v1, "approver": "bob", "file": rationale_file(project)}
    match case:
        case "unknown model":
            args["model"] = "no_such_model"
        case "unknown version":
            args["version"] = "99"
        case "version of another model":  # version 2 exists, but only of the other model
            assert (register_other_model(project), register_other_model(project)) == ("1", "2")
            args["version"] = "2"
        case "model without a promotion job":
            assert register_other_model(project) == "1"
            args["model"] = OTHER_MODEL
        case "invalid version":
            args["version"] = "v1"
        case "empty approver":
            args["approver"] = ""
        case "blank approver":
            args["approver"] = "  \t "
        case "missing rationale file":
            args["file"] = str(project.tmp / "nowhere" / "why.md")
        case "non-UTF-8 rationale file":
            args["file"] = rationale_file(project, RATIONALE.format(v="1", extra="").encode("latin-1") + b"\xe9\xff",
                                          name="latin1.md")
    result = cli(args["model"], args["version"], "--rationale-file", args["file"], "--approver", args["approver"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: [") and needle in result.stderr, result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert_nothing_moved(project)
    if "other" in case or "promotion job" in case:
        assert champion_of_record(project.registry, OTHER_MODEL) is None
        assert project.registry.champion_alias(OTHER_MODEL) is None


def test_run_refusal_names_the_gate_of_a_refused_run_and_nothing_else() -> None:
    from ml_platform.errors import GateFailed, MLPlatformError
    from ml_platform.promotion.job import GATE_METADATA
    from ml_platform.promotion.runs import run_refusal

    @dg.op
    def fine() -> None:
        pass

    @dg.op
    def refusing_gate() -> None:
        raise dg.Failure(description="[GATE_FAILED] promotion gate 'four_eyes' refused: the approver trained it",
                         metadata={GATE_METADATA: "four_eyes"})

    @dg.op
    def broken() -> None:
        raise RuntimeError("a bug, not a gate")

    def run(op: dg.OpDefinition) -> dg.ExecuteInProcessResult:
        @dg.job(name=f"job_{op.name}")
        def one() -> None:
            op()
        return one.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)

    assert run_refusal(run(fine)) is None
    refused = run(refusing_gate)
    error = run_refusal(refused)
    assert isinstance(error, GateFailed) and (error.gate, error.run_id) == ("four_eyes", refused.run_id)
    assert error.detail == "promotion gate 'four_eyes' refused: the approver trained it"
    assert str(error) == (f"[GATE_FAILED] run {refused.run_id} refused at gate 'four_eyes': promotion gate "
                          "'four_eyes' refused: the approver trained it; nothing moved")
    failed = run(broken)
    error = run_refusal(failed)
    assert type(error) is MLPlatformError and error.gate is None and "a bug, not a gate" in error.detail
    assert f"the promotion run {failed.run_id} failed at step broken; nothing moved" in str(error)
