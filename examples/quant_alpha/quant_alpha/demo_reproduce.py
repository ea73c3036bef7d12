"""``quant-alpha demo-reproduce`` (``make demo-reproduce``): reproduce an old model after everything moved on.

1. **commit A**: a temporary git copy of this project; "production" (its own store, MLflow and Dagster
   instance under ``--home``) materializes the real-price features from that copy's code, trains and
   registers the ridge, makes it champion and serves live signals for December 2011;
2. **commit B**: the copy moves on: one ancestor feature's code changes (the volatility window), the
   vendor re-delivers the bars of an old day that the model was trained on (stored as a separate,
   newer version in production's store and as a file in the copy, the way a revision arrives) and a
   library is downgraded in ``uv.lock``;
3. **reproduce** version 1 from commit B's repository: the recorded commit A is checked out, its own
   lock synced into a fresh virtual environment, the recorded market data read by data hash (not the
   revised delivery), every other partition rebuilt by a daemon-run Dagster backfill of A's code, the
   model retrained and the live days scored again; the certificate is printed and stored in MLflow.

Exit code 0 only if the certificate is bit-exact. Everything is written under ``--home``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import polars as pl

from ml_platform import ConfigurationError, DataWindow
from ml_platform.testing import champion_shortcut

__all__ = ["demo_reproduce"]

FEATURES = DataWindow.parse("2011-06-01..2011-12-30")
TRAINING = DataWindow.parse("2011-07-01..2011-11-30")
LIVE = DataWindow.parse("2011-12-01..2011-12-30")
REVISED_DAY = "2011-08-15"
REVISED_INSTRUMENT = "IBM"
DOWNGRADE = "six==1.16.0"
_GIT_ID = ("-c", "user.name=quant-alpha demo", "-c", "user.email=demo@quant-alpha.invalid")


def _say(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


def _run(args: list[str], cwd: Path, what: str, timeout: float = 600) -> str:
    try:
        done = subprocess.run(args, cwd=str(cwd), capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigurationError(f"{what}: {args[0]} could not run: {exc}") from exc
    if done.returncode != 0:
        raise ConfigurationError(f"{what} failed: {(done.stderr or done.stdout).strip()[-1500:]}")
    return done.stdout.strip()


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def _copy_project(copy: Path) -> str:
    """A git copy of this project at its current commit (or of its files, committed, outside git); its commit."""
    here = Path(__file__).resolve().parent
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=str(here), capture_output=True, text=True,
                         check=False)
    if top.returncode == 0:
        _run(["git", "clone", "--quiet", top.stdout.strip(), str(copy)], copy.parent, "copy the project (git clone)")
    else:
        project = here.parents[2]  # examples/quant_alpha/quant_alpha -> the project root
        shutil.copytree(project, copy, ignore=shutil.ignore_patterns(".venv", ".ml_platform", "__pycache__", ".git"))
        _run(["git", "init", "--quiet", "-b", "main"], copy, "git init the copy")
        _run(["git", *_GIT_ID, "add", "--all"], copy, "stage the copy")
        _run(["git", *_GIT_ID, "commit", "--quiet", "-m", "A: the project as found"], copy, "commit the copy")
    return _run(["git", "rev-parse", "HEAD"], copy, "read the copy's commit")


def _commit_b(copy: Path, store, production_day) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """Commit B in the copy: the feature code change, the vendor revision, the library downgrade."""
    from ml_platform import PinnedStore, WriteFacts

    features = copy / "examples" / "quant_alpha" / "quant_alpha" / "features.py"
    source = features.read_text()
    if "VOL_WINDOW = 21" not in source:
        raise ConfigurationError(f"{features} no longer sets VOL_WINDOW = 21; the demo's code change needs it")
    features.write_text(source.replace("VOL_WINDOW = 21", "VOL_WINDOW = 42"))

    assert isinstance(store, PinnedStore)
    delivered = store.read("market_bars", REVISED_DAY)
    revised = delivered.frame.with_columns(
        [pl.when(pl.col("instrument") == REVISED_INSTRUMENT).then(pl.col(c) * 1.01).otherwise(pl.col(c)).alias(c)
         for c in ("close", "adj_close")])
    revisions = copy / "examples" / "quant_alpha" / "vendor_revisions"
    revisions.mkdir(exist_ok=True)
    revised.write_csv(revisions / f"market_bars_{REVISED_DAY}.csv")
    m = delivered.manifest
    head = store.write("market_bars", REVISED_DAY, revised, WriteFacts(
        code_hash=m.code_hash, graph_hash=m.graph_hash, seeds=m.seeds, window=m.window,
        params={**m.params, "vendor_revision": f"vendor_revisions/market_bars_{REVISED_DAY}.csv"}))

    _run([*_uv(), "lock", "--upgrade-package", DOWNGRADE], copy, f"downgrade {DOWNGRADE} in the copy's uv.lock")
    _run(["git", *_GIT_ID, "add", "--all"], copy, "stage commit B")
    _run(["git", *_GIT_ID, "commit", "--quiet", "-m",
          f"B: VOL_WINDOW 21 -> 42, vendor revision of {REVISED_DAY}, {DOWNGRADE}"], copy, "commit B")
    return _run(["git", "rev-parse", "HEAD"], copy, "read commit B"), m.data_hash, head.data_hash


@click.command("demo-reproduce")
@click.option("--home", default=".ml_platform/demo-reproduce", show_default=True,
              help="Folder for the copy, production and the reproduction (a new run folder inside each time).")
def demo_reproduce(home: str) -> None:
    """Train at commit A, move the code, data and lock on to commit B, reproduce A's model bit-exactly."""
    import dagster as dg

    from ml_platform import Lifecycle, ModelRegistry, PinnedStore, Settings, reproduce_version
    from quant_alpha.features import build_graph
    from quant_alpha.project import MODEL_NAME, project_definitions

    root = Path(home).resolve() / dt.datetime.now(dt.UTC).strftime("run-%Y%m%dT%H%M%SZ")
    root.mkdir(parents=True)
    copy = root / "project"
    started = time.perf_counter()

    _say(f"commit A: a git copy of this project in {copy}")
    commit_a = _copy_project(copy)
    click.echo(f"  commit {commit_a[:12]}")

    settings = Settings.local(root / "production")
    dagster_home = Path(settings.home) / "dagster"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    graph = build_graph("sample", project_root=copy / "examples" / "quant_alpha")
    defs = project_definitions(settings, graph)
    registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
    store = PinnedStore(settings.storage)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        life = Lifecycle(defs, graph, instance, log_level="CRITICAL")
        _say(f"production at commit A: features {FEATURES}, train on {TRAINING}, serve {LIVE}")
        life.features(FEATURES)
        life.training_set(TRAINING)
        meta = life.train(model_name=MODEL_NAME).asset_materializations_for_node("trained_model")[-1].metadata
        version = str(meta["ml_platform/model_version"].value)
        contract = registry.load_contract(MODEL_NAME, version)
        champion_shortcut(registry, MODEL_NAME, version, reason="demo-reproduce: the model whose trades are questioned")
        life.live(LIVE, MODEL_NAME)
        click.echo(f"  registered {MODEL_NAME} version {version}: model {contract.model_sha256[:19]}..., "
                   f"commit {str(contract.git_commit)[:12]}, uv.lock {contract.environment_lock['uv_lock_hash'][:19]}...")
        click.echo(f"  champion; live signals for {len(LIVE.partition_keys())} calendar days written")

    _say("commit B: the feature code, the market data and the lock move on")
    commit_b, recorded, revised = _commit_b(copy, store, REVISED_DAY)
    click.echo(f"  commit {commit_b[:12]}: VOL_WINDOW 21 -> 42 (realized_vol and everything below it)")
    click.echo(f"  vendor revision of {REVISED_DAY} ({REVISED_INSTRUMENT} close +1%): production's market_bars "
               f"{REVISED_DAY} head is now {revised[:22]}..., the model read {recorded[:22]}...")
    click.echo(f"  uv.lock: {DOWNGRADE} (the current lock no longer matches the recorded one)")

    _say(f"reproduce {MODEL_NAME} version {version} from commit B's repository")
    outcome = reproduce_version(MODEL_NAME, version, workdir=root / "reproduction", registry=registry, store=store,
                                repo=copy, say=lambda line: click.echo(f"  {line}"))
    click.echo()
    click.echo(outcome.certificate.summary())
    if outcome.stored is not None:
        click.echo(f"stored beside the version in MLflow: {outcome.stored.json_ref} and {outcome.stored.summary_ref} "
                   f"({outcome.stored.sha256}); `ml-platform history` shows it under the version")
    click.echo(f"work directory: {outcome.workdir} (ui.sh opens the reproduction's Dagster UI)")
    click.echo(f"demo-reproduce finished in {time.perf_counter() - started:.0f} s")
    if not outcome.certificate.bit_exact:
        raise SystemExit(1)

