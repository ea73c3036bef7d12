"""Bimodal monitoring end to end on a real Dagster instance, a real MLflow store and real sensor evaluation.

A desk project (not the example) is materialized, trained, promoted and served. Local HTTP servers
stand in for PagerDuty and Slack (their URLs are settings). Infra staleness and a contract-breaking
schema page on-call and never reach research; a regime change in the market reaches research and
never pages; recoveries resolve; a re-evaluation after a restart sends nothing twice.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ml_platform import DataWindow, Lifecycle, ModelRegistry, PinnedStore, Settings
from ml_platform.champions.service import ChampionService
from ml_platform.lifecycle import range_tags
from ml_platform.monitoring.drift import DriftPolicy
from ml_platform_tests.harness.mlflow_template import seed_tracking_uri
from ml_platform_tests.monitoring.http_stub import HttpStub
from ml_platform_tests.monitoring.project import MODEL, PREFIX, build_graph, desk_definitions

POLICY = DriftPolicy(window_days=20, min_days=10, min_validation_days=40)

pytestmark = pytest.mark.slow  # an end-to-end lifecycle (materialize, train, promote, serve) in its fixture


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2023, 9, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Desk:
    settings: Settings
    defs: dg.Definitions
    life: Lifecycle
    instance: dg.DagsterInstance
    registry: ModelRegistry
    store: PinnedStore
    pager: HttpStub
    slack: HttpStub
    clock: Clock
    version: str
    tmp: Path
    _seen: tuple[int, int] = (0, 0)

    def sensor(self, name: str, cursor: str | None = None, defs: dg.Definitions | None = None):  # type: ignore[no-untyped-def]
        """One tick, evaluated as the daemon does (``evaluate_tick``), with the Definitions' resources."""
        defs = defs or self.defs
        context = dg.build_sensor_context(instance=self.instance, cursor=cursor, definitions=defs,
                                          resources=dict(defs.resources or {}))
        return defs.get_sensor_def(name).evaluate_tick(context)

    def launch(self, request: dg.RunRequest, job: str) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def(job).execute_in_process(
            run_config=request.run_config, instance=self.instance, tags=request.tags, raise_on_error=True)

    def pages(self) -> list[dict]:
        return self.pager.bodies()[self._seen[0]:]

    def research(self) -> list[dict]:
        return self.slack.bodies()[self._seen[1]:]

    def outbox(self, route: str) -> list[dict]:
        path = self.settings.outbox_dir / f"{route}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def reset_routes(self) -> None:
        """Each test starts with empty outboxes and counts only the requests it caused."""
        shutil.rmtree(self.settings.outbox_dir, ignore_errors=True)
        self._seen = (len(self.pager.requests), len(self.slack.requests))


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp("desk")
    (tmp / "dagster").mkdir()
    pager, slack = HttpStub(default=202).start(), HttpStub(default=200).start()
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test(temp_dir=str(tmp / "dagster")) as instance:
        env.setenv("DESK_PAGERDUTY_KEY", "r" * 32)
        env.setenv("DESK_SLACK_WEBHOOK", slack.url_for("/services/T0/B0/desk"))
        settings = Settings.local(tmp / ".ml_platform", pagerduty_events_url=pager.url_for("/v2/enqueue"),
                                  pagerduty_routing_key_env="DESK_PAGERDUTY_KEY", slack_webhook_env="DESK_SLACK_WEBHOOK")
        seed_tracking_uri(mlflow_template, settings.tracking_uri)  # migrated once per session, not here
        clock = Clock()
        defs = desk_definitions(settings, clock, drift_policy=POLICY)
        life = Lifecycle(defs, build_graph(), instance, key_prefix=PREFIX)
        life.features(DataWindow.parse("2023-01-02..2023-09-29"))
        life.training_set(DataWindow.parse("2023-01-02..2023-06-30"))
        trained = life.train(trained_by="alice", validation_fraction=0.4)
        version = trained.asset_materializations_for_node(f"{PREFIX}__trained_model")[-1] \
            .metadata["ml_platform/model_version"].value
        registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
        service = ChampionService.open(registry)
        service.promote(MODEL, version, actor="ci", approver="bob", reason="the desk's first champion")
        service.close()
        life.live(DataWindow.parse("2023-07-03..2023-08-31"))  # the regime the model was validated on
        try:
            yield Desk(settings, defs, life, instance, registry, PinnedStore(settings.storage), pager, slack, clock,
                       str(version), tmp)
        finally:
            pager.stop()
            slack.stop()


