"""``ml-platform trace MODEL_OR_SIGNAL_ASSET --date D --instrument X [--json] [--recompute] [--out DIR]``.

Prints the trace as markdown (``--json``: the machine form); ``--out DIR`` also writes ``trace.md``,
``trace.html`` (with the lineage picture) and ``trace.json`` there, for a compliance ticket. The store
and registry are found like every other command: ``--base-dir``/``--tracking-uri``, else ``--defs``,
else the ``ML_PLATFORM_*`` settings. Exit codes: 0 traced (and, with ``--recompute``, bit-identical),
1 the recomputation differs, 2 bad input or a trace that cannot be made (the problem is named).
"""

from __future__ import annotations

import datetime as dt

import click

from ml_platform.cli.locations import defs_option, store_location
from ml_platform.cli.models import cli_http_limits, open_registry
from ml_platform.cli.params import MAX_ARGUMENT, BoundedText, PathText, WritableDir
from ml_platform.errors import ConfigurationError

__all__ = ["trace"]


def _instrument(values: tuple[str, ...]) -> str | dict[str, str]:
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    pairs = [v.partition("=") for v in values]
    if any(not sep or not col or not val for col, sep, val in pairs):
        raise ConfigurationError(f"give one --instrument VALUE, or --instrument COLUMN=VALUE for each entity "
                                 f"column, got {list(values)}")
    return {col: val for col, _, val in pairs}


def _as_of(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"--as-of {text!r} is not an ISO time (e.g. 2024-05-01T12:00:00+00:00)") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@click.command("trace")
@click.argument("target", metavar="MODEL_OR_SIGNAL_ASSET", type=BoundedText(MAX_ARGUMENT))
@click.option("--date", "day", required=True, type=BoundedText(64), help="The signal's day, YYYY-MM-DD.")
@click.option("--instrument", "instrument", required=True, multiple=True, type=BoundedText(MAX_ARGUMENT),
              help="The instrument (entity value); for several entity columns COLUMN=VALUE, once per column.")
@click.option("--json", "as_json", is_flag=True, help="Print the trace as JSON instead of markdown.")
@click.option("--recompute", is_flag=True,
              help="Recompute the signal here from the stored features and the registered model; compare bit for "
                   "bit (exit 1 if it differs).")
@click.option("--as-of", "as_of", default=None, type=BoundedText(64),
              help="Trace the version of the day's signal that was current at this ISO time (default: the first "
                   "one written for that day).")
@click.option("--data-hash", "data_hash", default=None, type=BoundedText(256), help="Trace exactly this version of the day's signal.")
@click.option("--out", "out", default=None, type=WritableDir(),
              help="Also write trace.md, trace.html and trace.json into this folder.")
@click.option("--no-verify", "no_verify", is_flag=True,
              help="Only check that each object on the path exists (default: re-read each and hash its bytes against the recorded file hash).")
@click.option("--base-dir", default=None, type=PathText(), help="The store (default: from --defs or the ML_PLATFORM_* settings).")
@click.option("--tracking-uri", default=None, type=PathText(), help="MLflow (default: from --defs or the ML_PLATFORM_* settings).")
@defs_option
def trace(target: str, day: str, instrument: tuple[str, ...], as_json: bool, recompute: bool, as_of: str | None,
          data_hash: str | None, out: str | None, no_verify: bool, base_dir: str | None, tracking_uri: str | None,
          defs_target: str | None) -> None:
    """Trace the live signal of MODEL_OR_SIGNAL_ASSET for --instrument on --date back to everything that made it.

    MODEL_OR_SIGNAL_ASSET is a registered model name or a live-signal store key (e.g. team_b/live_signals).
    """
    from ml_platform.environment import EnvironmentPolicy
    from ml_platform.io.store import PinnedStore
    from ml_platform.trace.report import render_markdown, trace_summary, write_trace_report
    from ml_platform.trace.service import trace_signal

    with cli_http_limits():
        base, _ = store_location(base_dir, None, defs_target)
        registry = open_registry(tracking_uri, None, defs_target)
        record = trace_signal(target, day, _instrument(instrument), recompute=recompute, as_of=_as_of(as_of),
                              data_hash=data_hash, verify=not no_verify,
                              store=PinnedStore(base, policy=EnvironmentPolicy.OFF), registry=registry)
    if as_json:
        click.echo(record.to_json())
    else:
        click.echo(render_markdown(record), nl=False)
    if out is not None:
        files = write_trace_report(record, out)
        click.echo("trace written: " + ", ".join(str(p) for p in files.values()), err=True)
    if recompute and record.recompute is not None and not record.recompute.equal:
        click.echo("; ".join(trace_summary(record)[-1:]), err=True)
        click.get_current_context().exit(1)
