"""The Dagster side of monitoring: asset checks, two sensors, two jobs, two routes, kept apart by design.

How it works, and why: docs/architecture.md, "ml_platform/monitoring/definitions.py".
"""


import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ml_platform.errors import ConfigurationError, GraphError, MLPlatformError
from ml_platform.features.assets import FeatureAssetsTranslator
from ml_platform.features.calendar import Calendar
from ml_platform.features.graph import FeatureGraph
from ml_platform.model_assets import LIVE_PNL, LIVE_SIGNALS
from ml_platform.monitoring import observe
from ml_platform.monitoring.alerts import InfraCheckKind
from ml_platform.monitoring.dispatch import dispatch_infra, research_report
from ml_platform.monitoring.drift import DriftPolicy, finding_of
from ml_platform.monitoring.infra import InfraOutcome, InfraSLO, MarketSession
from ml_platform.monitoring.status import paging_summary
from ml_platform.monitoring.wiring import MonitoredAsset, MonitoringWiring

__all__ = ["ALPHA_DRIFT_CHECK", "INFRA_CHECK_NAMES", "Monitoring", "build_monitoring"]

ALPHA_DRIFT_CHECK = "alpha_drift"
INFRA_CHECK_NAMES = {InfraCheckKind.FRESHNESS: "freshness", InfraCheckKind.LATENCY: "latency",
                     InfraCheckKind.SCHEMA: "contract_schema", InfraCheckKind.SCHEDULED_RUN: "scheduled_run",
                     InfraCheckKind.LEDGER_ANCHOR: "ledger_anchor"}
MONITORING_TAG = "ml_platform/monitoring"
_INFRA_NEEDS = {"feature_store", "model_registry", "pager"}
_DRIFT_NEEDS = {"feature_store", "model_registry", "research"}


@dataclass(frozen=True)
class Monitoring:
    """Everything :func:`build_monitoring` made; give its parts to ``build_definitions``.

    Attributes:
        asset_checks: The infra checks and the alpha drift check.
        jobs: ``infra_freshness_job`` and ``alpha_drift_job``.
        sensors: ``infra_freshness_sensor`` and ``alpha_drift_sensor``.
        wiring: The monitored project as plain values.
    """

    asset_checks: tuple[dg.AssetChecksDefinition, ...]
    jobs: tuple[Any, ...]
    sensors: tuple[dg.SensorDefinition, ...]
    wiring: MonitoringWiring


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _as_of(text: str, clock: Callable[[], dt.datetime]) -> dt.datetime:
    if not text:
        return clock()
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"as_of must be an ISO-8601 time with its offset, got {text!r}") from exc
    if moment.tzinfo is None:
        raise ConfigurationError(f"as_of must carry its UTC offset (e.g. 2024-03-05T22:00:00+00:00), got {text!r}")
    return moment


def _wiring(graph: FeatureGraph, translator: FeatureAssetsTranslator, *, model_input: str, label: str,
            label_column: str, training_node: str, model_name: str, monitored: Sequence[str] | None,
            scheduled_job: str | None, session: MarketSession, slo: InfraSLO,
            drift_policy: DriftPolicy) -> MonitoringWiring:
    nodes = {n.key: n for n in graph}

    def node(role: str, key: str, *, partitioned: bool) -> MonitoredAsset:
        if key not in nodes:
            raise GraphError(f"build_monitoring: {role}={key!r} is not a node of the graph; its nodes are "
                             f"{sorted(nodes)}")
        if nodes[key].spec.partitioned != partitioned:
            raise GraphError(f"build_monitoring: {role}={key!r} must be a {'' if partitioned else 'non-'}partitioned "
                             "node")
        path = translator.store_key(nodes[key])
        return MonitoredAsset(path, path)

    def platform(name: str) -> MonitoredAsset:
        path = "/".join([*translator.key_prefix, name])
        return MonitoredAsset(path, path)

    if not isinstance(label_column, str) or not label_column:
        raise ConfigurationError(f"label_column must name the label node's value column, got {label_column!r}")
    chosen = [n.key for n in graph if n.spec.partitioned] if monitored is None else list(monitored)
    if isinstance(monitored, str):
        raise ConfigurationError("monitored must be a list of node keys, not one string")
    watched = [node("monitored", k, partitioned=True) for k in chosen]
    live_signals, live_pnl = platform(LIVE_SIGNALS), platform(LIVE_PNL)
    return MonitoringWiring(
        model_name=model_name, keys=graph.keys, label_column=label_column,
        monitored=(*watched, live_signals, live_pnl), model_input=node("model_input", model_input, partitioned=True),
        label=node("label", label, partitioned=True), training=node("training_node", training_node, partitioned=False),
        live_signals=live_signals, live_pnl=live_pnl, scheduled_job=scheduled_job, session=session, slo=slo,
        drift_policy=drift_policy)


