"""``ml-platform promote MODEL VERSION --rationale-file FILE --approver NAME [--defs module:attr]``.

Exit codes, like ``ml-platform rollback``: 0 promoted, 1 refused by a gate (the run names it; nothing
moved), 2 bad input or an unusable store (checked before any run starts).
"""

from __future__ import annotations

import click

from ml_platform.cli.params import MAX_ARGUMENT, BoundedText, ModelName, PathText, VersionNumber
from ml_platform.errors import ConfigurationError, GateFailed


def find_promotion_job(defs, model: str):  # type: ignore[no-untyped-def]
    """The promotion job of ``model`` in ``defs`` (tagged by build_promotion_job), resolved with its resources."""
    from ml_platform.promotion.job import JOB_MODEL_TAG

    jobs = [j for j in (defs.jobs or []) if getattr(j, "tags", {}).get(JOB_MODEL_TAG) is not None]
    mine = [j for j in jobs if j.tags.get(JOB_MODEL_TAG) == model]
    if not mine:
        known = sorted(j.tags[JOB_MODEL_TAG] for j in jobs)
        raise ConfigurationError(f"the Definitions hold no promotion job for model {model!r}; promotion jobs exist "
                                 f"for {known or 'no model'} (add build_promotion_job(...) to the project's jobs)")
    return defs.resolve_job_def(mine[0].name)


@click.command()
@click.argument("model", type=ModelName())
@click.argument("version", type=VersionNumber())
@click.option("--rationale-file", required=True, type=PathText(),
              help="UTF-8 file with the written rationale.")
@click.option("--approver", required=True, type=BoundedText(256),
              help="Who approves; must differ from whoever trained the version.")
@click.option("--defs", "target", default=None, type=BoundedText(MAX_ARGUMENT),
              help="The project's Definitions as module:attr; default: the code location of workspace.yaml.")
def promote(model: str, version: str, rationale_file: str, approver: str, target: str | None) -> None:
    """Promote MODEL VERSION through the gates by running its promote_model job on the Dagster instance."""
    import dagster as dg

    from ml_platform.promotion.abandoned import fail_abandoned_runs, worker_tags
    from ml_platform.promotion.runs import run_refusal
    from ml_platform.promotion.service import read_rationale_file
    from ml_platform.workspace import load_definitions

    read_rationale_file(rationale_file)  # missing / not UTF-8: exit 2 before anything runs
    loaded = load_definitions(target)
    job = find_promotion_job(loaded.defs, model)
    registry_resource = loaded.resource("model_registry")
    if registry_resource is not None:  # unknown model or version, a version of another model: before the run
        contract = registry_resource.get_registry().load_contract(model, version)
        if contract.model_name != model:
            raise ConfigurationError(f"version {version} of {model!r} is a version of {contract.model_name!r}")
    run_config = {"ops": {"promotion_report": {"config": {
        "model": model, "version": version, "approver": approver, "rationale_file": rationale_file}}}}
    instance = dg.DagsterInstance.get()
    for run_id in fail_abandoned_runs(instance, job.name):  # a killed earlier promote left it STARTED
        click.echo(f"marked run {run_id} failed: the ml-platform promote that ran it was killed", err=True)
    result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False,
                                    tags=worker_tags())
    refusal = run_refusal(result)
    if isinstance(refusal, GateFailed):  # a refusal, not bad input: exit 1 like a refused rollback
        click.echo(f"refused: {refusal}", err=True)
        click.get_current_context().exit(1)
    if refusal is not None:
        raise refusal
    report = result.output_for_node("promotion_report")
    entry = result.output_for_node("record_promotion")
    click.echo(report.report_markdown)
    click.echo(f"plot: {report.plot_path}")
    click.echo(f"promoted {model} version {entry['to_version']} (from {entry['from_version'] or 'none'}); ledger "
               f"entry {entry['seq']} {entry['entry_hash']}{' OVERRIDE' if entry['override'] else ''}; "
               f"run {result.run_id}")
