"""Read back the documents a ledger entry links to (report, rationale) from MLflow and check their hashes.

A ledger entry records ``report_ref``/``rationale_ref`` (``runs:/<run id>/<path>`` artefacts beside the
version) with the SHA-256 of their bytes. The trace downloads each one and compares: a document that is
gone or altered since the promotion is reported with what was expected and found.
"""

from __future__ import annotations

from ml_platform.registry.boundary import sha256_of
from ml_platform.registry.run_files import read_artifact_ref
from ml_platform.registry.store import ModelRegistry
from ml_platform.trace.record import Evidence

__all__ = ["read_evidence"]

def read_evidence(registry: ModelRegistry, ref: str | None, sha256: str | None, *, text: bool) -> Evidence | None:
    """The linked document, read back and checked (``None`` when the entry links none).

    Args:
        text: keep the document's text (the rationale); the report is only linked and checked.
    """
    if ref is None or sha256 is None:
        return None
    try:
        data = read_artifact_ref(registry, ref)
    except Exception as exc:  # noqa: BLE001 - any failure to read it back is the finding, reported by name
        return Evidence(ref, sha256, False, None, f"cannot be read back from the registry: {exc}")
    actual = sha256_of(data)
    if actual != sha256:
        return Evidence(ref, sha256, False, None,
                        f"its bytes hash to {actual}, not the {sha256} the ledger entry records: it was altered "
                        "after the promotion")
    return Evidence(ref, sha256, True, data.decode("utf-8", errors="replace") if text else None, None)
