"""Lineage benchmarks: cold code + graph hashing of 1,000 features, and data-hash throughput.

Rows (``run()``):

* ``graph_hash_1000_nodes_s``: a generated module with 1,000 feature functions in a layered DAG,
  each calling shared project helpers (which read a module constant and a class); seconds for a
  *cold* :class:`~ml_platform.lineage.code_hash.CodeHasher` to hash all 1,000 plus
  :func:`~ml_platform.lineage.graph_hash.compute_graph_hashes`. No baseline.
* ``data_hash_gbps``: GB/s of :func:`~ml_platform.lineage.data_hash.hash_table` over a 4-million-row,
  multi-chunk table (int64, float64 and string columns with nulls), bytes = sum of its buffer
  sizes; baseline = GB/s of :func:`~ml_platform.lineage.data_hash.raw_buffer_hash` (plain XXH3 over
  the same buffers as stored); ratio = value / baseline. Best of 3 each.

Run alone with ``python benchmarks/bench_lineage.py``.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from timing import best_seconds

from ml_platform.lineage.code_hash import CodeHasher
from ml_platform.lineage.data_hash import hash_table, raw_buffer_hash
from ml_platform.lineage.graph_hash import GraphNode, compute_graph_hashes

FEATURES = 1_000
LAYER_WIDTH = 50
ROWS = 4_000_000
CHUNKS = 8
REPEATS = 3

_HELPERS = '''
from dataclasses import dataclass

WINDOW = 20


@dataclass(frozen=True)
class Spec:
    """Feature settings."""

    window: int = WINDOW

    def scaled(self, x):
        return x / self.window


def clip(x, lo=-3.0, hi=3.0):
    """Clip to a band."""
    return max(lo, min(hi, x))


def zscore(values, spec=Spec()):
    mean = sum(values) / len(values)
    spread = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 or 1.0
    return [clip(spec.scaled((v - mean) / spread)) for v in values]
'''


def _feature_module(count: int, width: int) -> tuple[str, dict[str, tuple[str, ...]]]:
    """Source of ``count`` feature functions in layers of ``width``; each reads two of the layer above."""
    lines = ["from . import helpers", ""]
    upstream: dict[str, tuple[str, ...]] = {}
    for i in range(count):
        layer, pos = divmod(i, width)
        parents = () if layer == 0 else tuple(f"f{(layer - 1) * width + (pos + k) % width}" for k in (0, 1))
        upstream[f"f{i}"] = parents
        args = ", ".join(parents) or "raw"
        body = " + ".join(f"sum({p})" for p in parents) or "sum(raw)"
        lines += [
            "",
            f"def f{i}({args}):",
            f'    """Feature {i}."""',
            f"    base = {body} * {i % 7 + 1}",
            "    return helpers.zscore([base, base + 1, base * 2])",
            "",
        ]
    return "\n".join(lines), upstream


def bench_graph_hash() -> dict[str, Any]:
    """Cold CodeHasher over 1,000 generated features, plus graph hashes."""
    package = f"mlp_bench_{uuid.uuid4().hex[:10]}"
    source, upstream = _feature_module(FEATURES, LAYER_WIDTH)
    with tempfile.TemporaryDirectory() as tmp:
        package_dir = Path(tmp) / package
        package_dir.mkdir()
        (package_dir / "__init__.py").write_text("")
        (package_dir / "helpers.py").write_text(_HELPERS)
        (package_dir / "features.py").write_text(source)
        sys.path.insert(0, tmp)
        try:
            module = importlib.import_module(f"{package}.features")
            functions = {key: getattr(module, key) for key in upstream}
            start = time.perf_counter()
            hasher = CodeHasher([package])
            code = {key: hasher.hash_function(fn).digest for key, fn in functions.items()}
            compute_graph_hashes(GraphNode(key, code[key], upstream[key]) for key in upstream)
            seconds = time.perf_counter() - start
        finally:
            sys.path.remove(tmp)
            for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
                del sys.modules[name]
    return {"name": "graph_hash_1000_nodes_s", "value": seconds, "unit": "s", "baseline": None, "ratio": None}


def _market_table(rows: int, chunks: int) -> pa.Table:
    rng = np.random.default_rng(7)
    symbols = np.array([f"SYM{i:04d}" for i in range(500)], dtype=object)
    batches = []
    per_chunk = rows // chunks
    for _ in range(chunks):
        null_mask = rng.random(per_chunk) < 0.02
        batches.append(
            pa.record_batch(
                {
                    "volume": pa.array(rng.integers(0, 10**6, per_chunk), mask=null_mask),
                    "price": pa.array(rng.normal(100.0, 5.0, per_chunk), mask=null_mask),
                    "symbol": pa.array(
                        symbols[rng.integers(0, len(symbols), per_chunk)], pa.string(), mask=null_mask
                    ),
                }
            )
        )
    return pa.Table.from_batches(batches)


def _buffer_bytes(table: pa.Table) -> int:
    return sum(
        b.size
        for column in table.columns
        for chunk in column.chunks
        for b in chunk.buffers()
        if b is not None
    )


def bench_data_hash() -> dict[str, Any]:
    """hash_table throughput against plain XXH3 over the same buffers."""
    table = _market_table(ROWS, CHUNKS)
    gigabytes = _buffer_bytes(table) / 1e9
    value = gigabytes / best_seconds(lambda: hash_table(table), REPEATS)
    baseline = gigabytes / best_seconds(lambda: raw_buffer_hash(table), REPEATS)
    return {
        "name": "data_hash_gbps",
        "value": value,
        "unit": "GB/s",
        "baseline": baseline,
        "ratio": value / baseline,
    }


def run() -> list[dict[str, Any]]:
    """All lineage benchmark rows."""
    return [bench_graph_hash(), bench_data_hash()]


if __name__ == "__main__":
    print(run())
