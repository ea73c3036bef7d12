"""Benchmark: garbage collection of a pinned store holding 100,000 objects, most of them reachable.

Rows (each ``{"name", "value", "unit", "baseline", "ratio"}``):

* ``gc_seconds_100k_objects``: seconds for one :meth:`~ml_platform.io.store.PinnedStore.gc`
  (list objects and refs, read every head, follow upstream references, delete the unreachable
  objects) over a store of 100,000 objects: 1,000 partitions with 90 versions each in their
  history (within retention) plus 10,000 orphans (objects no manifest names, older than the grace
  period). The store is built directly on disk (small placeholder objects, head and history files
  named by the layout), not through ``write``: GC reads names, heads and manifests, never object
  bytes. Best of 3, each on a fresh copy of the orphans.

Run alone: ``python benchmarks/bench_gc.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from timing import best_seconds

from ml_platform.io.gc import collect
from ml_platform.io.layout import head_rel, history_rel, object_rel
from ml_platform.io.store import PinnedStore

PARTITIONS = 1_000
VERSIONS = 90
ORPHANS = 10_000
REPEATS = 3


def _hash(i: int) -> str:
    return "xxh3_128:" + f"{(i * 2654435761) % (1 << 128):032x}"


def _touch(path: Path, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def build(base: Path) -> list[Path]:
    """The store described in the module docstring; returns the orphan object paths."""
    now = time.time()
    counter = 0
    for p in range(PARTITIONS):
        partition = f"2012-{1 + p // 28 % 12:02d}-{1 + p % 28:02d}" if p < 336 else f"p{p}"
        head = None
        for v in range(VERSIONS):
            data_hash = _hash(counter)
            counter += 1
            written_at = f"2024-05-01T12:00:{v // 1_000_000:02d}.{v % 1_000_000:06d}+00:00"
            record = {"data_hash": data_hash, "upstream": [], "written_at": written_at}
            raw = json.dumps(record).encode()
            _touch(base / object_rel(data_hash), b"PAR1")
            _touch(base / history_rel("features/bench", partition, written_at, data_hash), raw)
            head = raw
        assert head is not None
        _touch(base / head_rel("features/bench", partition), head)
    orphans = []
    old = now - 7200
    for o in range(ORPHANS):
        path = base / object_rel(_hash(counter + o))
        _touch(path, b"PAR1")
        os.utime(path, (old, old))
        orphans.append(path)
    return orphans


def bench_gc(workdir: Path, repeats: int = REPEATS) -> dict[str, Any]:
    base = workdir / "store"
    orphans = build(base)
    store = PinnedStore(base)
    # keep_days large: every history entry is within retention, so 90,000 objects are reachable
    best = float("inf")
    for _ in range(repeats):
        old = time.time() - 7200
        for path in orphans:
            if not path.exists():
                path.write_bytes(b"PAR1")
                os.utime(path, (old, old))
        seconds = best_seconds(lambda: collect(store, keep_days=36_500, grace_seconds=3600), 1)
        best = min(best, seconds)
        assert not any(path.exists() for path in orphans)
    return {"name": "gc_seconds_100k_objects", "value": round(best, 4), "unit": "s", "baseline": None,
            "ratio": None}


def run() -> list[dict[str, Any]]:
    """All rows of this benchmark, measured in one run."""
    with tempfile.TemporaryDirectory(prefix="bench_gc_") as directory:
        return [bench_gc(Path(directory))]


if __name__ == "__main__":
    print(run())
