"""A reproduction certificate stored beside its version in MLflow (``reproduction/<stamp>/``), the version tagged."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from ml_platform.registry.boundary import mlflow_errors
from ml_platform.registry.run_files import artifact_ref, client_of, log_files
from ml_platform.registry.store import ModelRegistry
from ml_platform.reproduce.certificate import CERTIFICATE_DIR, CERTIFICATE_TAG, VERDICT_TAG, Certificate

__all__ = ["StoredCertificate", "store_certificate"]


@dataclass(frozen=True)
class StoredCertificate:
    """Where :func:`store_certificate` put a certificate."""

    json_ref: str
    summary_ref: str
    sha256: str


def store_certificate(registry: ModelRegistry, certificate: Certificate, *, stamp: str | None = None) -> StoredCertificate:
    """Upload the JSON and markdown beside the version (its MLflow run) and tag the version with both.

    Raises:
        ModelNotFound / RegistryError: no such version, or MLflow refused the upload or the tags.
    """


    stamp = stamp or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    record = registry.model_version(certificate.model, certificate.version)
    folder = f"{CERTIFICATE_DIR}/{stamp}"
    data = certificate.to_json()
    log_files(registry, record.run_id, folder, {"certificate.json": data,
                                               "certificate.md": certificate.summary().encode("utf-8")})
    stored = StoredCertificate(artifact_ref(record.run_id, f"{folder}/certificate.json"),
                               artifact_ref(record.run_id, f"{folder}/certificate.md"),
                               "sha256:" + hashlib.sha256(data).hexdigest())
    client = client_of(registry)
    with mlflow_errors(f"tag model {certificate.model!r} version {certificate.version} with its certificate",
                       store=registry.store, busy_timeout=registry.busy_timeout_seconds):
        client.set_model_version_tag(certificate.model, certificate.version, CERTIFICATE_TAG,
                                     f"{stored.json_ref} {stored.sha256}")
        client.set_model_version_tag(certificate.model, certificate.version, VERDICT_TAG,
                                     json.dumps(certificate.bit_exact))
    return stored
