"""Benchmark: tracing one live signal on the demo's store against reading the one stored signal row.

Row (``{"name", "value", "unit", "baseline", "ratio"}``):

* ``trace_ms``: median of :func:`ml_platform.trace_signal` (first recorded version of the day, the ledger
  chain verified, the contract loaded from MLflow, every object on the path re-read and its bytes hashed against the recorded file hash, the
  linked documents checked) for the first live day and instrument the demo served. ``baseline``: the
  plain alternative, reading that day's live-signal partition from the store (verified) and filtering
  the instrument's row. Target: under 200 ms on the embedded default.

The store is the demo's: ``quant-alpha demo`` is run first into a temporary home (about five minutes:
two models, a promotion, a rollback, a code change and monitoring, so the traced path holds the whole
history), or ``BENCH_TRACE_DEMO_HOME`` names the ``.ml_platform`` folder of a finished ``make demo``.
Run alone: ``python benchmarks/bench_trace.py``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

TRACES = 30
MODEL, SIGNALS_KEY = "alpha_ridge", "live_signals"


def _demo_home(tmp: Path) -> Path:
    """The ``.ml_platform`` of a finished demo: the named one, or a fresh ``quant-alpha demo`` run."""
    named = os.environ.get("BENCH_TRACE_DEMO_HOME")
    if named:
        home = Path(named).resolve()
        if not (home / "trace" / "trace.json").is_file():
            raise SystemExit(f"BENCH_TRACE_DEMO_HOME={named}: no finished demo there (trace/trace.json is missing); "
                             "run `make demo` or unset it")
        return home
    home = tmp / ".ml_platform"
    env = {**os.environ, "DAGSTER_HOME": str(home / "dagster")}
    demo = subprocess.run([str(Path(sys.executable).with_name("quant-alpha")), "demo", "--home", str(home)],
                          check=False, cwd=ROOT, env=env, capture_output=True, text=True)
    if demo.returncode != 0:
        raise SystemExit(f"quant-alpha demo failed (exit {demo.returncode}):\n{demo.stdout[-3000:]}{demo.stderr[-3000:]}")
    return home


def trace_ms() -> list[dict]:
    """The ``trace_ms`` row: one trace on the demo's store against reading the one stored signal row."""
    import datetime as dt

    import polars as pl

    from ml_platform import ModelRegistry, PinnedStore, Settings, trace_signal

    with tempfile.TemporaryDirectory(prefix="ml_platform_trace_bench_") as tmp:
        settings = Settings.local(_demo_home(Path(tmp)))
        store = PinnedStore(settings.storage)
        registry = ModelRegistry(settings.tracking_uri, artifact_location=settings.artifact_location)
        day = min(p for _, p in store.locations(SIGNALS_KEY) if p is not None)
        frame = store.read(SIGNALS_KEY, day).frame
        instrument = frame["instrument"].sort()[0]
        when = dt.date.fromisoformat(day)

        def read_row() -> None:
            rows = store.read(SIGNALS_KEY, day).frame
            assert rows.filter((pl.col("date") == when) & (pl.col("instrument") == instrument)).height == 1

        def trace() -> None:
            trace_signal(MODEL, day, instrument, store=store, registry=registry)

        trace()  # warm: MLflow client
        read_row()
        traced, read = [], []
        for _ in range(TRACES):
            started = time.perf_counter()
            trace()
            traced.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            read_row()
            read.append((time.perf_counter() - started) * 1000)
    value, baseline = statistics.median(traced), statistics.median(read)
    return [{"name": "trace_ms", "value": round(value, 2), "unit": "ms", "baseline": round(baseline, 3),
             "ratio": round(value / baseline, 1)}]


def run() -> list[dict]:
    """The rows of this benchmark (the ``benchmarks/run.py`` protocol)."""
    return trace_ms()


if __name__ == "__main__":
    for row in run():
        print(row)
