"""The history benchmark's synthetic feature graph as a code location of the production stack.

``python -m prod_local start --code-file benchmarks/history_definitions.py`` serves these Definitions (under the
stack's one location name) instead of the example project's; ``bench_history.py`` launches its backfills
through the stack's GraphQL API. The deployment (S3 store, MLflow, Celery executor) comes from the stack's
``ML_PLATFORM_*`` variables, as for any project (:func:`ml_platform.build_definitions`).
"""

import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_history and timing, as when run alone

import bench_history

from ml_platform import Settings, build_definitions, build_feature_assets

#: the checkout: its uv.lock and git commit are what every write records and every read compares (each process
#: of the stack runs in its own working directory, where no uv.lock would be found)
REPO = Path(__file__).resolve().parents[1]
SETTINGS = Settings.from_env(os.environ)
if SETTINGS.project_root is None:
    SETTINGS = dataclasses.replace(SETTINGS, project_root=str(REPO))

defs = build_definitions(SETTINGS, assets=build_feature_assets(bench_history.history_graph(REPO),
                                                               partitions_def=bench_history.calendar()))
