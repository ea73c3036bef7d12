"""Benchmark: reproducing a registered model against building it in the first place.

Rows (each ``{"name", "value", "unit", "baseline", "ratio"}``):

* ``reproduce_ratio_vs_training``: seconds of ``reproduce_version`` for a model trained on two years of
  daily data for 100 synthetic instruments (checkout, lineage walk with every object re-hashed, source
  seeding, the daemon-run Dagster backfill of every other recorded partition, retraining, comparison and
  the certificate), *without* the environment build, against the original feature materialization plus
  training set plus training (in-process ``Lifecycle`` runs on a SQLite instance). Target: ratio <= 1.5
  (reported, not asserted).
* ``reproduce_environment_build_s``: what the reproduction spent building its virtual environment from the
  recorded ``uv.lock`` (``uv sync --frozen`` with the uv cache warm, since ``make env`` synced the same
  lock), reported separately.
* ``reproduce_bit_exact``: 1 if the certificate was bit-exact.

Production trains from a fresh ``git clone`` of this repository with one committed module added (the
benchmark's Definitions: the example's graph over the synthetic market of 100 instruments), so the
reproduction checks out that commit and loads the same Definitions in its own code location.

Run alone: ``python benchmarks/bench_reproduce.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FEATURES = "2019-01-02..2020-12-31"
TRAINING = "2019-03-01..2020-12-31"
INSTRUMENTS = 100
TARGET_RATIO = 1.5
_GIT = ("git", "-c", "user.name=bench", "-c", "user.email=bench@invalid")

BENCH_DEFS = '''"""The reproduction benchmark's Definitions: the example graph over 100 synthetic instruments."""

import os
from dataclasses import replace

from ml_platform import FeatureGraph, FrameKeys, Settings
from quant_alpha.features import FEATURE_NODES, market_bars
from quant_alpha.market.schema import KEYS
from quant_alpha.project import project_definitions


def bench_graph(project_root=None):
    bars = replace(market_bars, params={**market_bars.params, "source": "synthetic", "n_instruments": __INSTRUMENTS__})
    return FeatureGraph((bars, *FEATURE_NODES[1:]), keys=FrameKeys(*KEYS[:1], KEYS[1:]),
                        project_packages=("quant_alpha",), project_root=project_root)


def build(settings, project_root=None):
    return project_definitions(settings, bench_graph(project_root), watch_schedule=False)


defs = build(Settings.from_env(os.environ))
'''.replace("__INSTRUMENTS__", str(INSTRUMENTS))


def _progress(started: float):  # type: ignore[no-untyped-def]
    """The reproduction's progress lines on stderr, each with the seconds since it started."""
    return lambda line: print(f"  [{time.perf_counter() - started:7.1f} s] {line}", file=sys.stderr, flush=True)


def run() -> list[dict]:
    import dagster as dg

    from ml_platform import DataWindow, Lifecycle, ModelRegistry, PinnedStore, Settings, reproduce_version

    with tempfile.TemporaryDirectory(prefix="bench_reproduce_") as scratch:
        tmp = Path(scratch)
        clone = tmp / "repo"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=300)
        package = clone / "examples" / "quant_alpha"
        # at the checkout's root: the reproduction's code location runs from there (its working directory)
        (clone / "bench_reproduce_defs.py").write_text(BENCH_DEFS)
        subprocess.run([*_GIT, "add", "--all"], cwd=clone, check=True)
        subprocess.run([*_GIT, "commit", "--quiet", "-m", "bench definitions"], cwd=clone, check=True)
        sys.path.insert(0, str(clone))
        try:
            import bench_reproduce_defs  # type: ignore[import-not-found]
        finally:
            sys.path.remove(str(clone))
        settings = Settings.local(tmp / "production")
        graph = bench_reproduce_defs.bench_graph(package)
        defs = bench_reproduce_defs.project_definitions(settings, graph, watch_schedule=False)
        (tmp / "dagster").mkdir()
        (tmp / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with dg.DagsterInstance.from_config(str(tmp / "dagster")) as instance:
            life = Lifecycle(defs, graph, instance, log_level="CRITICAL")
            started = time.perf_counter()
            life.features(DataWindow.parse(FEATURES))
            life.training_set(DataWindow.parse(TRAINING))
            meta = life.train().asset_materializations_for_node("trained_model")[-1].metadata
            baseline = time.perf_counter() - started
        version = str(meta["ml_platform/model_version"].value)
        name = str(meta["ml_platform/model_name"].value)
        registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
        started = time.perf_counter()
        outcome = reproduce_version(name, version, workdir=tmp / "work", registry=registry,
                                    store=PinnedStore(settings.storage), repo=clone,
                                    defs="bench_reproduce_defs:defs", timeout_seconds=3600, say=_progress(started))
        total = time.perf_counter() - started
        environment = float(outcome.certificate.facts.get("timings", {}).get("environment_s", 0.0))  # type: ignore[union-attr]
        value = total - environment
        return [
            {"name": "reproduce_ratio_vs_training", "value": round(value, 2), "unit": "s",
             "baseline": round(baseline, 2), "ratio": round(value / baseline, 3)},
            {"name": "reproduce_environment_build_s", "value": round(environment, 2), "unit": "s",
             "baseline": None, "ratio": None},
            {"name": "reproduce_bit_exact", "value": int(outcome.certificate.bit_exact), "unit": "bool",
             "baseline": None, "ratio": None},
        ]


if __name__ == "__main__":
    for row in run():
        print(row)
    print(f"target: reproduce_ratio_vs_training ratio <= {TARGET_RATIO}")
