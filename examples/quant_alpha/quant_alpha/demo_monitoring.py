"""The demo's monitoring part: one stale feature pages on-call and resolves when filled; a regime change in
the real 2012 tape reaches research as a report and never pages.

The demo replays March-June 2012 with its own clock (the infra sensor judges "now" by it) and evaluates
the two sensors as the daemon would (``evaluate_tick``), launching the runs they request on the instance.
It drives the days itself rather than through the daily schedule, so its Definitions do not watch the
scheduled run (``make ui`` does).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import click
import dagster as dg

from ml_platform import DataWindow, FeatureGraph, Lifecycle, Settings
from quant_alpha.features import LABEL_NODE, MODEL_INPUT_NODE
from quant_alpha.project import DRIFT_POLICY, SESSION, SLO, project_definitions

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
STALE_DAY = DataWindow.parse("2012-03-01..2012-03-01")
#: The live months replayed one at a time, the drift sensor evaluated after each.
MONTHS = tuple(DataWindow.parse(w) for w in (
    "2012-03-02..2012-03-31", "2012-04-01..2012-04-30", "2012-05-01..2012-05-31", "2012-06-01..2012-06-29"))


class DemoClock:
    """The time the infra sensor judges at: the demo moves it through 2012."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _outbox(settings: Settings, route: str) -> list[dict]:
    path = Path(settings.outbox_dir) / f"{route}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _queued(settings: Settings, route: str, seen: int) -> list[dict]:
    return [r for r in _outbox(settings, route)[seen:] if r["event"] == "queued"]


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, name: str, cursor: str | None):  # type: ignore[no-untyped-def]
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources=dict(defs.resources or {}))
    return defs.resolve_sensor_def(name).evaluate_tick(context)


def _launch(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest,
            job: str) -> dg.ExecuteInProcessResult:
    config = {**(request.run_config or {}), **QUIET}
    return defs.resolve_job_def(job).execute_in_process(run_config=config, instance=instance, tags=request.tags)


def run_monitoring(settings: Settings, graph: FeatureGraph, instance: dg.DagsterInstance, model_name: str,
                   say: Callable[[str], None]) -> None:
    """The stale-feature page and its resolve, then the drift report; prints what each route received."""
    close = SESSION.close_of(STALE_DAY.start)
    clock = DemoClock(close + dt.timedelta(minutes=SLO.freshness_minutes + 30))
    defs = project_definitions(settings, graph, model_name, clock=clock, watch_schedule=False)
    life = Lifecycle(defs, graph, instance, log_level="CRITICAL")
    pager_seen, research_seen = len(_outbox(settings, "pager")), len(_outbox(settings, "research"))

    say(f"infra: {STALE_DAY.start} closes at {close:%H:%M} UTC; the day's partitions are due "
        f"{SLO.freshness_minutes} min later. The label feed is late: {LABEL_NODE} is not materialized")
    life.features(STALE_DAY, targets=[MODEL_INPUT_NODE])
    life.live(STALE_DAY, model_name, targets=["live_signals"])
    click.echo(f"  materialized {STALE_DAY.start}: market data, features, live signals; not {LABEL_NODE} "
               "(nor live_pnl, which books the label)")
    click.echo(f"  the infra sensor judges at {clock.now:%Y-%m-%d %H:%M} UTC")
    tick = _tick(defs, instance, "infra_freshness_sensor", None)
    if not tick.run_requests:
        raise click.ClickException(f"the infra sensor launched nothing: {tick.skip_message}")
    result = _launch(defs, instance, tick.run_requests[0], "infra_freshness_job")
    checks = result.get_asset_check_evaluations()
    failed = [e for e in checks if not e.passed]
    click.echo(f"  infra_freshness_job: {len(checks)} checks, {len(failed)} failed:")
    for e in failed:
        click.echo(f"    {e.asset_key.to_user_string()}/{e.check_name}: {e.metadata['summary'].value}")
    pages = _queued(settings, "pager", pager_seen)
    click.echo(f"  pager route (on-call; PagerDuty when a routing key is set, here the outbox "
               f"{Path(settings.outbox_dir) / 'pager.jsonl'}):")
    for page in pages:
        click.echo(f"    {page['action']:<8} dedup_key {page['key']}")
    again = _tick(defs, instance, "infra_freshness_sensor", tick.cursor)
    click.echo(f"  next tick: {again.skip_message}")

    click.echo(f"  the feed arrives: materialize {LABEL_NODE} and live_pnl for {STALE_DAY.start}")
    clock.now += dt.timedelta(minutes=40)
    life.features(STALE_DAY, targets=[LABEL_NODE])
    life.live(STALE_DAY, model_name, targets=["live_pnl"])
    fill = _tick(defs, instance, "infra_freshness_sensor", tick.cursor)
    if not fill.run_requests:
        raise click.ClickException(f"the infra sensor launched nothing after the fill: {fill.skip_message}")
    healed = _launch(defs, instance, fill.run_requests[0], "infra_freshness_job")
    click.echo(f"  infra_freshness_job: {sum(e.passed for e in healed.get_asset_check_evaluations())} of "
               f"{len(healed.get_asset_check_evaluations())} checks pass")
    for page in _queued(settings, "pager", pager_seen)[len(pages):]:
        click.echo(f"    {page['action']:<8} dedup_key {page['key']}")
    pager_seen = len(_outbox(settings, "pager"))
    click.echo(f"  research route received {len(_queued(settings, 'research', research_seen))} alerts (infra never "
               "reaches research)")

    say(f"alpha drift: the champion's live returns against its validation window (DriftPolicy window "
        f"{DRIFT_POLICY.window_days} days, judged from {DRIFT_POLICY.min_days})")
    cursor = None
    for month in MONTHS:
        life.features(month)
        life.live(month, model_name)
        tick = _tick(defs, instance, "alpha_drift_sensor", cursor)
        cursor = tick.cursor
        evaluation = next((e for e in tick.asset_events if isinstance(e, dg.AssetCheckEvaluation)), None)
        verdict = "no evaluation" if evaluation is None else (
            "within the validated profile" if evaluation.passed else "DRIFT (WARN check, recorded by the sensor)")
        click.echo(f"  live through {month.end}: alpha_drift check {verdict}")
        if tick.run_requests:
            assert evaluation is not None
            click.echo(f"    {evaluation.description}")
            report = _launch(defs, instance, tick.run_requests[0], "alpha_drift_job")
            meta = report.get_step_success_events()[0].step_key if report.success else None
            click.echo(f"  alpha_drift_job ({meta}): research report written beside {model_name} in MLflow")
            for alert in _queued(settings, "research", research_seen):
                click.echo(f"    research route: {alert['alert']['type']} {alert['alert']['key']} (outbox "
                           f"{Path(settings.outbox_dir) / 'research.jsonl'}; Slack when a webhook is set)")
                click.echo(f"      report {alert['alert'].get('report_ref')}")
            break
    else:
        click.echo("  no drift found over the replayed months")
    click.echo(f"  pager route received {len(_queued(settings, 'pager', pager_seen))} pages for it (alpha drift never "
               "pages)")
