"""Production of a project scaffolded by ``ml-platform init``, run by the project's own virtual environment.

``python scaffold_production.py PACKAGE HOME TRAIN LIVE`` (windows as ``START..END``), from the project's
folder: the source over the history, every feature, the training set over TRAIN, a model trained and
registered, made champion, and its live signals over LIVE, each a real Dagster run on a throwaway
instance, storing under HOME. Prints the registered version on its last line.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys

import dagster as dg

from ml_platform import DataWindow, Settings
from ml_platform.testing import champion_shortcut


def main(package: str, home: str, train: str, live: str) -> str:
    definitions = importlib.import_module(f"{package}.definitions")
    features = importlib.import_module(f"{package}.features")
    training, serving = DataWindow.parse(train), DataWindow.parse(live)
    defs = definitions.build_defs(Settings.local(home))
    days = definitions.PARTITIONS.get_partition_keys()

    def materialize(keys: tuple[str, ...], window: DataWindow | None = None, config: dict | None = None) -> dg.ExecuteInProcessResult:
        tags = {}
        if window is not None:
            inside = [d for d in days if window.start.isoformat() <= d <= window.end.isoformat()]
            tags = {"dagster/asset_partition_range_start": inside[0], "dagster/asset_partition_range_end": inside[-1]}
        return dg.materialize(list(defs.assets or []), selection=[dg.AssetKey(k) for k in keys], instance=instance,
                              resources=dict(defs.resources or {}), tags=tags,
                              run_config={"ops": {op: {"config": c} for op, c in (config or {}).items()}})

    computed = tuple(node.key for node in features.GRAPH if node.key not in {"prices", features.TRAINING_SET})
    with dg.instance_for_test() as instance:
        # the label looks one bar ahead: the source a week past the live window
        materialize(("prices",), DataWindow(features.HISTORY_START, serving.end + dt.timedelta(days=7)))
        materialize(computed, DataWindow(features.HISTORY_START, serving.end))
        materialize((features.TRAINING_SET,), config={features.TRAINING_SET: {"window": str(training)}})
        [registered] = materialize(("trained_model",)).asset_materializations_for_node("trained_model")
        version = str(registered.metadata["ml_platform/model_version"].value)
        champion_shortcut(defs.resources["model_registry"].get_registry(), definitions.MODEL_NAME, version)
        materialize(("live_signals",), serving)
    return version


if __name__ == "__main__":
    print(main(*sys.argv[1:5]))
