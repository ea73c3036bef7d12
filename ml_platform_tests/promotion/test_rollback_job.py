"""The ``rollback_model`` job on a real Dagster instance, real MLflow on SQLite and the champion ledger."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

import ml_platform
from ml_platform import metadata
from ml_platform.champions.anchor import AnchorReading
from ml_platform.champions.location import open_ledger
from ml_platform.cli import main
from ml_platform.errors import ConfigurationError, GraphError
from ml_platform.promotion.anchors import run_anchor
from ml_platform.promotion.rollback_job import JOB_MODEL_TAG, OP_NAME, build_rollback_job
from ml_platform.testing import champion_shortcut
from ml_platform_tests.champions.conftest import raw_sql
from ml_platform_tests.promotion.conftest import MODEL, Project

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def defs(project: Project) -> dg.Definitions:
    """The project's Definitions (promote_model and its resources) plus the rollback job."""
    rollback = build_rollback_job(project.graph, model_input="model_inputs", model_name=MODEL)
    return dg.Definitions.merge(project.defs, dg.Definitions(jobs=[rollback]))


def roll(project: Project, defs: dg.Definitions, **config: str) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("rollback_model")
    return job.execute_in_process(run_config={"ops": {OP_NAME: {"config": config}}}, instance=project.instance,
                                  raise_on_error=False)


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    outputs = [e for e in result.all_events if e.is_successful_output and e.step_key == OP_NAME]
    assert len(outputs) == 1
    return {k: getattr(v, "value", v) for k, v in outputs[0].step_output_data.metadata.items()}


def failure(result: dg.ExecuteInProcessResult) -> tuple[str, dict[str, Any]]:
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == [OP_NAME]
    data = failures[0].step_failure_data.user_failure_data
    assert data is not None, "a platform error must leave as dagster.Failure, not a stack trace"
    return data.description, {k: getattr(v, "value", v) for k, v in data.metadata.items()}


def champions(project: Project, *versions: str) -> None:
    for version in versions:  # the ledger shortcut: these tests are about rolling back, not the gates
        champion_shortcut(project.registry, MODEL, version)


def test_rollback_to_the_previous_champion_after_real_promotions(project: Project, defs: dg.Definitions) -> None:
    v1, v2 = project.register((0.01, 0.0)), project.register()
    assert project.run(v1).success and project.run(v2, tail="Second promotion of the tuned coefficients.").success
    promoted = project.head()
    assert (promoted.seq, promoted.to_version) == (2, v2)

    result = roll(project, defs, reason="live IC collapsed in the first week")
    assert result.success
    head = project.head()
    assert (head.seq, head.kind, head.from_version, head.to_version) == (3, "rollback", v2, v1)
    assert head.prev_hash == promoted.entry_hash and head.reason == "live IC collapsed in the first week"
    assert head.actor.endswith(f"(dagster run {result.run_id[:8]})")  # default actor: OS user + run id
    assert project.registry.champion_alias(MODEL) == v1  # the MLflow alias mirrors the new head
    meta = output_metadata(result)
    assert (meta["ledger_seq"], meta["entry_hash"], meta["from_version"], meta["to_version"]) == (
        3, head.entry_hash, v2, v1)
    assert project.registry.model_tags(MODEL)["ml_platform.ledger.head"] == f"3:{head.entry_hash}"  # both anchors
    assert isinstance(meta["latency_ms"], float) and 0 < meta["latency_ms"] < 60_000
    assert meta[metadata.MODEL_NAME] == MODEL and meta[metadata.FEATURE_GRAPH_HASH] == project.graph["model_inputs"].graph_hash
    run = project.instance.get_run_by_id(result.run_id)  # a real run on the instance, as from the Launchpad
    assert run.job_name == "rollback_model" and run.tags[JOB_MODEL_TAG] == MODEL
    assert open_ledger(project.registry).verify(MODEL).ok


