"""Cost of the deploy-contract check at the serving boundary.

``contract_check_ms``: mean wall time of :func:`~ml_platform.registry.check_contract` for a matching
20-column schema under the ``strict`` policy, measured after the contract was loaded (parsing the
contract, rebuilding its environment lock and indexing its schema happen once, at load). The target
is well under 1 ms. There is no plain alternative to compare with (not checking costs nothing), so
baseline and ratio are null.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time

from ml_platform.environment import capture_environment
from ml_platform.keys import FrameKeys
from ml_platform.models.protocol import RIDGE_FORMAT
from ml_platform.registry import (
    DeployContract,
    FeatureField,
    FeatureSchema,
    LiveFeatureStream,
    check_contract,
)
from ml_platform.window import DataWindow

ITERATIONS = 20_000


def _contract_and_live() -> tuple[DeployContract, LiveFeatureStream]:
    env = capture_environment()
    fields = (FeatureField("date", "date32[day]", False), FeatureField("instrument", "utf8", False),
              *(FeatureField(f"feature_{i:02d}", "double") for i in range(18)))
    graph_hash = "sha256:" + hashlib.sha256(b"bench").hexdigest()
    contract = DeployContract(
        model_name="bench", model_version="1", feature_graph_hash=graph_hash,
        feature_schema=FeatureSchema(fields), keys=FrameKeys("date", ("instrument",)),
        training_window=DataWindow.parse("2015-01-02..2019-12-31"),
        validation_window=DataWindow.parse("2020-01-02..2020-12-31"),
        training_set_data_hash="xxh3_128:" + "0" * 32, model_sha256="sha256:" + "1" * 64,
        model_format=RIDGE_FORMAT, environment_hash=env.hash, environment_lock=env.to_dict(), seeds={"train": 1},
        git_commit=None, git_dirty=False, trained_by="bench", created_at=dt.datetime.now(dt.UTC),
    )
    # Load it the way the registry does, so nothing is shared with the object built above.
    loaded = DeployContract.from_json(contract.to_json())
    live = LiveFeatureStream(graph_hash, FeatureSchema(tuple(FeatureField(f.name, f.type, f.nullable) for f in fields)))
    return loaded, live


def run() -> list[dict]:
    contract, live = _contract_and_live()
    env = capture_environment()
    check_contract(contract, live, running_env=env, policy="strict")  # warm up
    started = time.perf_counter()
    for _ in range(ITERATIONS):
        check_contract(contract, live, running_env=env, policy="strict")
    mean_ms = (time.perf_counter() - started) * 1000.0 / ITERATIONS
    return [{"name": "contract_check_ms", "value": mean_ms, "unit": "ms", "baseline": None, "ratio": None}]


if __name__ == "__main__":
    for row in run():
        print(row)