def _check_spec_of(wiring: MonitoringWiring, outcome: InfraOutcome) -> dg.AssetCheckKey:
    on_live = outcome.check in (InfraCheckKind.SCHEDULED_RUN, InfraCheckKind.LEDGER_ANCHOR)
    asset = wiring.live_signals.asset if on_live else outcome.asset
    return dg.AssetCheckKey(observe.asset_key(asset), INFRA_CHECK_NAMES[outcome.check])


def _check_metadata(outcome: InfraOutcome, delivery: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"summary": outcome.summary, "details": dg.MetadataValue.json(dict(outcome.details))}
    if outcome.partition:
        meta["partition"] = outcome.partition
    if outcome.skipped:
        meta["skipped"] = outcome.skipped
    if delivery:
        meta["pager"] = delivery
    return meta


def _infra_checks(wiring: MonitoringWiring, calendar: Calendar, clock: Callable[[], dt.datetime],
                  name: str) -> dg.AssetChecksDefinition:
    specs = []
    for asset in wiring.monitored:
        for kind in (InfraCheckKind.FRESHNESS, InfraCheckKind.LATENCY):
            specs.append(dg.AssetCheckSpec(INFRA_CHECK_NAMES[kind], asset=observe.asset_key(asset.asset), blocking=False,
                                           description=f"infra ({kind}): pages on-call through the pager route"))
    specs.append(dg.AssetCheckSpec(INFRA_CHECK_NAMES[InfraCheckKind.SCHEMA], asset=observe.asset_key(wiring.model_input.asset),
                                   blocking=False, description="infra: the newest partition matches the champion's "
                                   "deploy contract (feature graph, keys, schema)"))
    specs.append(dg.AssetCheckSpec(INFRA_CHECK_NAMES[InfraCheckKind.LEDGER_ANCHOR],
                                   asset=observe.asset_key(wiring.live_signals.asset), blocking=False,
                                   description="infra: the champion ledger's head agrees with its anchor on the "
                                   "MLflow registered model (no cut tail, no moved-back head)"))
    if wiring.scheduled_job is not None:
        specs.append(dg.AssetCheckSpec(INFRA_CHECK_NAMES[InfraCheckKind.SCHEDULED_RUN],
                                       asset=observe.asset_key(wiring.live_signals.asset), blocking=False,
                                       description=f"infra: the scheduled {wiring.scheduled_job} run for the expected "
                                       "partition succeeded"))

    infra_job = "infra_freshness_job"

    @dg.multi_asset_check(name=name, specs=specs, required_resource_keys=_INFRA_NEEDS, can_subset=True,
                          config_schema={"as_of": dg.Field(str, default_value="", description=(
                              "Judge as of this ISO-8601 time (with offset); empty: now."))},
                          description="Infra checks of the feature pipeline; failures page on-call.")
    def infra_checks(context: dg.AssetCheckExecutionContext):  # type: ignore[no-untyped-def]
        now = _as_of(context.op_execution_context.op_config["as_of"], clock)
        store = context.resources.feature_store.get_store()
        registry = context.resources.model_registry.get_registry()
        outcomes = observe.infra_outcomes(context.instance, store, registry, wiring, calendar, now)
        selected = context.op_execution_context.selected_asset_check_keys
        # Only infra_freshness_job pages. Dagster also runs these checks when a run materializes the assets
        # they watch (a UI materialization, a backfill): there they are recorded, and the sensor pages
        # whatever is still failing through infra_freshness_job.
        paging = context.op_execution_context.job_name == infra_job and len(selected) == len(specs)
        deliveries = dispatch_infra(context.resources.pager.get_route(), outcomes, now) if paging else {}
        for outcome in outcomes:
            key = _check_spec_of(wiring, outcome)
            if key not in selected:
                continue
            yield dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=outcome.passed,
                                      severity=dg.AssetCheckSeverity.ERROR,
                                      metadata=_check_metadata(outcome, deliveries.get(outcome.key)),
                                      description=outcome.summary)

    return infra_checks


