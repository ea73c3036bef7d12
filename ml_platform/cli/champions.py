"""``ml-platform rollback``, ``history``, ``audit verify`` and ``registry reconcile``: the champion ledger's commands.

They find the registry as ``ml-platform models`` does (``--tracking-uri``, ``--defs``, ``ML_PLATFORM_*``
settings; ``--ledger-url`` or ``ML_PLATFORM_LEDGER_URL`` for an MLflow server). Exit codes: 0 ok,
1 a failed check (a refused rollback, a chain that does not verify, ``reconcile --check`` finding
something), 2 bad input or an unusable store (the ``ml-platform`` group's handling of platform errors).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ml_platform.cli.models import cli_http_limits, open_registry, registry, registry_options
from ml_platform.cli.params import BoundedText, ModelName, PathText, VersionNumber, printable
from ml_platform.errors import MLPlatformError, ModelNotFound, RollbackRefused
from ml_platform.reproduce.certificate import CERTIFICATE_TAG, VERDICT_TAG

if TYPE_CHECKING:
    from ml_platform.champions.service import ChampionService
    from ml_platform.registry.store import ModelRegistry

__all__ = ["audit", "history", "rollback"]


def _ledger_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--ledger-url", default=None, type=PathText(),
                        help="SQLAlchemy URL of the champion ledger (default: the tracking URI when it is a SQL "
                             "store, else ML_PLATFORM_LEDGER_URL).")(registry_options(command))


def _service(tracking_uri: str | None, registry_uri: str | None, defs_target: str | None,
             busy_timeout: float | None, ledger_url: str | None, *, read_only: bool) -> ChampionService:
    """The service on an existing registry and ledger: none is ever created (``read_only``: nor migrated)."""
    from ml_platform.champions.service import ChampionService  # MLflow: only when the command runs

    opened = open_registry(tracking_uri, registry_uri, defs_target, busy_timeout)
    if ledger_url is not None:
        opened.ledger_url = ledger_url
    return ChampionService.open(opened, read_only=read_only, create=False)


def _check_known(service: ChampionService, model: str) -> None:
    """Refuse a model neither the ledger nor the registry knows (a typo must not read as an empty ledger).

    A model with a champion of record is known from the ledger alone: a rollback needs no MLflow client.
    """
    recorded = set(service.ledger.models())
    if model in recorded:
        return
    known = sorted({m.name for m in service.registry.registered_models()} | recorded)
    if model not in known:
        raise ModelNotFound(f"no model {model!r} in the registry {service.registry.store} or its ledger; known "
                            f"models: {', '.join(known) or 'none'}")


@click.command("rollback")
@click.argument("model", type=ModelName())
@click.option("--to", "to", default=None, metavar="VERSION", type=VersionNumber(),
              help="An earlier champion (default: the previous one).")
@click.option("--reason", required=True, type=BoundedText(10_000), help="Why, in words (recorded in the ledger).")
@click.option("--actor", default=None, type=BoundedText(256), help="Who rolls back (default: $USER).")
@click.option("--live-graph-hash", "live_graph_hash", default=None, type=BoundedText(256),
              help="Refuse a target whose features need another feature graph than this one.")
@_ledger_option
def rollback(model: str, to: str | None, reason: str, actor: str | None, live_graph_hash: str | None,
             tracking_uri: str | None, registry_uri: str | None, as_json: bool, busy_timeout: float | None,
             defs_target: str | None, ledger_url: str | None) -> None:
    """Move MODEL's champion back to the previous ledger champion (or --to VERSION), in one transaction."""
    with cli_http_limits():
        service = _service(tracking_uri, registry_uri, defs_target, busy_timeout, ledger_url, read_only=False)
        try:
            _check_known(service, model)
            started = time.perf_counter()
            entry = service.rollback(model, to=to, reason=reason,
                                     actor=actor or os.environ.get("USER") or "ml-platform rollback",
                                     live_feature_graph_hash=live_graph_hash)
            elapsed_ms = (time.perf_counter() - started) * 1000
        except RollbackRefused as exc:
            click.echo(f"refused: {exc}", err=True)
            click.get_current_context().exit(1)
        finally:
            service.close()
    if as_json:
        click.echo(json.dumps({**entry.to_dict(), "elapsed_ms": elapsed_ms}, indent=2, sort_keys=True))
    else:
        click.echo(f"{model}: champion {entry.from_version} -> {entry.to_version} (ledger entry {entry.seq}, "
                   f"{elapsed_ms:.1f} ms)")


