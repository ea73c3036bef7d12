"""A write on a full partition: a real 512 KiB tmpfs, mounted in a private user and mount namespace.

``unshare -rm`` gives the child process its own mount namespace as an unprivileged user, so the tmpfs
needs no root on the machine and vanishes with the child; the child writes, checks and prints JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = """
import json, os, sys
import numpy as np
import polars as pl
from ml_platform.io.store import PinnedStore

base = sys.argv[1]
store = PinnedStore(os.path.join(base, "storage"))
small = pl.DataFrame({"value": [1.0, 2.0]})
store.write("features/a", "2012-01-03", small)
big = pl.DataFrame({"value": np.random.default_rng(0).random(200_000)})  # 1.6 MB: more than the partition
out = {}
try:
    store.write("features/a", "2012-01-03", big)
except Exception as exc:
    out = {"type": type(exc).__name__, "code": getattr(exc, "code", None), "errno": getattr(exc, "errno", None),
           "oserror": isinstance(exc, OSError), "message": str(exc)}
out["head"] = store.read("features/a", "2012-01-03").frame.to_dict(as_series=False)
out["temporaries"] = sorted(n for _, _, files in os.walk(base) for n in files if ".tmp-" in n)
print(json.dumps(out))
"""


def _namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], check=False, capture_output=True,
                          timeout=30).returncode == 0


@pytest.mark.skipif(not _namespaces_work(), reason="needs `unshare -rm` (user namespaces) to mount a small tmpfs")
def test_a_full_partition_is_named_with_the_path_and_the_previous_head_stays(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    shell = f'mount -t tmpfs -o size=512k tmpfs "{mount}" && exec "{sys.executable}" "{script}" "{mount}"'
    result = subprocess.run(["unshare", "-rm", "sh", "-c", shell], check=False, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])

    assert out["type"] == "StorageFull" and out["code"] == "STORAGE_FULL" and out["errno"] == 28, out
    assert out["oserror"]  # callers that handle OSError still do
    message = out["message"]
    assert f"no space left on the partition mounted at {mount} (" in message and "bytes free" in message
    assert f"writing {mount}/storage/objects/" in message and "previous content is intact" in message
    assert "Free space on" in message and "ml-platform gc" in message
    assert out["head"] == {"value": [1.0, 2.0]}  # the previous version is still the head, readable
    assert out["temporaries"] == []  # and no half-written file is left behind