def _infra_sensor(wiring: MonitoringWiring, calendar: Calendar, clock: Callable[[], dt.datetime], job_name: str,
                  check_op: str, interval: int, status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(name="infra_freshness_sensor", job_name=job_name, minimum_interval_seconds=interval,
               required_resource_keys=_INFRA_NEEDS, default_status=status,
               description="Launches infra_freshness_job when the failing infra checks differ from the incidents "
                           "open on the pager (a new failure to page, a recovery to resolve); retries undelivered pages.")
    def infra_freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        now = clock()
        route = context.resources.pager.get_route()
        try:
            route.flush()
            store = context.resources.feature_store.get_store()
            registry = context.resources.model_registry.get_registry()
            outcomes = observe.infra_outcomes(context.instance, store, registry, wiring, calendar, now)
        except (MLPlatformError, OSError) as exc:
            return dg.SkipReason(f"infra checks not evaluated this tick: {exc}")
        failing = sorted(o.key for o in outcomes if not o.passed)
        open_keys = sorted(route.open_incidents())
        if failing == open_keys:
            return dg.SkipReason(paging_summary(route.outbox.read(), failing, len(outcomes)))
        state = hashlib.sha256(json.dumps([failing, open_keys]).encode()).hexdigest()[:16]
        cursor = json.loads(context.cursor) if context.cursor else {"seq": 0}
        if cursor.get("state") == state and now.timestamp() - cursor.get("at", 0) < 600:
            return dg.SkipReason(f"a run for this change ({len(failing)} failing, {len(open_keys)} open) was launched "
                                 "less than 10 minutes ago")
        seq = int(cursor.get("seq", 0)) + 1
        request = dg.RunRequest(run_key=f"infra-{seq}-{state}", tags={MONITORING_TAG: "infra"},
                                run_config={"ops": {check_op: {"config": {"as_of": now.isoformat()}}}})
        return dg.SensorResult(run_requests=[request],
                               cursor=json.dumps({"seq": seq, "state": state, "at": now.timestamp()}))

    return infra_freshness_sensor


def _drift_metadata(observation: observe.DriftObservation) -> dict[str, Any]:
    evaluation = observation.evaluation
    meta: dict[str, Any] = {"summary": evaluation.summary(), "model": observation.model,
                            "version": observation.version or "none",
                            "statistics": dg.MetadataValue.json(evaluation.to_dict())}
    if evaluation.skipped:
        meta["skipped"] = evaluation.skipped
    return meta


def _drift_check(wiring: MonitoringWiring, calendar: Calendar, name: str) -> dg.AssetChecksDefinition:
    spec = dg.AssetCheckSpec(ALPHA_DRIFT_CHECK, asset=observe.asset_key(wiring.live_pnl.asset), blocking=False,
                             description="research (WARN, never pages): the champion's live returns against its "
                                         "validation window")

    @dg.multi_asset_check(name=name, specs=[spec], required_resource_keys={"feature_store", "model_registry"},
                          description="Alpha drift of the champion; findings go to research, never to the pager.")
    def alpha_drift_check(context: dg.AssetCheckExecutionContext):  # type: ignore[no-untyped-def]
        newest = observe.newest_partition(context.instance, wiring.live_pnl, calendar)
        if newest is None:
            yield dg.AssetCheckResult(asset_key=spec.asset_key, check_name=spec.name, passed=True,
                                      severity=dg.AssetCheckSeverity.WARN, metadata={"skipped": "no live PnL yet"})
            return
        observation = observe.observe_drift(context.resources.feature_store.get_store(),
                                      context.resources.model_registry.get_registry(), wiring, calendar, newest)
        yield dg.AssetCheckResult(asset_key=spec.asset_key, check_name=spec.name,
                                  passed=not observation.evaluation.drifted, severity=dg.AssetCheckSeverity.WARN,
                                  metadata=_drift_metadata(observation), description=observation.evaluation.summary())

    return alpha_drift_check


def _drift_sensor(wiring: MonitoringWiring, calendar: Calendar, job_name: str, interval: int,
                  status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    pnl_key = observe.asset_key(wiring.live_pnl.asset)

    @dg.sensor(name="alpha_drift_sensor", job_name=job_name, minimum_interval_seconds=interval,
               required_resource_keys=_DRIFT_NEEDS, default_status=status,
               description="On new live PnL: records the WARN alpha_drift check (no run) and, on a new finding, "
                           "launches alpha_drift_job (research report + research route). Never pages.")
    def alpha_drift_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        cursor = json.loads(context.cursor) if context.cursor else {}
        after = cursor.get("after")
        route = context.resources.research.get_route()
        try:
            route.flush()
            records = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=pnl_key, after_storage_id=after), limit=10_000, ascending=True).records
        except (MLPlatformError, OSError) as exc:
            return dg.SkipReason(f"alpha drift not evaluated this tick: {exc}")
        if not records:
            return dg.SkipReason(f"no new {wiring.live_pnl.asset} materialization")
        newest = observe.newest_of(calendar, (r.partition_key for r in records))
        next_cursor = {**cursor, "after": records[-1].storage_id}
        if newest is None:
            return dg.SensorResult(cursor=json.dumps(next_cursor), skip_reason="live PnL is not partitioned")
        try:
            observation = observe.observe_drift(context.resources.feature_store.get_store(),
                                          context.resources.model_registry.get_registry(), wiring, calendar, newest)
        except (MLPlatformError, OSError) as exc:  # recorded, never a crash loop; the cursor still moves on
            evaluation = dg.AssetCheckEvaluation(asset_key=pnl_key, check_name=ALPHA_DRIFT_CHECK, passed=True,
                                                 severity=dg.AssetCheckSeverity.WARN, blocking=False,
                                                 metadata={"skipped": f"not evaluated: {exc}"})
            return dg.SensorResult(asset_events=[evaluation], cursor=json.dumps(next_cursor))
        drift = observation.evaluation
        event = dg.AssetCheckEvaluation(asset_key=pnl_key, check_name=ALPHA_DRIFT_CHECK, passed=not drift.drifted,
                                        severity=dg.AssetCheckSeverity.WARN, blocking=False,
                                        metadata=_drift_metadata(observation), description=drift.summary())
        finding = finding_of(drift, model=wiring.model_name, version=observation.version) \
            if drift.drifted and observation.version else None
        requests = []
        episode = None if finding is None else f"{finding.model}:{finding.version}"
        next_cursor["episode"] = episode
        if episode is not None and cursor.get("episode") != episode:  # one report per drift episode of a champion
            assert finding is not None
            requests.append(dg.RunRequest(
                run_key=f"drift-{finding.key}-{newest}", tags={MONITORING_TAG: "alpha_drift"},
                run_config={"ops": {"alpha_drift_report": {"config": {"partition": newest}}}}))
        return dg.SensorResult(run_requests=requests, asset_events=[event], cursor=json.dumps(next_cursor))

    return alpha_drift_sensor