def test_rollback_to_a_named_earlier_champion_then_no_earlier_one_is_left(project: Project,
                                                                          defs: dg.Definitions) -> None:
    v1, v2, v3 = project.register(), project.register((0.011, -0.004)), project.register((0.01, 0.0))
    champions(project, v1, v2, v3)
    result = roll(project, defs, to=v1, reason="back to the first champion", actor="carol")
    assert result.success
    head = project.head()
    assert (head.seq, head.kind, head.from_version, head.to_version, head.actor) == (4, "rollback", v3, v1, "carol")
    assert project.registry.champion_alias(MODEL) == v1
    assert output_metadata(result)["ledger_seq"] == 4

    # the ledger is a stack: v1 was pushed first, so after returning to it there is nothing earlier
    again = roll(project, defs, reason="once more")
    message, meta = failure(again)
    assert "no earlier champion" in message and meta[metadata.ERROR_CODE] == "ROLLBACK_REFUSED"
    assert project.head() == head and project.registry.champion_alias(MODEL) == v1


@pytest.mark.parametrize("to", ["", "1"])
def test_a_target_needing_another_feature_graph_is_refused_and_nothing_moves(project: Project,
                                                                             defs: dg.Definitions, to: str) -> None:
    other_graph = "sha256:" + "ab" * 32
    v1 = project.register(graph_hash=other_graph)  # its contract needs a feature graph serving does not compute
    v2 = project.register()
    assert v1 == "1"
    champions(project, v1, v2)
    before = project.head()
    message, meta = failure(roll(project, defs, to=to, reason="back to v1"))
    assert f"version {v1} of {MODEL!r} needs the feature graph {other_graph}" in message
    assert project.graph["model_inputs"].graph_hash in message and "nothing moved" in message
    assert meta[metadata.ERROR_CODE] == "ROLLBACK_REFUSED" and meta[metadata.MODEL_NAME] == MODEL
    assert project.head() == before and before.seq == 2
    assert project.registry.champion_alias(MODEL) == v2


def test_a_version_that_was_never_champion_is_refused_and_nothing_moves(project: Project,
                                                                        defs: dg.Definitions) -> None:
    v1, v2, v3 = project.register(), project.register((0.011, -0.004)), project.register((0.01, 0.0))
    champions(project, v1, v2)
    before = project.head()
    message, meta = failure(roll(project, defs, to=v3, reason="try the newest"))
    assert f"version {v3} of {MODEL!r} was never its champion" in message
    assert meta[metadata.ERROR_CODE] == "ROLLBACK_REFUSED" and meta["requested_to"] == v3
    assert project.head() == before and len(open_ledger(project.registry).history(MODEL)) == 2
    assert project.registry.champion_alias(MODEL) == v2


@pytest.mark.parametrize(("to", "needle", "code"), [
    ("", "no champion of record to roll back from", "ROLLBACK_REFUSED"),
    ("two", "invalid model version 'two'", "CONFIGURATION_ERROR"),
])
def test_nothing_to_roll_back_or_a_bad_version_fails_the_run(project: Project, defs: dg.Definitions, to: str,
                                                            needle: str, code: str) -> None:
    project.register()
    message, meta = failure(roll(project, defs, to=to, reason="why not"))
    assert needle in message and meta[metadata.ERROR_CODE] == code
    assert project.head() is None and project.registry.champion_alias(MODEL) is None


def test_the_launchpad_form_is_typed_and_the_reason_required(project: Project, defs: dg.Definitions) -> None:
    job = defs.resolve_job_def("rollback_model")
    op_config = job.run_config_schema.config_type.fields["ops"].config_type.fields[OP_NAME].config_type
    fields = op_config.fields["config"].config_type.fields
    assert set(fields) == {"to", "reason", "actor"}
    assert fields["reason"].is_required and not fields["to"].is_required and not fields["actor"].is_required
    assert fields["to"].default_value == "" and fields["actor"].default_value == ""
    assert "previous champion" in fields["to"].description and "ledger" in fields["reason"].description
    assert job.tags[JOB_MODEL_TAG] == MODEL
    v1, v2 = project.register(), project.register((0.011, -0.004))
    champions(project, v1, v2)
    with pytest.raises(dg.DagsterInvalidConfigError, match="reason"):
        job.execute_in_process(run_config={"ops": {OP_NAME: {"config": {"to": v1}}}}, instance=project.instance)
    assert project.head().to_version == v2 and project.head().seq == 2


