"""Names of the metadata ml_platform puts on Dagster assets and materializations, defined once. Pure.

Every key is namespaced ``ml_platform/``. The asset factories write them, the IO manager reads the
ones that describe a write (hashes, seeds, window, time column, project root), and the CLI and tests
read them back from the event log.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

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


@dataclass(frozen=True)
class Link:
    """How Dagster metadata should point at a stored file: ``path`` (a local file, shown as a path), ``url``
    (opens in a browser) or ``text`` (a URI the browser cannot open, such as ``s3://``, shown as text)."""

    kind: str
    target: str


_LOCAL_SCHEMES = frozenset({"", "file"})


def _is_local(location: str) -> bool:
    scheme = urlsplit(location).scheme
    return scheme in _LOCAL_SCHEMES or (len(scheme) == 1 and location[1:3] in (":\\", ":/"))  # C:\... on Windows


def file_link(location: str) -> Link:
    """The link to a file the platform stored at ``location`` (a path, ``file://`` or fsspec URI).

    A local path stays a path; an ``http(s)://`` URI is a URL; any other URI (``s3://``, ``gs://``...) is
    text, since the Dagster UI would offer it as a dead local path or link.
    """
    if _is_local(location):
        return Link("path", location.removeprefix("file://"))
    if urlsplit(location).scheme in ("http", "https"):
        return Link("url", _without_userinfo(location))
    return Link("text", location)


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def run_artifact_link(tracking_uri: str, run_id: str, artifact_path: str, artifact_location: str) -> Link:
    """The link that opens artefact ``artifact_path`` of MLflow run ``run_id``.

    Args:
        tracking_uri: The MLflow tracking URI the run was logged to.
        run_id: The run.
        artifact_path: The artefact's path inside the run (``monitoring/alpha_drift/<stamp>/report.png``).
        artifact_location: Where MLflow says the artefact is (the run's artefact URI joined with the path).

    Returns:
        Behind an MLflow server (an ``http(s)`` tracking URI) the server's ``get-artifact`` URL, which answers
        the file itself (the artefact location is then ``mlflow-artifacts:/...``, no link at all); on the
        embedded default the local path; otherwise :func:`file_link` of the location.
    """
    parts = urlsplit(tracking_uri)
    if parts.scheme in ("http", "https"):
        base = _without_userinfo(urlunsplit(parts._replace(query="", fragment=""))).rstrip("/")
        return Link("url", f"{base}/get-artifact?{urlencode({'path': artifact_path, 'run_uuid': run_id})}")
    return file_link(artifact_location)