def _drift_job(wiring: MonitoringWiring, calendar: Calendar, name: str) -> dg.JobDefinition:
    @dg.op(name="alpha_drift_report", required_resource_keys=_DRIFT_NEEDS, out=dg.Out(dg.Nothing),
           config_schema={"partition": dg.Field(str, description="The newest live PnL partition of the window.")},
           description="Research report of the champion's alpha drift into MLflow, and the finding to research.")
    def alpha_drift_report(context: dg.OpExecutionContext) -> None:
        store = context.resources.feature_store.get_store()
        registry = context.resources.model_registry.get_registry()
        try:
            observation = observe.observe_drift(store, registry, wiring, calendar, context.op_config["partition"])
            outcome = research_report(registry, context.resources.research.get_route(), observation,
                                      created_at=dt.datetime.now(dt.UTC))
        except MLPlatformError as exc:
            raise dg.Failure(description=f"alpha drift report failed: {exc}", allow_retries=False) from exc
        context.add_output_metadata(outcome.metadata())

    @dg.job(name=name, tags={MONITORING_TAG: "alpha_drift"},
            description="Writes the alpha drift research report beside the champion in MLflow and tells research. "
                        "It holds no pager: alpha drift never pages.")
    def alpha_drift_job() -> None:
        alpha_drift_report()

    return alpha_drift_job


