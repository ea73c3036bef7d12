"""Benchmark: a rollback through the champion ledger against a bare MLflow alias write, on PostgreSQL.

Rows (each ``{"name", "value", "unit", "baseline", "ratio"}``), all on one private PostgreSQL server
(the harness :class:`~ml_platform.testing.postgres.PostgresServer`), one database, one run:

* ``rollback_p50_ms_1`` / ``rollback_p99_ms_1``: one client calling
  :meth:`~ml_platform.champions.service.ChampionService.rollback` ``to`` an earlier champion
  (alternating between two former champions, so every call moves the head); each call is the full
  path: the checks (head, was-champion, MLflow's version row and tags: one SQL read each), the ledger
  transaction (compare-and-set on the head), and the MLflow ``champion`` alias write after it.
  ``baseline``: the same percentile of bare ``MlflowClient.set_registered_model_alias`` calls by one
  client on the same database.
* ``rollback_p99_ms_16``: 16 clients at once, each a separate process (as 16 serving/ops processes
  would be; threads of one process would measure the GIL), each rolling back its own model (16
  models), against 16 processes each writing its own model's alias with bare MLflow.
* ``champion_resolve_ms``: median of serving's read of the champion of record (the ledger head, one
  read) against MLflow's ``get_model_version_by_alias``.

Target: ``rollback_p99_ms_16`` under 50 ms and within 3x of its baseline. Without PostgreSQL the
script says so and reports no rows. Run alone: ``python benchmarks/bench_rollback.py``.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "true")

CALLS_1 = 300
CALLS_16 = 100  # per client
CLIENTS = 16
RESOLVES = 500


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _concurrent(clients: int, calls: int, op: Callable[[int, int], None]) -> list[float]:
    """Latencies (ms) of ``clients`` threads each calling ``op(client, call)`` ``calls`` times, started together."""
    barrier = threading.Barrier(clients)
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(client: int) -> None:
        mine = []
        barrier.wait()
        try:
            for call in range(calls):
                start = time.perf_counter()
                op(client, call)
                mine.append((time.perf_counter() - start) * 1000)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return latencies


def _client_process(url: str, kind: str, name: str, calls: int, barrier: Any, out: Any) -> None:
    """One of the 16 clients: warm up, wait for the others, time ``calls`` moves, put the latencies on ``out``."""
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from mlflow import MlflowClient

    from ml_platform.champions.service import ChampionService
    from ml_platform.registry.store import ModelRegistry

    if kind == "ours":
        registry = ModelRegistry(url)
        service = ChampionService.open(registry)

        def op(call: int) -> None:
            service.rollback(name, to="1" if call % 2 == 0 else "2", reason="bench", actor="bench")
    else:
        client = MlflowClient(tracking_uri=url, registry_uri=url)

        def op(call: int) -> None:
            client.set_registered_model_alias(name, "bench_bare", "1" if call % 2 == 0 else "2")
    for call in range(10):  # warm: connections, MLflow's store
        op(call)
    barrier.wait()
    latencies = []
    for call in range(calls):
        start = time.perf_counter()
        op(call)
        latencies.append((time.perf_counter() - start) * 1000)
    out.put(latencies)


def _processes(url: str, kind: str, names: list[str], calls: int) -> list[float]:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(names)), ctx.Queue()
    procs = [ctx.Process(target=_client_process, args=(url, kind, name, calls, barrier, out)) for name in names]
    for proc in procs:
        proc.start()
    latencies: list[float] = []
    for _ in procs:
        latencies.extend(out.get(timeout=600))
    for proc in procs:
        proc.join()
        if proc.exitcode != 0:
            raise RuntimeError(f"a {kind} client process failed (exit {proc.exitcode})")
    return latencies


def _row(name: str, value: float, baseline: float) -> dict[str, Any]:
    return {"name": name, "value": round(value, 3), "unit": "ms", "baseline": round(baseline, 3),
            "ratio": round(value / baseline, 3) if baseline else None}


def bench(url: str, artifacts: Path) -> list[dict[str, Any]]:
    from mlflow import MlflowClient

    from ml_platform.champions.service import ChampionService
    from ml_platform.registry.store import ModelRegistry
    from ml_platform.testing.factories import CODE_SNAPSHOT, make_contract, make_model

    registry = ModelRegistry(url, artifact_location=str(artifacts))
    names = [f"bench_{i:02d}" for i in range(CLIENTS)]
    for name in names:
        for shift in (0.0, 0.1):
            model = make_model(shift)
            registry.register(model_name=name, model=model, contract=make_contract(name, model), params={},
                              metrics={"sharpe": 1.0}, code_snapshot=CODE_SNAPSHOT)
    service = ChampionService.open(registry)
    bare = MlflowClient(tracking_uri=url, registry_uri=url)
    try:
        for name in names:
            for version in ("1", "2"):
                service.promote(name, version, actor="bench", approver="bench", reason="bench setup")

        def ours(client: int, call: int) -> None:
            service.rollback(names[client], to="1" if call % 2 == 0 else "2", reason="bench", actor="bench")

        def theirs(client: int, call: int) -> None:
            bare.set_registered_model_alias(names[client], "bench_bare", "1" if call % 2 == 0 else "2")

        for op in (ours, theirs):  # warm: connections, imports, MLflow's store
            _concurrent(1, 20, op)
        ours_1, bare_1 = _concurrent(1, CALLS_1, ours), _concurrent(1, CALLS_1, theirs)
        ours_16, bare_16 = _processes(url, "ours", names, CALLS_16), _processes(url, "bare", names, CALLS_16)
        for name in names:
            service.verify(name)
            assert registry.champion_alias(name) == service.champion(name)

        ledger = service.ledger
        bare.set_registered_model_alias(names[0], "champion", service.champion(names[0]))
        resolve = [_timed(lambda: ledger.head(names[0])) for _ in range(RESOLVES)]
        by_alias = [_timed(lambda: bare.get_model_version_by_alias(names[0], "champion")) for _ in range(RESOLVES)]
    finally:
        service.close()
    return [
        _row("rollback_p50_ms_1", statistics.median(ours_1), statistics.median(bare_1)),
        _row("rollback_p99_ms_1", _percentile(ours_1, 99), _percentile(bare_1, 99)),
        _row("rollback_p99_ms_16", _percentile(ours_16, 99), _percentile(bare_16, 99)),
        _row("champion_resolve_ms", statistics.median(resolve), statistics.median(by_alias)),
    ]


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def run() -> list[dict[str, Any]]:
    """All rows of this benchmark, measured in one run (none without PostgreSQL)."""
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    from ml_platform.testing.postgres import PostgresHarnessError, PostgresServer, find_postgres_binaries

    bin_dir, reason = find_postgres_binaries()
    if bin_dir is None:
        print(f"bench_rollback: PostgreSQL is not available ({reason}); no rollback rows", file=sys.stderr)
        return []
    try:
        server = PostgresServer(bin_dir)
        server.start()
    except PostgresHarnessError as exc:
        print(f"bench_rollback: PostgreSQL could not be started ({exc}); no rollback rows", file=sys.stderr)
        return []
    try:
        database = server.create_database("bench_rollback")
        with tempfile.TemporaryDirectory(prefix="bench_rollback_") as artifacts:
            return bench(database.sqlalchemy_url, Path(artifacts))
    finally:
        server.stop()


if __name__ == "__main__":
    for row in run():
        print(row)
