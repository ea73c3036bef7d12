"""The environment hash scheme: one capture gives one hash whatever ``PYTHONHASHSEED`` is.

The environment lock collects the BLAS libraries in a set; they used to be ordered by API and
version only, so two libraries agreeing on both (numpy's BLAS not found under numpy, and two
OpenBLAS copies loaded) came out in set-iteration order, which follows ``PYTHONHASHSEED``: the same
environment got a different hash in every process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ml_platform.environment.lock import EnvironmentLock
from ml_platform.lineage.schemes import ENVIRONMENT_SCHEME, verify_scheme

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, threadpoolctl
from ml_platform.environment import lock

infos = [
    {"user_api": "blas", "internal_api": "openblas", "version": "0.3.27", "threading_layer": "pthreads",
     "architecture": arch, "num_threads": threads, "filepath": f"/opt/elsewhere/libopenblas-{arch}.so"}
    for arch, threads in [("Haswell", 1), ("SkylakeX", 1), ("Zen", 2), ("Sandybridge", 1), ("Zen", 1)]
]
threadpoolctl.threadpool_info = lambda: infos
blas = lock._numpy_blas()
env = lock.EnvironmentLock("cpython", "3.11.7", "linux-x86_64-glibc2.36", (("numpy", "2.1.3"),), None, blas, ())
print(json.dumps({"order": [[b.architecture, b.num_threads] for b in blas], "hash": env.hash}))
"""


def test_blas_libraries_are_ordered_the_same_under_every_pythonhashseed() -> None:
    results = []
    for seed in ("0", "1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        done = subprocess.run(
            [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=False, timeout=120
        )
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout))
    assert results[0]["order"] == [
        ["Haswell", 1],
        ["Sandybridge", 1],
        ["SkylakeX", 1],
        ["Zen", 1],
        ["Zen", 2],
    ]
    assert all(result == results[0] for result in results)


def test_a_recorded_lock_keeps_its_blas_order_and_hash() -> None:
    """Sorting applies to a capture only: a stored record is rehashed exactly as it was written."""
    record = EnvironmentLock.from_dict(
        {
            "schema": ENVIRONMENT_SCHEME,
            "python": {"implementation": "cpython", "version": "3.11.7"},
            "platform": "linux-x86_64-glibc2.36",
            "packages": {},
            "uv_lock_hash": None,
            "blas": [
                {
                    "internal_api": "openblas",
                    "version": "0.3.27",
                    "threading_layer": "pthreads",
                    "architecture": arch,
                    "num_threads": 1,
                }
                for arch in ("Zen", "Haswell")
            ],
            "env_vars": {},
        }
    )
    assert [lib.architecture for lib in record.blas] == ["Zen", "Haswell"]
    assert [lib["architecture"] for lib in record.to_dict()["blas"]] == ["Zen", "Haswell"]
    assert verify_scheme("environment", record.to_dict()["schema"]).scheme_id == ENVIRONMENT_SCHEME
