"""``quant-alpha demo`` (``make demo``): the whole lifecycle on the embedded default, on real prices.

1. materialize market data and point-in-time features (real daily prices bundled in bokeh-sampledata),
2. assemble a training set over 2011, train, validate on its last quarter, register version 1 with its
   deploy contract and code snapshot,
3. promote it through the gates of the ``promote_model`` job: once refused (the trainer approving their
   own model: four eyes), then passed; the champion of record is the ledger head,
4. produce live signals and PnL for January-February 2012 through the load-time contract check,
5. train a second version on a later window, promote it (with a declared override if the thresholds
   refuse it), roll back to version 1 in one call and print its latency and the hash-chained ledger,
6. verify every stored artefact against its manifest,
7. change one feature's code, rematerialize, and show the champion refused at the boundary,
8. monitoring (:mod:`quant_alpha.demo_monitoring`): a stale label feed pages on-call and resolves when
   filled; the May 2012 tape moves the champion's returns off its validated profile, which reaches
   research as a report in MLflow and never pages,
9. trace the first live signal back to its model, ledger entry, feature row, feature and source versions,
   recomputed bit for bit, and write the compliance report (markdown and HTML).

Every step is a Dagster run on the instance in ``.ml_platform/dagster``: open ``make ui`` afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import polars as pl

from ml_platform import (
    ContractViolation,
    DataWindow,
    run_refusal,
    trace_signal,
    trace_summary,
    verify_store,
    write_trace_report,
)
from quant_alpha import compute
from quant_alpha.demo_monitoring import run_monitoring
from quant_alpha.features import MODEL_INPUT_NODE, build_graph

FEATURES = DataWindow.parse("2011-01-01..2012-02-29")
TRAINING = DataWindow.parse("2011-01-03..2011-12-30")
LIVE = DataWindow.parse("2012-01-03..2012-02-29")
CHANGED = DataWindow.parse("2012-02-27..2012-02-29")


def momentum_edited(bars: pl.DataFrame) -> pl.DataFrame:
    """The demo's code change: momentum over 10/21/63 bars instead of 5/21/63."""
    return compute.momentum(bars, lookbacks=(10, 21, 63)).rename({"mom_10d": "mom_5d"})


APPROVER = "risk-officer"
RATIONALE_1 = (
    "First champion of the cross-sectional ridge on six momentum, volatility and volume features. The "
    "validation quarter is weak (negative Sharpe) and we promote it knowingly: the desk trades it at minimum "
    "size to collect live evidence for the feature set, and the promotion puts the plumbing under audit."
)
RATIONALE_2 = (
    "Challenger retrained on a window shifted two months later, so it has seen the 2011 Q4 volatility regime. "
    "Its validation window is the January-February 2012 tape; we want it live beside the incumbent's record "
    "and accept the risk of rolling it back if the first weeks disappoint the desk's expectations."
)
OVERRIDE = "OVERRIDE: the desk accepts weaker validation numbers for this experiment, capped at minimum size.\n"
TRAINING_2 = DataWindow.parse("2011-03-01..2012-02-28")