def launched(tick):  # type: ignore[no-untyped-def]
    assert tick.run_requests, tick.skip_message
    return tick


def skipped(tick):  # type: ignore[no-untyped-def]
    assert not tick.run_requests and tick.skip_message, tick.run_requests
    return tick


# First: it needs the module's live PnL to end in the regime the model was validated on.
def test_a_regime_change_reaches_research_with_a_report_and_never_pages(desk: Desk) -> None:
    desk.reset_routes()
    life = desk.life
    stable = desk.sensor("alpha_drift_sensor")
    assert not stable.run_requests and len(stable.asset_events) == 1
    evaluation = stable.asset_events[0]
    assert isinstance(evaluation, dg.AssetCheckEvaluation)
    assert evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.check_name == "alpha_drift" and evaluation.asset_key == dg.AssetKey(["desk", "live_pnl"])

    life.live(DataWindow.parse("2023-09-01..2023-09-29"))  # the signal's payoff flipped on 2023-09-01
    shifted = launched(desk.sensor("alpha_drift_sensor", cursor=stable.cursor))
    drift = shifted.asset_events[0]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert "sharpe" in drift.metadata["statistics"].value["findings"]
    assert len(shifted.run_requests) == 1
    assert desk.launch(shifted.run_requests[0], "alpha_drift_job").success
    research = desk.research()
    assert len(research) == 1 and MODEL in json.dumps(research[0])
    assert desk.pages() == [] and desk.outbox("pager") == []
    queued = [r for r in desk.outbox("research") if r["event"] == "queued"]
    ref = queued[0]["alert"]["report_ref"]
    assert ref.startswith("runs:/") and ref.endswith("report.html")
    run_id = ref.split("/")[1]
    folder = ref.split("/", 2)[2].rsplit("/", 1)[0]
    from mlflow.tracking import MlflowClient

    names = {f.path.rsplit("/", 1)[-1] for f in MlflowClient(desk.settings.tracking_uri).list_artifacts(run_id, folder)}
    assert {"report.md", "report.html", "report.json", "report.png"} <= names

    # the same episode on the next day's PnL: the check is recorded again, no second report
    life.features(DataWindow.parse("2023-10-02..2023-10-02"), targets=["inputs", "fwd_ret"])
    life.live(DataWindow.parse("2023-10-02..2023-10-02"))
    same = desk.sensor("alpha_drift_sensor", cursor=shifted.cursor)
    assert not same.run_requests and not same.asset_events[0].passed


def test_a_stale_feature_pages_on_call_resolves_when_filled_and_never_reaches_research(desk: Desk) -> None:
    desk.reset_routes()
    life = desk.life
    life.features(DataWindow.parse("2023-10-02..2023-10-03"), targets=["inputs"])
    life.features(DataWindow.parse("2023-10-02..2023-10-02"), targets=["fwd_ret"])
    life.run(["live_signals"], tags=range_tags(life.calendar, DataWindow.parse("2023-09-01..2023-10-03")))
    life.run(["live_pnl"], tags=range_tags(life.calendar, DataWindow.parse("2023-09-01..2023-10-02")))
    # Tuesday 2023-10-03 17:30 New York: the close (16:00 EDT) + 60 min has passed; fwd_ret's 10-03 is missing
    desk.clock.now = dt.datetime(2023, 10, 3, 21, 30, tzinfo=dt.UTC)

    tick = launched(desk.sensor("infra_freshness_sensor"))
    assert len(tick.run_requests) == 1
    result = desk.launch(tick.run_requests[0], "infra_freshness_job")
    failed = {(e.asset_key.to_user_string(), e.check_name) for e in result.get_asset_check_evaluations() if not e.passed}
    assert failed == {("desk/fwd_ret", "freshness"), ("desk/live_pnl", "freshness")}
    pages = desk.pages()
    assert sorted((p["event_action"], p["dedup_key"]) for p in pages) == [
        ("trigger", "freshness:desk/fwd_ret"), ("trigger", "freshness:desk/live_pnl")]
    assert "2023-10-03 is missing" in pages[0]["payload"]["summary"]
    assert desk.research() == [] and desk.outbox("research") == []

    # the next tick, and a tick after a restart (new Definitions: new resources, new route objects): nothing new
    again = skipped(desk.sensor("infra_freshness_sensor", cursor=tick.cursor))
    assert "already paged" in again.skip_message
    restarted = desk_definitions(desk.settings, desk.clock, drift_policy=POLICY)
    skipped(desk.sensor("infra_freshness_sensor", cursor=tick.cursor, defs=restarted))
    assert len(desk.pages()) == 2

    # filled: the sensor launches the checks again and both incidents resolve
    life.features(DataWindow.parse("2023-10-03..2023-10-03"), targets=["fwd_ret"])
    life.run(["live_pnl"], tags=range_tags(life.calendar, DataWindow.parse("2023-10-03..2023-10-03")))
    fill = launched(desk.sensor("infra_freshness_sensor", cursor=tick.cursor))
    assert len(fill.run_requests) == 1
    healed = desk.launch(fill.run_requests[0], "infra_freshness_job")
    assert all(e.passed for e in healed.get_asset_check_evaluations())
    resolves = [p for p in desk.pages() if p["event_action"] == "resolve"]
    assert sorted(p["dedup_key"] for p in resolves) == ["freshness:desk/fwd_ret", "freshness:desk/live_pnl"]
    skipped(desk.sensor("infra_freshness_sensor", cursor=fill.cursor))
    assert desk.research() == []


