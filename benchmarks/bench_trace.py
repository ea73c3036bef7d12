"""Benchmark: tracing one live signal against reading the one stored signal row.

Row (``{"name", "value", "unit", "baseline", "ratio"}``):

* ``trace_ms``: median of :func:`ml_platform.trace_signal` (first recorded version of the day, the ledger
  chain verified, the contract loaded from MLflow, every object on the path re-read and re-hashed, the
  linked documents checked) for one model, day and instrument. ``baseline``: the plain alternative,
  reading that day's live-signal partition from the store (verified) and filtering the instrument's row.

The history is real and small: the test suite's second project (``ml_platform_tests/projects/team_b``:
business days, lookbacks of 10 and 20 sessions, a scikit-learn ridge) materialized with Dagster on a
temporary instance over five months, trained, registered in MLflow, made champion, and live signals for
one week; the traced path holds about 60 recorded versions. Run alone: ``python benchmarks/trace_bench.py``.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

PROJECT = ROOT / "ml_platform_tests" / "projects" / "team_b"
TRACES = 30
DAY, INSTRUMENT = "2021-06-09", "ALPH"


def _history(home: Path):  # type: ignore[no-untyped-def]
    """team_b (the test suite's second project) materialized, trained, made champion and served for a week."""
    import dagster as dg

    from ml_platform import DataWindow, Lifecycle, ModelRegistry, PinnedStore, Settings

    sys.path.insert(0, str(PROJECT))
    from team_b.definitions import MODEL_NAME, PREFIX, team_definitions
    from team_b.features import build_graph

    settings = Settings.local(home / ".ml_platform")
    graph = build_graph()
    instance_context = dg.instance_for_test()
    instance = instance_context.__enter__()
    life = Lifecycle(team_definitions(settings, graph), graph, instance, key_prefix=PREFIX)
    life.features(DataWindow.parse("2021-01-04..2021-06-11"))
    life.training_set(DataWindow.parse("2021-01-04..2021-05-28"))
    result = life.train(trained_by="bench")
    version = result.asset_materializations_for_node(f"{PREFIX}__trained_model")[-1].metadata[
        "ml_platform/model_version"].value
    registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
    registry.set_champion(MODEL_NAME, version)
    life.live(DataWindow.parse("2021-06-07..2021-06-11"))
    return MODEL_NAME, f"{PREFIX}/live_signals", PinnedStore(settings.storage), registry, instance_context


def trace_ms() -> list[dict]:
    """The ``trace_ms`` row: one trace against reading the one stored signal row."""
    import polars as pl

    from ml_platform import trace_signal

    with tempfile.TemporaryDirectory(prefix="ml_platform_trace_bench_") as tmp:
        model, key, store, registry, instance_context = _history(Path(tmp))
        try:
            day = dt.date.fromisoformat(DAY)

            def read_row() -> None:
                frame = store.read(key, DAY).frame
                assert frame.filter((pl.col("session") == day) & (pl.col("ticker") == INSTRUMENT)).height == 1

            def trace() -> None:
                trace_signal(model, DAY, INSTRUMENT, store=store, registry=registry)

            trace()  # warm: MLflow client, ledger engine
            read_row()
            traced, read = [], []
            for _ in range(TRACES):
                started = time.perf_counter()
                trace()
                traced.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                read_row()
                read.append((time.perf_counter() - started) * 1000)
        finally:
            registry.ledger().close()
            instance_context.__exit__(None, None, None)
    value, baseline = statistics.median(traced), statistics.median(read)
    return [{"name": "trace_ms", "value": round(value, 2), "unit": "ms", "baseline": round(baseline, 3),
             "ratio": round(value / baseline, 1)}]


def run() -> list[dict]:
    """The rows of this benchmark (the ``benchmarks/run.py`` protocol)."""
    return trace_ms()


if __name__ == "__main__":
    for row in run():
        print(row)
