"""Rationales stored beside a model's versions: ``promotion/<stamp>/rationale.md``, for the copy check.

Report files are written when the report is made (every attempt leaves its report); the rationale is
published by the record step only, after the ledger entry, so a refused attempt leaves no rationale
that a later attempt could be mistaken to copy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ml_platform.registry.boundary import mlflow_errors
from ml_platform.registry.run_files import client_of
from ml_platform.registry.store import ModelRegistry

__all__ = ["PROMOTION_DIR", "RATIONALE_FILE", "previous_rationales"]

PROMOTION_DIR = "promotion"
RATIONALE_FILE = "rationale.md"


def previous_rationales(registry: ModelRegistry, model: str) -> list[str]:
    """Every rationale stored beside any version of ``model`` (oldest version first)."""
    client = client_of(registry)
    texts: list[str] = []
    with mlflow_errors(f"read the earlier rationales of model {model!r}", store=registry.store,
                       busy_timeout=registry.busy_timeout_seconds):
        versions = client.search_model_versions(f"name='{model}'")
        run_ids = list(dict.fromkeys(v.run_id for v in sorted(versions, key=lambda v: int(v.version)) if v.run_id))
        for run_id in run_ids:
            for folder in client.list_artifacts(run_id, PROMOTION_DIR):
                if not folder.is_dir:
                    continue
                names = {f.path.rsplit("/", 1)[-1] for f in client.list_artifacts(run_id, folder.path)}
                if RATIONALE_FILE not in names:
                    continue
                with tempfile.TemporaryDirectory(prefix="ml_platform_rationale_") as target:
                    local = client.download_artifacts(run_id, f"{folder.path}/{RATIONALE_FILE}", target)
                    texts.append(Path(local).read_text(encoding="utf-8", errors="replace"))
    return texts