@pytest.mark.parametrize("now", [dt.datetime(2023, 9, 30, 15, tzinfo=dt.UTC), dt.datetime(2023, 9, 4, 23, tzinfo=dt.UTC)],
                         ids=["saturday", "labor-day-holiday"])
def test_a_weekend_or_holiday_does_not_page(desk: Desk, now: dt.datetime) -> None:
    desk.reset_routes()
    life = desk.life
    life.run(["live_signals", "live_pnl"], tags=range_tags(life.calendar, DataWindow.parse("2023-09-01..2023-09-29")))
    desk.clock.now = now
    tick = skipped(desk.sensor("infra_freshness_sensor"))
    assert "0 failing" in tick.skip_message
    assert desk.pages() == []


def test_a_schema_change_pages(desk: Desk) -> None:
    desk.reset_routes()
    wide = build_graph(wide=True)
    wide_defs = desk_definitions(desk.settings, desk.clock, graph=wide, drift_policy=POLICY)
    Lifecycle(wide_defs, wide, desk.instance, key_prefix=PREFIX).features(DataWindow.parse("2023-10-04..2023-10-04"),
                                                                          targets=["inputs"])
    desk.clock.now = dt.datetime(2023, 10, 4, 21, 30, tzinfo=dt.UTC)
    tick = launched(desk.sensor("infra_freshness_sensor", defs=wide_defs))
    result = wide_defs.resolve_job_def("infra_freshness_job").execute_in_process(
        run_config=tick.run_requests[0].run_config, instance=desk.instance)
    schema = [e for e in result.get_asset_check_evaluations() if e.check_name == "contract_schema"]
    assert len(schema) == 1 and not schema[0].passed
    assert "spread" in str(schema[0].metadata["details"].value) and "feature_graph_hash" in str(
        schema[0].metadata["details"].value)
    assert "schema:desk/inputs" in [p["dedup_key"] for p in desk.pages()]
    assert desk.research() == []
    # the narrow code back: the newest partition matches again
    desk.life.features(DataWindow.parse("2023-10-04..2023-10-04"), targets=["inputs"])


