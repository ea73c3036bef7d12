"""`make bench`: run every benchmarks/bench_*.py, print one table, write benchmarks/results.json.

``run.py bench_x [bench_y ...]`` runs only those and updates their rows in results.json, keeping the others'.

Each module defines ``run() -> list[dict]`` of rows ``{"name", "value", "unit", "baseline", "ratio"}``.
Targets are read off this table; nothing here asserts a time.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the bench scripts share benchmarks/timing.py, as when run alone
FIELDS = ("name", "value", "unit", "baseline", "ratio")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # importable by name: a benchmark's worker processes unpickle its functions
    spec.loader.exec_module(module)
    return module


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _merged(rows: list[dict]) -> list[dict]:
    """``rows`` of some benchmarks (``run.py bench_x ...``) over the stored table: same-named rows are
    replaced in place, new ones appended, the other benchmarks' rows kept."""
    try:
        stored = json.loads((HERE / "results.json").read_text())["benchmarks"]
    except (OSError, ValueError, KeyError, TypeError):
        stored = []
    fresh = {r["name"]: r for r in rows}
    merged = [fresh.pop(r["name"], r) for r in stored if isinstance(r, dict) and "name" in r]
    return merged + [r for r in rows if r["name"] in fresh]


def main(argv: list[str]) -> int:
    only = set(argv)
    rows: list[dict] = []
    failed: list[str] = []
    for path in sorted(HERE.glob("bench_*.py")):
        if only and path.stem not in only:
            continue
        started = time.perf_counter()
        print(f"running {path.name} ...", flush=True)
        try:
            got = _load(path).run()
        except Exception as exc:  # noqa: BLE001 - every failing benchmark is reported, then the command fails
            failed.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        for row in got:
            missing = [f for f in FIELDS if f not in row]
            if missing:
                failed.append(f"{path.name}: row {row!r} lacks {missing}")
                continue
            rows.append({f: row[f] for f in FIELDS})
        print(f"  done in {time.perf_counter() - started:.1f}s", flush=True)
    width = max([len(r["name"]) for r in rows] + [4])
    print(f"\n{'name':<{width}}  {'value':>12}  {'unit':<8}  {'baseline':>12}  {'ratio':>8}")
    for r in rows:
        print(f"{r['name']:<{width}}  {_fmt(r['value']):>12}  {r['unit']:<8}  {_fmt(r['baseline']):>12}  {_fmt(r['ratio']):>8}")
    (HERE / "results.json").write_text(json.dumps({"benchmarks": _merged(rows) if only else rows}, indent=2) + "\n")
    print(f"\nwrote {HERE / 'results.json'}")
    for line in failed:
        print(f"FAILED {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
