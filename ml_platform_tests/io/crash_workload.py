"""The io crash matrix's workload, run in a child of :mod:`ml_platform_tests.crash.driver`.

A trial ``{"base", "op", "roots"}``: ``op`` ``write`` rewrites a partition, writes a new one, reuses existing
content and writes an unpartitioned asset, four times over, in the store at ``base``, then writes content
whose object is there but damaged (no head reaches it: its writer's head was lost), which repairs it in
place; ``gc`` collects it, keeping ``roots``. The point is armed before the first step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from ml_platform.io.gc import collect
from ml_platform.io.layout import object_rel
from ml_platform.io.store import PinnedStore

#: written by a writer whose head is lost, its object damaged, then written again: the object is repaired
REPAIRED = pl.DataFrame({"v": [7.0, 7.0]})


def run(args: list[str], trial: dict[str, Any], arm: Callable[[], None]) -> str:
    arm()
    store = PinnedStore(trial["base"])
    if trial["op"] == "write":
        for i in range(4):  # a rewrite, a new partition, a reuse of existing content, an unpartitioned write
            store.write("features/a", "2012-01-03", pl.DataFrame({"v": [100.0 + i, 1.0]}))
            store.write("features/a", "2012-01-0" + str(4 + i % 2), pl.DataFrame({"v": [float(i % 2), 1.0]}))
            store.write("model_inputs", None, pl.DataFrame({"v": [float(i), 2.0]}))
        lost = store.write("lost_writer", None, REPAIRED)
        for rel in list(store.filesystem.list_files("refs/lost_writer")):
            store.filesystem.delete(rel)
        store.filesystem.write_bytes(object_rel(lost.data_hash), b"damaged: not the object its name promises")
        store.write("repaired", None, REPAIRED)
    else:
        collect(store, trial["roots"], keep_days=0, grace_seconds=0)
    return "finished"
