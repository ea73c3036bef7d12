"""Names of the metadata ml_platform puts on Dagster assets and materializations, defined once. Pure.

Every key is namespaced ``ml_platform/``. The asset factories write them, the IO manager reads the
ones that describe a write (hashes, seeds, window, time column, project root), and the CLI and tests
read them back from the event log.
"""

from __future__ import annotations

PREFIX = "ml_platform/"

CODE_HASH = PREFIX + "code_hash"
GRAPH_HASH = PREFIX + "graph_hash"
DATA_HASH = PREFIX + "data_hash"
#: a stored partition's manifest hash: the anchor ``verify`` compares the store's head with
MANIFEST_HASH = PREFIX + "manifest_hash"
SEEDS = PREFIX + "seeds"
PARAMS = PREFIX + "params"
WINDOW = PREFIX + "window"
UPSTREAM = PREFIX + "upstream"
FUNCTION = PREFIX + "function"
SOURCE = PREFIX + "source"
NODE = PREFIX + "node"
KEY_COLUMNS = PREFIX + "key_columns"
#: the column a range run's frame is split on into partitions
TIME_COLUMN = PREFIX + "time_column"
#: the folder of the project whose code computed the output (its git commit and uv.lock are recorded)
PROJECT_ROOT = PREFIX + "project_root"
#: the digest of the container image that wrote a stored output (``sha256:<64 hex>``; absent outside an image)
IMAGE_DIGEST = PREFIX + "image_digest"
#: the environment acceptance (its hash) a strict load relied on: stored lock accepted for the running one
ENVIRONMENT_ACCEPTANCE = PREFIX + "environment_acceptance"

MODEL_NAME = PREFIX + "model_name"
MODEL_VERSION = PREFIX + "model_version"
MODEL_FORMAT = PREFIX + "model_format"
MLFLOW_RUN_ID = PREFIX + "mlflow_run_id"
MODEL_URI = PREFIX + "model_uri"
FEATURE_GRAPH_HASH = PREFIX + "feature_graph_hash"
MODEL_SHA256 = PREFIX + "model_sha256"
TRAINING_WINDOW = PREFIX + "training_window"
VALIDATION_WINDOW = PREFIX + "validation_window"
TRACKING_URI = PREFIX + "tracking_uri"
ENVIRONMENT_DIFFERENCES = PREFIX + "environment_differences"
TOTAL_PNL = PREFIX + "total_pnl"
#: on the dagster.Failure of an asset that raised a platform error (see ml_platform.dagster_boundary)
ERROR_CODE = PREFIX + "error_code"
ERROR_TYPE = PREFIX + "error_type"
ASSET_KEY = PREFIX + "asset_key"
PARTITION_RANGE = PREFIX + "partition_range"
#: on the dagster.Failure of a refused promotion gate: the gate's name
GATE = PREFIX + "gate"
#: prefix of the validation metrics of a trained model (``validation/sharpe``)
VALIDATION_PREFIX = "validation/"
ROW_COUNT = "dagster/row_count"