def _promote(job, instance, model: str, version: str, *, approver: str, rationale: str) -> str:
    """Run the promote_model job; say what happened (the refusing gate, or the ledger entry)."""
    config = {"model": model, "version": version, "approver": approver, "rationale": rationale}
    run_config = {"ops": {"promotion_report": {"config": config}},
                  "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
    refusal = run_refusal(result)
    if refusal is not None:
        first = (getattr(refusal, "detail", str(refusal)).splitlines() or [""])[0]
        reason = first.partition("refused: ")[2] or first
        return f"gate '{getattr(refusal, 'gate', None)}': {reason[:160]}"
    entry = result.output_for_node("record_promotion")
    return (f"promoted version {entry['to_version']} (ledger entry {entry['seq']}"
            f"{', override recorded' if entry['override'] else ''})")


def _say(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


def _short(h: str) -> str:
    return h.split(":")[0] + ":" + h.split(":")[-1][:12]


@click.command("demo")
@click.option("--home", default=".ml_platform", show_default=True, help="Embedded default root folder.")
def demo(home: str) -> None:
    """Run the whole lifecycle on the embedded default (real prices, SQLite, local files)."""
    import dagster as dg

    from ml_platform import ChampionService, Lifecycle, ModelRegistry, PinnedStore, Settings
    from quant_alpha.project import MODEL_NAME, project_definitions

    settings = Settings.local(home)
    model_name = MODEL_NAME
    dagster_home = Path(settings.home) / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    yaml = dagster_home / "dagster.yaml"
    if not yaml.exists():
        yaml.write_text("telemetry:\n  enabled: false\n")
    graph = build_graph("sample")
    defs = project_definitions(settings, graph)
    registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
    started = time.perf_counter()

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        life = Lifecycle(defs, graph, instance, log_level="CRITICAL")
        _say("feature graph (market source: sample; real AAPL/GOOG/IBM/MSFT/FB prices)")
        for node in graph:
            click.echo(f"  {node.key:<22} code {_short(node.code_hash)}  graph {_short(node.graph_hash)}"
                       f"  <- {', '.join(node.spec.upstream_keys) or '(source)'}")

        _say(f"materialize features for {FEATURES} (point-in-time: history and label lookahead included)")
        for span, keys in life.plan(FEATURES):
            t = time.perf_counter()
            life.materialize(keys, span)
            click.echo(f"  {span}  {', '.join(keys)}  ({span.days} partitions each, {time.perf_counter() - t:.1f}s)")

        _say(f"training set {TRAINING}")
        life.training_set(TRAINING)
        store = PinnedStore(settings.storage)
        stored = store.read("training_set", None)
        click.echo(f"  {stored.frame.height} rows x {stored.frame.width} columns, data hash {stored.manifest.data_hash}")

        _say("train, validate, register")
        result = life.train(model_name=model_name)
        meta = result.asset_materializations_for_node("trained_model")[-1].metadata
        version = meta["ml_platform/model_version"].value
        click.echo(f"  registered {model_name} version {version} (MLflow run {meta['ml_platform/mlflow_run_id'].value})")
        click.echo(f"  trained on {meta['ml_platform/training_window'].value}, "
                   f"validated on {meta['ml_platform/validation_window'].value}")
        for name in ("sharpe", "ic_mean", "ic_tstat", "hit_rate", "turnover", "max_drawdown"):
            click.echo(f"  validation {name:<13} {meta[f'validation/{name}'].value: .4f}")
        contract = registry.load_contract(model_name, version)
        click.echo(f"  contract: feature graph {_short(contract.feature_graph_hash)}, "
                   f"{len(contract.feature_schema.fields)} columns, environment {_short(contract.environment_hash)}, "
                   f"model {_short(contract.model_sha256)}")
        trained_by = contract.trained_by

        _say("promote through the gates (promote_model job: report, rationale, contract, four eyes, thresholds)")
        promote = defs.get_job_def("promote_model")
        refused = _promote(promote, instance, model_name, version, approver=trained_by, rationale=RATIONALE_1)
        click.echo(f"  attempt 1, approved by its own trainer {trained_by!r}: refused at {refused}")
        click.echo(f"  (the run is in the Dagster UI: Runs -> promote_model, step {refused.split(chr(39))[1]}_gate)")
        with ChampionService.open(registry) as champions:
            click.echo(f"  ledger head after the refusal: {champions.champion(model_name) or 'none'} (nothing moved)")
        click.echo(f"  attempt 2, approved by {APPROVER!r}: " + _promote(
            promote, instance, model_name, version, approver=APPROVER, rationale=RATIONALE_1))

        _say(f"live signals and PnL for {LIVE} (champion loaded through its contract)")
        life.features(LIVE)
        life.live(LIVE, model_name)
        signals, _ = store.read_many("live_signals", LIVE.partition_keys())
        pnl, _ = store.read_many("live_pnl", LIVE.partition_keys())
        click.echo(f"  {signals.height} signals on {signals['date'].n_unique()} days from version "
                   f"{signals['model_version'].unique().to_list()}; live PnL {pnl['pnl'].sum():+.4f} "
                   f"(log return, {pnl.height} days)")

        _say(f"a second model: retrain on {TRAINING_2}, promote it, then roll back")
        life.training_set(TRAINING_2)
        meta = life.train(model_name=model_name).asset_materializations_for_node("trained_model")[-1].metadata
        version_2 = meta["ml_platform/model_version"].value
        click.echo(f"  registered version {version_2}, validation sharpe {meta['validation/sharpe'].value:.4f}")
        outcome = _promote(promote, instance, model_name, version_2, approver=APPROVER, rationale=RATIONALE_2)
        if outcome.startswith("gate 'thresholds'"):
            click.echo(f"  refused at {outcome}")
            outcome = _promote(promote, instance, model_name, version_2, approver=APPROVER,
                               rationale=OVERRIDE + RATIONALE_2)
            click.echo("  promoted again with a declared OVERRIDE in the rationale: " + outcome)
        else:
            click.echo("  " + outcome)
        with ChampionService.open(registry) as champions:
            started_rollback = time.perf_counter()
            entry = champions.rollback(model_name, reason="demo: the desk prefers the incumbent until more live days",
                                       actor=trained_by)
            click.echo(f"  rollback {entry.from_version} -> {entry.to_version} in "
                       f"{(time.perf_counter() - started_rollback) * 1000:.1f} ms (ledger entry {entry.seq})")
            for item in champions.history(model_name):
                click.echo(f"    #{item.seq} {item.kind:<9} {item.from_version or '-'} -> {item.to_version}  "
                           f"by {item.actor}, approved by {item.approver or '-'}  {item.entry_hash[:19]}")
            click.echo(f"  champion of record: version {champions.champion(model_name)}; "
                       f"chain verifies: {champions.verify(model_name, strict=False).ok}")

        _say("verify every stored artefact against its manifest")
        results = verify_store(store)
        bad = [r for r in results if not r.ok]
        click.echo(f"  {len(results)} artefacts checked, {len(bad)} failed")

        _say("change momentum's code (5-bar -> 10-bar lookback) and rematerialize")
        edited = graph.with_function("momentum", momentum_edited)
        changed = sorted(n.key for n in graph if n.graph_hash != edited[n.key].graph_hash)
        click.echo(f"  graph hash changed for: {', '.join(changed)}; unchanged for the rest")
        edited_life = Lifecycle(project_definitions(settings, edited), edited, instance, log_level="CRITICAL")
        edited_life.features(CHANGED)
        click.echo(f"  {MODEL_INPUT_NODE} for {CHANGED} now has graph hash {_short(edited[MODEL_INPUT_NODE].graph_hash)}")
        try:
            edited_life.live(CHANGED, model_name)
        except ContractViolation as exc:
            click.secho("  live signals refused at load time, no signal produced:", fg="red")
            for line in str(exc).splitlines():
                click.echo(f"    {line}")
        else:
            raise click.ClickException("the contract check did not refuse the old champion: this is a bug")

        _say("restore the original code's features for those days")
        life.features(CHANGED)
        life.live(CHANGED, model_name)
        click.echo(f"  live signals for {CHANGED} produced again by version {version}")

        run_monitoring(settings, graph, instance, model_name, _say)

        first_day = signals["date"].min()
        instrument = signals.filter(pl.col("date") == first_day)["instrument"].sort()[0]
        _say(f"trace the {instrument} signal of {first_day} back to everything that made it "
             "(after the second model, the rollback and the code change)")
        record = trace_signal(model_name, str(first_day), instrument, recompute=True, store=store, registry=registry)
        for line in trace_summary(record):
            click.echo(f"  {line}")
        files = write_trace_report(record, Path(settings.home) / "trace")
        click.echo(f"  for the compliance ticket: {files['markdown']} and {files['html']}")
        click.echo(f"  the same from the shell: .venv/bin/ml-platform trace {model_name} --date {first_day} "
                   f"--instrument {instrument} --recompute")
    click.secho(f"\ndemo finished in {time.perf_counter() - started:.0f}s. Open the UI with `make ui` "
                "(http://127.0.0.1:3000); models: `.venv/bin/ml-platform models show "
                f"{model_name}`", bold=True)