def test_arguments_are_checked_when_the_job_is_defined(project: Project) -> None:
    with pytest.raises(GraphError, match="model_input='nope' is not a node of the graph"):
        build_rollback_job(project.graph, model_input="nope", model_name=MODEL)
    with pytest.raises(ConfigurationError, match="invalid model name"):
        build_rollback_job(project.graph, model_input="model_inputs", model_name="bad/name")
    with pytest.raises(ConfigurationError, match="key_prefix"):
        build_rollback_job(project.graph, model_input="model_inputs", model_name=MODEL, key_prefix="a/b")
    job = build_rollback_job(project.graph, model_input="model_inputs", model_name=MODEL, key_prefix="team",
                             job_name="rollback_other")
    assert job.name == "rollback_other" and "team/model_inputs" in job.graph.node_defs[0].description
    assert ml_platform.build_rollback_job is build_rollback_job


def test_the_runs_anchor_the_head_too_and_catch_a_cut_tail_whose_mlflow_tag_was_rewritten(
        project: Project, defs: dg.Definitions, monkeypatch: pytest.MonkeyPatch) -> None:
    v1, v2 = project.register((0.01, 0.0)), project.register()
    assert project.run(v1).success and project.run(v2, tail="Second promotion of the tuned coefficients.").success
    promoted = project.head()
    rolled = roll(project, defs, reason="live IC collapsed in the first week")
    assert rolled.success
    head = project.head()
    assert run_anchor(project.instance, MODEL) == AnchorReading(
        f"3:{head.entry_hash}", f"the output metadata of Dagster run {rolled.run_id}")

    def audit(*options: str) -> tuple[int, dict[str, Any]]:
        result = CliRunner().invoke(main, ["audit", "verify", MODEL, *options, "--json",
                                           "--tracking-uri", project.registry.tracking_uri])
        return result.exit_code, json.loads(result.output) if result.exit_code in (0, 1) else result.output

    champion_shortcut(project.registry, MODEL, v2)  # a move outside a run: the runs' anchor falls behind, fine
    assert audit("--with-runs") == (0, audit()[1]) and audit()[1]["anchor_state"] == "matches"

    # entries 3 and 4 cut off, and the MLflow tag rewritten with them (one SQLite file holds both)
    url = open_ledger(project.registry).url
    raw_sql(url, "UPDATE ml_platform_ledger_heads SET seq = 2, entry_hash = :h WHERE model = :m",
            h=promoted.entry_hash, m=MODEL)
    raw_sql(url, "DELETE FROM ml_platform_ledger_entries WHERE model = :m AND seq > 2", m=MODEL)
    project.registry.write_model_tag(MODEL, "ml_platform.ledger.head", f"2:{promoted.entry_hash}")
    code, report = audit()
    assert code == 0 and report["anchor_state"] == "matches"  # the MLflow anchor alone is fooled
    for options in (("--with-runs",), ("--with-runs", "--anchor-only")):
        code, report = audit(*options)
        assert code == 1 and (report["problem"]["seq"], report["problem"]["kind"]) == (3, "cut_tail"), report
        assert report["problem"]["detail"] == (
            f"the output metadata of Dagster run {rolled.run_id} names entry 3 ({head.entry_hash}) but the ledger's "
            "head is entry 2: entries 3..3 were cut off the tail and the head row moved back")

    monkeypatch.delenv("DAGSTER_HOME")
    code, output = audit("--with-runs")
    assert code == 2 and "set DAGSTER_HOME to the deployment's Dagster home, or leave out --with-runs" in output
