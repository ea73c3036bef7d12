"""Environment acceptances kept in a store: recorded once, named by their hash, read back verified.

How it works, and why: docs/architecture.md, "ml_platform/io/acceptances.py".
"""

from __future__ import annotations

from ml_platform.environment.acceptance import AcceptanceFile, EnvironmentAcceptance, parse_acceptance
from ml_platform.io.atomic import FileSystem, is_temporary
from ml_platform.io.layout import ACCEPTANCES_DIR

__all__ = ["read_acceptances", "record_acceptance"]


def record_acceptance(fs: FileSystem, acceptance: EnvironmentAcceptance) -> tuple[str, bool]:
    """Publish ``acceptance`` at ``environment/acceptances/<hex>.json`` all at once, never over another file.

    Returns:
        ``(path or URI, created)``; created is False when the same record (same hash) was already there.
    """
    rel = f"{ACCEPTANCES_DIR}/{acceptance.file_name}"
    with fs.exclusive_writer(rel) as publication:
        publication.stream.write(acceptance.to_json())
    return fs.uri(rel), publication.created


def read_acceptances(fs: FileSystem) -> list[AcceptanceFile]:
    """Every record under ``environment/acceptances``, each verified or carrying its problem, by file name."""
    found = []
    for rel in fs.list_files(ACCEPTANCES_DIR):
        name = rel.rpartition("/")[2]
        if is_temporary(name):
            continue
        try:
            data = fs.read_buffer(rel).to_pybytes()
        except FileNotFoundError:  # removed while listing
            continue
        found.append(parse_acceptance(data, fs.uri(rel), name))
    return found
