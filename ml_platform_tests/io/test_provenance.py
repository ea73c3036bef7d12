"""Build provenance from the environment: an image without ``.git`` records its commit and digest, or is refused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance, asset, materialize
from hypothesis import given
from hypothesis import strategies as st

from ml_platform.deployment import platform_resources
from ml_platform.environment import BuildProvenance
from ml_platform.errors import ConfigurationError, ManifestError, ManifestTampered, ProvenanceError
from ml_platform.io import PinnedStore
from ml_platform.io.manifest import Manifest, manifest_digest
from ml_platform.settings import Settings
from ml_platform.trace.resolve import stored_version

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "ab" * 32
FRAME = pl.DataFrame({"symbol": ["A", "B"], "px": [1.0, 2.0]})
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quant_alpha"


@pytest.fixture
def image_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small project copied the way an image holds it: its files, no ``.git`` (and none above it)."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "app"
    shutil.copytree(EXAMPLE / "quant_alpha", root / "quant_alpha", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(EXAMPLE / "pyproject.toml", root / "pyproject.toml")
    assert not (root / ".git").exists()
    return root


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo,
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def test_parse_reads_the_three_variables_and_leaves_blank_ones_unset() -> None:
    assert BuildProvenance.parse(None, None, None) == BuildProvenance()
    assert BuildProvenance.parse(" ", "", "") == BuildProvenance()
    assert BuildProvenance.parse(COMMIT, "1", DIGEST) == BuildProvenance(COMMIT, True, DIGEST)
    assert BuildProvenance.parse(COMMIT, "0", None) == BuildProvenance(COMMIT, False, None)
    assert BuildProvenance.parse(None, None, DIGEST).image_digest == DIGEST  # a digest alone is fine


@pytest.mark.parametrize(("commit", "dirty", "digest", "message"), [
    ("xyz", None, None, r"ML_PLATFORM_GIT_COMMIT='xyz': give the 40-hex commit .*git rev-parse HEAD"),
    (COMMIT.upper(), None, None, r"ML_PLATFORM_GIT_COMMIT="),
    (COMMIT + "0", None, None, r"ML_PLATFORM_GIT_COMMIT="),
    (COMMIT, "yes", None, r"ML_PLATFORM_GIT_DIRTY='yes': use 1 .* or 0"),
    (None, "1", None, r"ML_PLATFORM_GIT_DIRTY is set but ML_PLATFORM_GIT_COMMIT is not"),
    (None, None, "sha256:abc", r"ML_PLATFORM_IMAGE_DIGEST='sha256:abc': give the image's digest as sha256:<64"),
    (None, None, "ab" * 32, r"ML_PLATFORM_IMAGE_DIGEST="),
])
def test_bad_values_are_refused_naming_the_variable(commit: str | None, dirty: str | None, digest: str | None,
                                                    message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        BuildProvenance.parse(commit, dirty, digest)


@given(st.text(max_size=80))
def test_only_a_40_hex_commit_is_accepted(text: str) -> None:
    valid = re.fullmatch(r"[0-9a-f]{40}", text.strip()) is not None
    try:
        parsed = BuildProvenance.parse(text, None, None)
    except ConfigurationError as exc:
        assert not valid and "ML_PLATFORM_GIT_COMMIT" in str(exc)
    else:
        assert parsed.commit == (text.strip() or None) and (valid or not text.strip())


@given(st.text(max_size=80))
def test_only_a_sha256_digest_is_accepted(text: str) -> None:
    valid = re.fullmatch(r"sha256:[0-9a-f]{64}", text.strip()) is not None
    try:
        parsed = BuildProvenance.parse(None, None, text)
    except ConfigurationError as exc:
        assert not valid and "ML_PLATFORM_IMAGE_DIGEST" in str(exc)
    else:
        assert parsed.image_digest == (text.strip() or None) and (valid or not text.strip())


def test_settings_read_the_provenance_and_refuse_a_bad_value() -> None:
    env = {"ML_PLATFORM_GIT_COMMIT": COMMIT, "ML_PLATFORM_GIT_DIRTY": "0", "ML_PLATFORM_IMAGE_DIGEST": DIGEST}
    assert Settings.from_env(env).provenance == BuildProvenance(COMMIT, False, DIGEST)
    assert Settings.from_env({}).provenance == BuildProvenance()
    with pytest.raises(ConfigurationError, match="ML_PLATFORM_GIT_COMMIT='HEAD'"):
        Settings.from_env({"ML_PLATFORM_GIT_COMMIT": "HEAD"})


def test_without_a_checkout_the_image_provenance_is_recorded(image_root: Path, tmp_path: Path) -> None:
    store = PinnedStore(tmp_path / "storage", project_root=image_root,
                        provenance=BuildProvenance(COMMIT, True, DIGEST))
    written = store.write("market/prices", None, FRAME)
    assert (written.git_commit, written.git_dirty, written.image_digest) == (COMMIT, True, DIGEST)
    head = json.loads(Path(store.manifest_path("market/prices", None)).read_text())
    assert head["image_digest"] == DIGEST and head["git"] == {"commit": COMMIT, "dirty": True}
    read = store.read("market/prices", None).manifest
    assert read.image_digest == DIGEST and read.manifest_hash == written.manifest_hash
    assert stored_version(store, read, "source").image_digest == DIGEST  # what `ml-platform trace` shows
    # without provenance the embedded default keeps recording no commit, and no image digest field at all
    plain = PinnedStore(tmp_path / "plain", project_root=image_root).write("market/prices", None, FRAME)
    assert plain.git_commit is None and "image_digest" not in plain.to_dict()


def test_a_checkout_wins_and_a_conflicting_variable_is_refused(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    _git(repo, "add", "a.py")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    conflicting = PinnedStore(tmp_path / "s1", project_root=repo, provenance=BuildProvenance(COMMIT, False))
    with pytest.raises(ProvenanceError, match=f"ML_PLATFORM_GIT_COMMIT={COMMIT} but the project root .* at {head}"):
        conflicting.write("market/prices", None, FRAME)
    assert conflicting.locations() == []  # nothing written
    agreeing = PinnedStore(tmp_path / "s2", project_root=repo, provenance=BuildProvenance(head, True, DIGEST))
    written = agreeing.write("market/prices", None, FRAME)
    assert (written.git_commit, written.git_dirty, written.image_digest) == (head, False, DIGEST)  # checkout's flag


def test_a_production_write_without_a_commit_is_refused(image_root: Path, tmp_path: Path) -> None:
    store = PinnedStore(tmp_path / "storage", project_root=image_root, provenance=BuildProvenance(None, None, DIGEST),
                        require_commit=True)
    with pytest.raises(ProvenanceError, match="production artefact would be written without a git commit"):
        store.write("market/prices", None, FRAME)
    assert store.locations() == []


@asset
def universe() -> pl.DataFrame:
    return FRAME


def _production(tmp_path: Path, image_root: Path, **extra: str) -> Settings:
    return Settings.from_env({
        "ML_PLATFORM_DEPLOYMENT": "production", "ML_PLATFORM_STORAGE": str(tmp_path / "storage"),
        "ML_PLATFORM_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "ML_PLATFORM_MLFLOW_ARTIFACTS": str(tmp_path / "artifacts"), "ML_PLATFORM_PROJECT_ROOT": str(image_root),
        "ML_PLATFORM_HOME": str(tmp_path / "home"), **extra})


def test_production_settings_reach_the_io_manager(image_root: Path, tmp_path: Path,
                                                  dagster_instance: DagsterInstance) -> None:
    bare = platform_resources(_production(tmp_path, image_root, ML_PLATFORM_IMAGE_DIGEST=DIGEST))
    result = materialize([universe], resources={"io_manager": bare["io_manager"]}, instance=dagster_instance,
                         raise_on_error=False)
    assert not result.success
    assert "PROVENANCE_ERROR" in str(result.failure_data_for_node("universe").error)  # type: ignore[union-attr]
    built = platform_resources(_production(tmp_path, image_root, ML_PLATFORM_GIT_COMMIT=COMMIT,
                                           ML_PLATFORM_IMAGE_DIGEST=DIGEST))
    result = materialize([universe], resources={"io_manager": built["io_manager"]}, instance=dagster_instance)
    event = result.get_asset_materialization_events()[0].event_specific_data.materialization  # type: ignore[union-attr]
    assert event.metadata["ml_platform/image_digest"].value == DIGEST
    assert event.metadata["ml_platform/git_commit"].value == COMMIT
    assert built["feature_store"].get_store().read("universe", None).manifest.image_digest == DIGEST


def test_the_image_digest_is_under_the_manifest_hash(image_root: Path, tmp_path: Path) -> None:
    store = PinnedStore(tmp_path / "storage", project_root=image_root, provenance=BuildProvenance(COMMIT, False, DIGEST))
    store.write("market/prices", None, FRAME)
    path = Path(store.manifest_path("market/prices", None))
    record = json.loads(path.read_text())
    with pytest.raises(ManifestTampered):
        Manifest.from_dict({**record, "image_digest": "sha256:" + "cd" * 32}, source="edited")
    without = {k: v for k, v in record.items() if k != "image_digest"}
    with pytest.raises(ManifestTampered):  # dropping the field is an edit too
        Manifest.from_dict(without, source="dropped")
    plain = PinnedStore(tmp_path / "plain", project_root=image_root).write("market/prices", None, FRAME).to_dict()
    nulled = {**plain, "image_digest": None}
    nulled["manifest_hash"] = manifest_digest(nulled)  # re-hashed, so only the form is wrong
    with pytest.raises(ManifestError, match="not in the form this ml_platform writes"):  # an explicit null
        Manifest.from_dict(nulled, source="null")