def build_monitoring(
    graph: FeatureGraph,
    *,
    partitions_def: dg.TimeWindowPartitionsDefinition,
    model_input: str,
    label: str,
    label_column: str,
    training_node: str,
    model_name: str,
    session: MarketSession | None = None,
    slo: InfraSLO | None = None,
    drift_policy: DriftPolicy | None = None,
    monitored: Sequence[str] | None = None,
    scheduled_job: str | None = None,
    key_prefix: str | Sequence[str] = (),
    minimum_interval_seconds: int = 300,
    running: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
) -> Monitoring:
    """Infra checks paging on-call and alpha drift reporting to research, for one model of a graph.

    Args:
        graph / model_input / label / label_column / training_node / model_name / key_prefix /
            partitions_def: as given to ``build_model_assets``.
        session: the market close the freshness deadlines count from (default 16:00 New York).
        slo: the on-call service levels (:class:`InfraSLO`).
        drift_policy: the model's drift thresholds (:class:`DriftPolicy`).
        monitored: the partitioned nodes whose expected partition must exist; default every partitioned
            node. The live signals and live PnL are always monitored.
        scheduled_job: the daily job whose run for the expected partition must succeed.
        minimum_interval_seconds: how often the sensors evaluate.
        running: start the sensors with the daemon (``dagster dev``) instead of stopped.
        clock: the time the infra sensor judges at (default: now, UTC); for simulations and tests.

    Needs the resources ``feature_store`` and ``model_registry`` (``platform_resources``), ``pager`` and
    ``research`` (``platform_resources`` provides them from ``Settings``).

    Build the project's materialization jobs with ``AssetSelection...without_checks()``: Dagster puts
    the checks of selected assets into an asset job (and into UI materializations and backfills). The
    infra checks can be subset, and outside ``infra_freshness_job`` they are recorded but never page
    (the sensor pages what is still failing); judged while the day is being written they say little.

    Raises:
        GraphError: a named node is not in the graph, or has the wrong partitioning.
        ConfigurationError: a threshold, SLO or interval is out of range.
    """
    if isinstance(minimum_interval_seconds, bool) or not isinstance(minimum_interval_seconds, int) \
            or not 30 <= minimum_interval_seconds <= 86_400:
        raise ConfigurationError(f"minimum_interval_seconds must be an integer from 30 to 86400, "
                                 f"got {minimum_interval_seconds!r}")
    calendar = Calendar(partitions_def)
    translator = FeatureAssetsTranslator(key_prefix)
    wiring = _wiring(graph, translator, model_input=model_input, label=label, label_column=label_column,
                     training_node=training_node, model_name=model_name, monitored=monitored,
                     scheduled_job=scheduled_job, session=session or MarketSession(), slo=slo or InfraSLO(),
                     drift_policy=drift_policy or DriftPolicy())
    clock = clock or _utc_now
    prefix = "_".join(translator.key_prefix)
    check_name = f"{prefix}_infra_checks" if prefix else "infra_checks"
    drift_check_name = f"{prefix}_alpha_drift_check" if prefix else "alpha_drift_check"
    infra = _infra_checks(wiring, calendar, clock, check_name)
    drift_check = _drift_check(wiring, calendar, drift_check_name)
    infra_job = dg.define_asset_job("infra_freshness_job", selection=dg.AssetSelection.checks(infra),
                                    tags={MONITORING_TAG: "infra"},
                                    description="Runs the infra checks; failures page on-call, recoveries resolve.")
    status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    return Monitoring(
        asset_checks=(infra, drift_check),
        jobs=(infra_job, _drift_job(wiring, calendar, "alpha_drift_job")),
        sensors=(_infra_sensor(wiring, calendar, clock, "infra_freshness_job", check_name, minimum_interval_seconds,
                               status),
                 _drift_sensor(wiring, calendar, "alpha_drift_job", minimum_interval_seconds, status)),
        wiring=wiring)