def test_a_failed_scheduled_run_pages_and_its_successful_rerun_resolves(desk: Desk) -> None:
    """The daily job's run for the expected day fails (the features' code changed under the champion):
    the scheduled_run check pages; a successful re-run resolves it."""
    desk.reset_routes()
    scheduled = desk_definitions(desk.settings, desk.clock, drift_policy=POLICY, scheduled=True)
    wide = desk_definitions(desk.settings, desk.clock, graph=build_graph(wide=True), drift_policy=POLICY,
                            scheduled=True)
    desk.clock.now = dt.datetime(2023, 10, 5, 21, 30, tzinfo=dt.UTC)  # Thursday, past the close + 60 min
    daily = scheduled.get_schedule_def("desk_daily_daily")
    context = dg.build_schedule_context(instance=desk.instance, repository_def=scheduled.get_repository_def(),
                                        scheduled_execution_time=dt.datetime(2023, 10, 5, 20, 15, tzinfo=dt.UTC))
    [request] = daily.evaluate_tick(context).run_requests
    assert request.partition_key == "2023-10-05"
    failed = wide.resolve_job_def("desk_daily").execute_in_process(
        instance=desk.instance, partition_key="2023-10-05", tags=request.tags, raise_on_error=False)
    assert not failed.success  # live_signals refused the champion: its contract does not match the new code
    tick = launched(desk.sensor("infra_freshness_sensor", defs=scheduled))
    result = scheduled.resolve_job_def("infra_freshness_job").execute_in_process(
        run_config=tick.run_requests[0].run_config, instance=desk.instance)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "scheduled_run"]
    assert not check.passed and "ended FAILURE" in check.description
    assert "scheduled_run:job/desk_daily" in [p["dedup_key"] for p in desk.pages() if p["event_action"] == "trigger"]

    rerun = scheduled.resolve_job_def("desk_daily").execute_in_process(
        instance=desk.instance, partition_key="2023-10-05", tags=request.tags)
    assert rerun.success
    again = launched(desk.sensor("infra_freshness_sensor", cursor=tick.cursor, defs=scheduled))
    healed = scheduled.resolve_job_def("infra_freshness_job").execute_in_process(
        run_config=again.run_requests[0].run_config, instance=desk.instance)
    assert all(e.passed for e in healed.get_asset_check_evaluations()), [
        e.description for e in healed.get_asset_check_evaluations() if not e.passed]
    assert "scheduled_run:job/desk_daily" in [p["dedup_key"] for p in desk.pages() if p["event_action"] == "resolve"]
    assert desk.research() == []


def test_a_ledger_head_behind_its_anchor_pages_and_the_restored_anchor_resolves(desk: Desk) -> None:
    """The champion ledger's anchor names an entry the ledger no longer has (what a cut tail leaves): the
    ledger_anchor check pages on-call naming `audit verify`; the anchor restored, it resolves."""
    desk.reset_routes()
    head = desk.registry.model_tags(MODEL)["ml_platform.ledger.head"]
    seq, _, entry_hash = head.partition(":")
    desk.registry.write_model_tag(MODEL, "ml_platform.ledger.head", f"{int(seq) + 1}:{entry_hash}")
    try:
        tick = launched(desk.sensor("infra_freshness_sensor"))
        result = desk.launch(tick.run_requests[0], "infra_freshness_job")
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "ledger_anchor"]
        assert not check.passed and "(cut_tail)" in check.description, check.description
        assert f"run `ml-platform audit verify {MODEL}`" in check.description
        key = f"ledger_anchor:ledger/{MODEL}"
        assert key in [p["dedup_key"] for p in desk.pages() if p["event_action"] == "trigger"]
    finally:
        desk.registry.write_model_tag(MODEL, "ml_platform.ledger.head", head)
    again = launched(desk.sensor("infra_freshness_sensor", cursor=tick.cursor))
    healed = desk.launch(again.run_requests[0], "infra_freshness_job")
    [check] = [e for e in healed.get_asset_check_evaluations() if e.check_name == "ledger_anchor"]
    assert check.passed, check.description
    assert key in [p["dedup_key"] for p in desk.pages() if p["event_action"] == "resolve"]
    assert desk.research() == []


def test_while_the_pager_is_down_the_sensor_never_says_already_paged(desk: Desk) -> None:
    """Last: it leaves the desk a day behind. Pages the endpoint refuses (503) stay pending, and the next
    tick says they are not delivered instead of "all already paged"."""
    desk.reset_routes()
    desk.pager.answer_always(503)
    try:
        desk.clock.now = dt.datetime(2023, 10, 6, 21, 30, tzinfo=dt.UTC)  # Friday 10-06: nothing written for it
        tick = launched(desk.sensor("infra_freshness_sensor"))
        desk.launch(tick.run_requests[0], "infra_freshness_job")
        failing = {p["dedup_key"] for p in desk.pages()}
        assert failing and {r["event"] for r in desk.outbox("pager")} == {"queued", "failed"}

        again = skipped(desk.sensor("infra_freshness_sensor", cursor=tick.cursor))

        assert "already paged" not in again.skip_message
        assert f"{len(failing)} NOT delivered yet" in again.skip_message and "503" in again.skip_message
    finally:
        desk.pager.answer_always(202)
