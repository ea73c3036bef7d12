"""Promotion through the gates on a real Dagster instance and real MLflow on SQLite."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from ml_platform.errors import ConfigurationError
from ml_platform.promotion import PromotionPolicy
from ml_platform.promotion.job import JOB_MODEL_TAG, OP_NAMES
from ml_platform_tests.promotion.conftest import MODEL, RATIONALE, Project, failed_gate, ran

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _file(project: Project, ref: str) -> Path:
    run_id, _, path = ref[len("runs:/"):].partition("/")
    root = project.registry.client.get_run(run_id).info.artifact_uri
    return Path(root[len("file://"):]) / path


def test_first_promotion_passes_and_records_report_and_rationale(project: Project) -> None:
    v1 = project.register()
    result = project.run(v1)
    assert result.success, failed_gate(result)
    head = project.head()
    assert head.to_version == v1 and head.from_version is None and head.approver == "bob"
    assert project.alias() == v1
    report = _file(project, head.report_ref)
    assert "sha256:" + __import__("hashlib").sha256(report.read_bytes()).hexdigest() == head.report_sha256
    data = json.loads(report.read_text())
    assert data["incumbent"] is None and data["challenger_version"] == v1
    assert report.with_name("report.png").read_bytes()[:4] == b"\x89PNG"
    assert "<table" in report.with_name("report.html").read_text()
    rationale = _file(project, head.rationale_ref)
    assert "sha256:" + __import__("hashlib").sha256(rationale.read_bytes()).hexdigest() == head.rationale_sha256
    meta = json.loads(rationale.with_name("rationale.json").read_text())
    assert meta["author"] and meta["recorded_at"] and meta["approver"] == "bob"
    md = result.output_for_node("promotion_report").report_markdown
    assert "| sharpe |" in md
    # the move is anchored outside the ledger's tables: in the run's event and on the registered model
    [output] = [e for e in result.all_events if e.is_successful_output and e.step_key == "record_promotion"]
    anchored = {k: getattr(v, "value", v) for k, v in output.step_output_data.metadata.items()}
    assert (anchored["ml_platform/model_name"], anchored["ledger_seq"], anchored["entry_hash"]) == (
        MODEL, 1, head.entry_hash)
    assert project.registry.model_tags(MODEL)["ml_platform.ledger.head"] == f"1:{head.entry_hash}"


def test_second_promotion_compares_with_the_incumbent_on_the_same_dates(project: Project) -> None:
    v1, v2 = project.register((0.01, 0.0)), project.register()  # v2 (the fitted ridge) uses both features
    assert project.run(v1).success
    result = project.run(v2, tail="Second promotion of the tuned coefficients.")
    assert result.success, failed_gate(result)
    head = project.head()
    assert (head.from_version, head.to_version, head.override) == (v1, v2, False)
    data = json.loads(_file(project, head.report_ref).read_text())
    assert data["incumbent_version"] == v1 and set(data["differences"]) >= {"sharpe", "ic_mean", "max_drawdown"}
    assert data["challenger"]["window"] == data["incumbent"]["window"]


@pytest.mark.parametrize(("rationale", "needle"), [
    ("", "empty"), ("TODO", "placeholder"), ("n/a", "placeholder"),
    ("Lorem ipsum dolor sit amet " * 10, "placeholder"), ("Better Sharpe.", "characters"),
])
def test_rationale_gate_refuses_and_nothing_moves(project: Project, rationale: str, needle: str) -> None:
    v1 = project.register()
    gate, message = failed_gate(project.run(v1, rationale=rationale))
    assert gate == "rationale" and needle in message and "promotion gate 'rationale'" in message
    assert project.head() is None and project.alias() is None


def test_a_copied_rationale_is_refused(project: Project) -> None:
    v1, v2 = project.register(), project.register((0.011, -0.004))
    text = RATIONALE.format(v="X", extra="")
    assert project.run(v1, rationale=text).success
    before = project.head()
    gate, message = failed_gate(project.run(v2, rationale=text))
    assert gate == "rationale" and "copy" in message
    assert project.head() == before and project.alias() == v1


def test_four_eyes_refuses_the_trainer_as_approver(project: Project) -> None:
    v1 = project.register(trained_by="alice")
    for approver in ("alice", " Alice ", ""):
        result = project.run(v1, approver=approver)
        gate, _ = failed_gate(result)
        assert gate == "four_eyes"
        assert "record_promotion" not in ran(result)
    assert project.head() is None and project.alias() is None


def test_contract_gate_refuses_another_feature_graph(project: Project) -> None:
    v1 = project.register(graph_hash="sha256:" + "ab" * 32)
    gate, message = failed_gate(project.run(v1))
    assert gate == "contract" and "feature_graph_hash" in message
    assert project.head() is None and project.alias() is None


def test_thresholds_refuse_a_worse_challenger_unless_overridden(project: Project) -> None:
    v1, bad = project.register(), project.register((-0.01, 0.004))  # the sign flipped: much worse
    assert project.run(v1).success
    before = project.head()
    gate, message = failed_gate(project.run(bad, tail="Challenger for regime B."))
    assert gate == "thresholds" and "sharpe" in message
    assert project.head() == before and project.alias() == v1
    result = project.run(bad, tail="\nOVERRIDE: regime change expected, the desk accepts the lower Sharpe.")
    assert result.success, failed_gate(result)
    head = project.head()
    assert head.to_version == bad and head.override is True


def test_report_gate_refuses_the_current_champion(project: Project) -> None:
    v1 = project.register()
    assert project.run(v1).success
    before = project.head()
    gate, message = failed_gate(project.run(v1, tail="Again."))
    assert gate == "report" and "already the champion" in message
    assert project.head() == before


def test_unknown_version_or_model_fails_before_anything_moves(project: Project) -> None:
    project.register()
    gate, message = failed_gate(project.run("99"))
    assert gate == "report" and "99" in message
    assert project.head() is None


@pytest.mark.parametrize("bad", [{"max_sharpe_drop": -1.0}, {"max_ic_mean_drop": 2.0}, {"min_rationale_chars": 0},
                                 {"max_drawdown_increase": float("nan")}, {"override_prefix": ""}])
def test_policy_out_of_range_is_a_configuration_error(bad: dict) -> None:
    with pytest.raises(ConfigurationError, match="PromotionPolicy"):
        PromotionPolicy(**bad)


def test_the_job_is_the_gates_in_order_each_handing_the_candidate_on(project: Project) -> None:
    job = project.defs.get_job_def("promote_model")
    assert [node.name for node in job.graph.nodes_in_topological_order] == list(OP_NAMES)
    for before, after in itertools.pairwise(OP_NAMES):
        inputs = job.graph.dependency_structure.input_to_upstream_outputs_for_node(after)
        assert {(i.input_name, o.node_name) for i, outs in inputs.items() for o in outs} == {("candidate", before)}
    assert job.tags[JOB_MODEL_TAG] == MODEL
    assert set(job.graph.node_named("promotion_report").definition.config_schema.config_type.fields) >= {
        "model", "version", "approver", "rationale"}