@click.command("history")
@click.argument("model", type=ModelName())
@_ledger_option
def history(model: str, tracking_uri: str | None, registry_uri: str | None, as_json: bool,
            busy_timeout: float | None, defs_target: str | None, ledger_url: str | None) -> None:
    """Print MODEL's champion ledger, oldest entry first (control characters in stored text shown escaped)."""
    service = _service(tracking_uri, registry_uri, defs_target, busy_timeout, ledger_url, read_only=True)
    try:
        _check_known(service, model)
        entries = service.history(model)
        certificates = _certificates(service.registry, model, {e.to_version for e in entries})
    finally:
        service.close()
    if as_json:
        click.echo(json.dumps([{**e.to_dict(), "reproduction": certificates.get(e.to_version)} for e in entries],
                              indent=2, sort_keys=True))
        return
    if not entries:
        click.echo(f"model {model!r} has no champion moves recorded")
        return
    for e in entries:
        extra = f"  approver: {printable(e.approver)}" if e.approver else ""
        if e.override:
            extra += "  OVERRIDE"
        click.echo(f"{e.seq:>4}  {e.recorded_at.isoformat(timespec='seconds')}  {e.kind:<9}  "
                   f"{e.from_version or '-'} -> {e.to_version}  actor: {printable(e.actor)}{extra}  "
                   f"reason: {printable(e.reason)}")
        found = certificates.get(e.to_version)
        if found is not None:
            verdict = "bit-exact" if found["bit_exact"] else "NOT bit-exact"
            click.echo(f"      version {e.to_version} reproduced: {verdict}, certificate {found['certificate']}")


def _certificates(registry: ModelRegistry, model: str, versions: set[str]) -> dict[str, dict[str, object]]:
    """The latest reproduction certificate of each version (``ml-platform reproduce`` tags the version)."""
    found: dict[str, dict[str, object]] = {}
    for version in versions:
        try:
            tags = dict(registry.model_version(model, version).tags or {})
        except MLPlatformError:
            continue  # a version the registry no longer has: the ledger entry is printed as recorded
        if CERTIFICATE_TAG in tags:
            found[version] = {"certificate": tags[CERTIFICATE_TAG], "bit_exact": tags.get(VERDICT_TAG) == "true"}
    return found


@click.group("audit")
def audit() -> None:
    """Audit the champion ledger."""


@audit.command("verify")
@click.argument("model", type=ModelName())
@click.option("--anchor-only", "anchor_only", is_flag=True,
              help="Only compare the head with its anchor (two reads, no re-walk of the chain): the cheap "
                   "daily check for a cut tail or a moved-back head.")
@click.option("--with-runs", "with_runs", is_flag=True,
              help="Also compare the head with the newest anchor its promotion and rollback runs recorded in the "
                   "Dagster instance (DAGSTER_HOME).")
@_ledger_option
def verify_command(model: str, anchor_only: bool, with_runs: bool, tracking_uri: str | None,
                   registry_uri: str | None, as_json: bool, busy_timeout: float | None, defs_target: str | None,
                   ledger_url: str | None) -> None:
    """Re-walk MODEL's hash chain and check its head against its anchor on the MLflow registered model.

    Exit 1 naming the first altered, deleted or reordered entry, a cut tail or a moved-back head.
    """
    service = _service(tracking_uri, registry_uri, defs_target, busy_timeout, ledger_url, read_only=True)
    try:
        _check_known(service, model)
        report = service.check_anchor(model) if anchor_only else service.verify(model, strict=False)
        if with_runs:
            from ml_platform.promotion.anchors import cross_check_runs, open_instance  # Dagster: only with it

            with open_instance() as instance:
                report = cross_check_runs(service, instance, report)
    finally:
        service.close()
    if as_json:
        problem = report.problem
        click.echo(json.dumps({"model": model, "ok": report.ok, "entries": report.entries,
                               "head_seq": report.head_seq, "head_hash": report.head_hash,
                               "anchor": report.anchor, "anchor_state": report.anchor_state,
                               "walked": report.walked,
                               "problem": None if problem is None else
                               {"seq": problem.seq, "kind": problem.kind, "detail": problem.detail}},
                              indent=2, sort_keys=True))
    else:
        click.echo(report.describe())
    if not report.ok:
        click.get_current_context().exit(1)


@registry.command("reconcile")
@click.argument("model", required=False, type=ModelName())
@click.option("--check", "check_only", is_flag=True,
              help="Only report; change nothing. Exit 1 if anything is inconsistent.")
@_ledger_option
def reconcile_command(model: str | None, check_only: bool, tracking_uri: str | None, registry_uri: str | None,
                      as_json: bool, busy_timeout: float | None, defs_target: str | None,
                      ledger_url: str | None) -> None:
    """Make every MLflow champion alias equal its ledger head; report deleted heads and broken chains.

    Exit 0 when consistent (or everything found was repaired), 1 otherwise.
    """
    service = _service(tracking_uri, registry_uri, defs_target, busy_timeout, ledger_url, read_only=check_only)
    try:
        if model is not None:
            _check_known(service, model)
        report = service.reconcile(model, check_only=check_only)
    finally:
        service.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        for line in report.lines():
            click.echo(line)
    if not report.consistent:
        click.get_current_context().exit(1)
