"""``ml-platform verify`` and ``ml-platform env``: check stored artefacts and compare environment locks.

Registered on the ``ml-platform`` click group in :mod:`ml_platform.cli`::

    main.add_command(verify)
    main.add_command(env)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from ml_platform.commands_common import defs_option, store_location
from ml_platform.environment import EnvironmentLock, EnvironmentPolicy, capture_environment, diff_environments
from ml_platform.errors import ConfigurationError, MLPlatformError
from ml_platform.io.manifest import MANIFEST_METADATA_KEY, Manifest
from ml_platform.io.store import PinnedStore
from ml_platform.io.verify import VerifyResult

__all__ = ["env", "verify"]

_DETAIL_WIDTH = 90


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, ["-" * width for width in widths], *rows]
    ]
    return "\n".join(lines)


def _row(result: VerifyResult) -> list[str]:
    detail = result.detail.splitlines()[0] if result.detail else ""
    if len(detail) > _DETAIL_WIDTH:
        detail = detail[: _DETAIL_WIDTH - 3] + "..."
    return [
        result.status.value.upper() if not result.ok else result.status.value,
        result.key,
        result.partition or "-",
        "-" if result.rows is None else str(result.rows),
        result.data_hash or "-",
        detail,
    ]


def _explanation(result: VerifyResult) -> str:
    """Explain a failed or environment-differing row: its message (or each difference) and its manifest."""
    where = result.key if result.partition is None else f"{result.key} {result.partition}"
    if result.environment_diff.is_empty:
        lines = [f"\n{where}: {result.detail}"]
    else:
        differences = result.environment_diff.differences
        lines = [f"\n{where}: {len(differences)} environment difference(s), stored -> running:"]
        lines += [f"  {difference}" for difference in differences]
    lines.append(f"  manifest: {result.manifest_path}")
    return "\n".join(lines)


@click.command("verify")
@click.argument("asset", required=False)
@click.option("--partition", default=None, help="Only this partition of ASSET (e.g. 2012-01-03).")
@click.option(
    "--base-dir",
    default=None,
    help="The storage directory (or fsspec URI) of the PinnedIOManager; default: from --defs or ML_PLATFORM_* settings.",
)
@click.option(
    "--environment-policy",
    type=click.Choice([p.value for p in EnvironmentPolicy]),
    default=None,
    help="strict: an environment difference is a failure; warn: reported only (default: the deployment's).",
)
@defs_option
def verify(asset: str | None, partition: str | None, base_dir: str | None, environment_policy: str | None,
           defs_target: str | None) -> None:
    """Check every stored artefact (or those of ASSET, e.g. features/momentum) against its manifest.

    Each file is read in full: byte hash, Parquet decoding, embedded manifest, content hash, then
    its environment lock is compared with the running one. Exits 1 if any artefact fails.
    """
    base_dir, environment_policy = store_location(base_dir, environment_policy, defs_target)
    # bad input (no storage, a malformed key) is an MLPlatformError: the ml-platform group exits 2 with one line
    store = PinnedStore(base_dir, policy=environment_policy)
    if not store.filesystem.root_exists():
        raise ConfigurationError(f"no storage at {store.base}; pass --base-dir, --defs, or set ML_PLATFORM_HOME")
    results = store.verify(asset, partition)
    if not results:
        click.echo(f"nothing stored under {store.base}")
        return
    click.echo(
        _table(["STATUS", "ASSET", "PARTITION", "ROWS", "DATA HASH", "DETAIL"], [_row(r) for r in results])
    )
    failed = [result for result in results if not result.ok]
    click.echo(
        f"\n{len(results)} artefact(s) under {store.base}: "
        f"{len(results) - len(failed)} ok, {len(failed)} failed"
    )
    for result in results:
        if not result.ok or not result.environment_diff.is_empty:
            click.echo(_explanation(result), err=not result.ok)
    if failed:
        raise click.exceptions.Exit(1)


@click.group("env")
def env() -> None:
    """Environment locks: show the running one, or diff two."""


def _load_lock(spec: str) -> EnvironmentLock:
    """``running``, a lock JSON (``env show --json``), a manifest JSON, or a Parquet file embedding one."""
    if spec == "running":
        return capture_environment()
    path = Path(spec)
    if not path.is_file():
        raise ConfigurationError(f"{spec!r} is neither 'running' nor a file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            raw = (pq.read_schema(path).metadata or {}).get(MANIFEST_METADATA_KEY)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"{spec} cannot be read as Parquet: {exc}") from exc
        if raw is None:
            raise ConfigurationError(f"{spec} carries no ml_platform manifest")
        return Manifest.from_json(raw, source=spec).environment
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{spec} is not a readable JSON file: {exc}") from exc
    if isinstance(data, dict) and "schema_version" in data:
        return Manifest.from_dict(data, source=spec).environment
    lock = EnvironmentLock.from_dict(data)
    recorded = data.get("hash") if isinstance(data, dict) else None
    if recorded is not None and recorded != lock.hash:
        raise ConfigurationError(
            f"{spec} records hash {recorded} but its content hashes to {lock.hash}; "
            "the lock was edited - regenerate it with `ml-platform env show --json`"
        )
    return lock


@env.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print the lock as JSON (input for `env diff`).")
def show(as_json: bool) -> None:
    """Print the running environment lock."""
    lock = capture_environment()
    if as_json:
        click.echo(json.dumps({**lock.to_dict(), "hash": lock.hash}, indent=2, sort_keys=True))
        return
    click.echo(f"environment  {lock.hash}")
    click.echo(f"python       {lock.python_implementation} {lock.python_version}")
    click.echo(f"platform     {lock.platform}")
    click.echo(f"uv.lock      {lock.uv_lock_hash or '(absent)'}")
    for lib in lock.blas:
        click.echo(
            f"blas         {lib.internal_api} {lib.version} ({lib.threading_layer}, "
            f"{lib.architecture}, {lib.num_threads} threads)"
        )
    for name, value in lock.env_vars:
        click.echo(f"env          {name}={'(unset)' if value is None else value}")
    click.echo(f"packages     {len(lock.packages)}")
    for name, version in lock.packages:
        click.echo(f"  {name}=={version}")


@env.command("diff")
@click.argument("a")
@click.argument("b")
def diff(a: str, b: str) -> None:
    """Compare environment locks A and B: each 'running', a lock JSON, a manifest JSON or a Parquet file.

    Prints one line per difference (A -> B). Exits 0 when identical, 1 when they differ, 2 on error.
    """
    try:
        lock_a, lock_b = _load_lock(a), _load_lock(b)
    except MLPlatformError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(2) from exc
    result = diff_environments(lock_a, lock_b)
    if result.is_empty:
        click.echo(f"identical: {lock_a.hash}")
        return
    click.echo(f"{lock_a.hash} -> {lock_b.hash}: {len(result.differences)} difference(s)")
    for line in result.differences:
        click.echo(f"  {line}")
    raise click.exceptions.Exit(1)
