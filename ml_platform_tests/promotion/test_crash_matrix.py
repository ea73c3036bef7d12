"""The crash matrix of promotion: SIGKILL anywhere in a promotion leaves the incumbent or the challenger.

The test prepares one project once (MLflow on SQLite with the champion ledger in its file, a Dagster
instance on SQLite, the training set stored): version 1 promoted through the real ``promote_model``
job (the incumbent), version 2 registered (the challenger, within the thresholds). Before every trial
the prepared folder is copied back in place. A driver process (:mod:`ml_platform_tests.crash.driver`)
forks one child per trial, which runs the real job for version 2 in process
(:mod:`ml_platform_tests.promotion.crash_workload`) and is killed with ``SIGKILL``: at every named point of a promotion (the
library's crash points in the record step, in ``ChampionService.promote`` and in its alias mirror;
the report uploaded; before the first gate after the report and before the record step; inside the
ledger's transaction before and at its COMMIT; inside MLflow's transaction of the alias write), and
at random times (a seeded fraction of a full promotion's duration, measured on a first, unkilled run).
``make test`` kills at every named point once (:data:`SCHEDULE`); ``make stress`` adds kills at random
times and random named points, drawn from a seed that is printed (``ML_PLATFORM_CRASH_SEED`` replays or
varies it). After each kill:

* ``ledger.verify`` passes (chain intact, no fork), the incumbent's entry is untouched and the head is the
  incumbent (nothing moved) or the challenger (one promotion entry on top of it, whose report and
  rationale refs resolve to files with the recorded SHA-256) - never anything else; at a named point,
  exactly the one the point implies, the MLflow alias still on the incumbent (the move not mirrored
  yet) or on the head as the point implies, and the rationale published for later copy checks only
  after the entry;
* the head's anchor is the head, or (killed between the ledger commit and the anchor write) the
  incumbent's entry behind it, never ahead; ``ChampionService.reconcile()`` finds nothing but alias
  drift and that anchor behind, which it repairs; a second
  ``reconcile(check_only=True)`` finds nothing; the alias, ``ModelRegistry.champion`` and
  ``load_champion`` all give the head;
* running the same promotion again (same version, same rationale) succeeds when nothing had moved, or is
  refused by the report gate as already champion, with nothing moved; the state then checks as above.

The work folder lives in ``/dev/shm`` when there is one (see :func:`crash_root`). Each kill is followed
by a second run.

Two in-process tests pin what the matrix found: the record step stores the rationale its entry links
to under ``submitted/`` before the entry, and publishes it for later copy checks only after it, so a
promotion whose record step failed runs again with the same rationale; a failed publication after
the entry is logged and the promotion stands.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from mlflow import MlflowClient

from ml_platform.champions import LedgerEntry
from ml_platform.champions.catalog import champion_of_record
from ml_platform.champions.location import open_ledger
from ml_platform.champions.service import ChampionService
from ml_platform.champions.serving import load_champion
from ml_platform.crashpoints import PROMOTION_POINTS
from ml_platform.errors import LedgerUnavailable, RegistryError
from ml_platform.registry import FeatureSchema, LiveFeatureStream, run_files
from ml_platform.registry.store import ModelRegistry
from ml_platform_tests.crash.driver import CrashDriver, Outcome, crash_seed
from ml_platform_tests.promotion.conftest import FEATURES, KEYS, MODEL, Project, make_project, training_frame
from ml_platform_tests.promotion.crash_workload import HOOKED_POINTS, run_outcome

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="the crash driver forks"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

DEFAULT_SEED = 9_0512
#: ``make test``'s trials: every named point of a promotion once, in the order a promotion passes them.
SCHEDULE = ("report.logged", "op.rationale_gate", "op.record", "promotion.rationale_logged",
            "champion.contract_verified", "ledger.inserted", "ledger.commit", "champion.ledger_committed",
            "champion.anchor_written", "champion.alias_writing", "mlflow.alias_flushed", "champion.alias_written", "promotion.recorded",
            "promotion.rationale_published")
NAMED_POINTS = (*PROMOTION_POINTS, *HOOKED_POINTS)
#: ``make stress``'s trials in all: :data:`SCHEDULE`'s, then random ones.
TRIALS = 22
#: Named points at which the killed promotion has moved the champion of record already.
MOVED_AT = {"champion.ledger_committed", "champion.anchor_written", "champion.alias_writing", "champion.alias_written", "promotion.recorded",
            "promotion.rationale_published", "mlflow.alias_flushed"}
#: ... and of those, the ones at which the MLflow alias was written too.
MIRRORED_AT = {"champion.alias_written", "promotion.recorded", "promotion.rationale_published"}
TAIL = "Second promotion of the tuned coefficients, reviewed with the desk."


@dataclass(frozen=True)
class Prepared:
    work: Path
    snapshot: Path
    tracking_uri: str
    artifact_location: str
    incumbent: LedgerEntry
    challenger: str
    live: LiveFeatureStream

    def reset(self) -> None:
        shutil.rmtree(self.work)
        shutil.copytree(self.snapshot, self.work, symlinks=True)


def random_trials(seed: int, count: int = TRIALS - len(SCHEDULE)) -> list[dict[str, Any]]:
    """Random-time kills and a few random named points.

    A random-time trial carries ``fraction``: the kill comes that fraction of a full promotion's
    duration after the fork; half of them in its last 30 % (and a little past it), where the record
    step, the ledger and the alias write are.
    """
    rng = random.Random(seed)
    chosen: list[dict[str, Any]] = []
    for _ in range(count):
        if rng.random() < 0.75:
            low, high = (0.05, 1.0) if rng.random() < 0.5 else (0.7, 1.05)
            chosen.append({"point": None, "fraction": round(rng.uniform(low, high), 3)})
        else:
            chosen.append({"point": rng.choice(NAMED_POINTS), "fraction": None})
    return chosen


def _prepare(tmp_path: Path) -> Prepared:
    work, snapshot = tmp_path / "work", tmp_path / "snapshot"
    (work / "dagster").mkdir(parents=True)
    instance = dg.DagsterInstance.local_temp(tempdir=str(work / "dagster"))
    try:
        project = make_project(work, instance)
        incumbent = project.register((0.01, 0.0))
        result = project.run(incumbent)
        assert result.success
        challenger = project.register()
        head = project.head()
        assert head is not None and head.to_version == incumbent and project.alias() == incumbent
        graph_hash = project.graph["model_inputs"].graph_hash
        settings = project.settings
    finally:
        instance.dispose()
    shutil.copytree(work, snapshot, symlinks=True)
    schema = FeatureSchema.from_polars(training_frame().select(*KEYS.columns, *FEATURES))
    return Prepared(work, snapshot, settings.tracking_uri, settings.artifact_location, head, challenger,
                    LiveFeatureStream(graph_hash, schema))


@pytest.fixture
def crash_root(tmp_path: Path) -> Iterator[Path]:
    """A folder in memory (``/dev/shm``) when there is one, else ``tmp_path``; removed after the test.

    A SIGKILL loses nothing a process wrote before it (the kernel holds it, unlike a power cut), so a file
    system in memory tests the same states while sparing every SQLite commit its fsync.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="ml_platform_promotion_crash_", dir=shm))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def driver(crash_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CrashDriver, Prepared]]:
    # The store is replaced by a copy before every trial: this process must never keep a connection to it.
    monkeypatch.setenv("MLFLOW_SQLALCHEMYSTORE_POOLCLASS", "NullPool")
    prepared = _prepare(crash_root)
    # a killed promotion leaves its staging directory behind: in the test's own directory, never in /tmp
    with CrashDriver("ml_platform_tests.promotion.crash_workload", str(prepared.work), tmpdir=crash_root / "tmp",
                     log=crash_root / "crash_children.log") as opened:
        yield opened, prepared


def _run(crash: CrashDriver, prepared: Prepared, point: str | None = None, delay: float | None = None) -> Outcome:
    return crash.trial(point, delay=delay, version=prepared.challenger, tail=TAIL)


def _sha256_of(client: MlflowClient, ref: str) -> str:
    run_id, _, path = ref.removeprefix("runs:/").partition("/")
    root = client.get_run(run_id).info.artifact_uri.removeprefix("file://")
    return "sha256:" + hashlib.sha256((Path(root) / path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class State:
    entries: tuple[LedgerEntry, ...]
    alias: str | None
    anchor_state: str

    @property
    def head(self) -> LedgerEntry:
        return self.entries[-1]

    @property
    def moved(self) -> bool:
        return len(self.entries) == 2


def _check(prepared: Prepared, context: str) -> State:
    """The ledger verifies with the incumbent or the challenger as head; reconcile repairs at most the alias."""
    registry = ModelRegistry(prepared.tracking_uri, artifact_location=prepared.artifact_location)
    ledger = open_ledger(registry)
    service = ChampionService(registry, ledger)
    try:
        report = ledger.verify(MODEL)  # raises LedgerTampered naming the first bad entry
        entries = ledger.history(MODEL)
        assert report.ok and report.entries == len(entries), context
        assert ledger.head(MODEL) == entries[-1], context
        assert entries[0] == prepared.incumbent, f"the incumbent's entry changed: {context}"
        assert len(entries) in (1, 2), f"{len(entries)} entries: {context}"
        if len(entries) == 2:
            moved = entries[1]
            assert (moved.seq, moved.kind, moved.from_version, moved.to_version, moved.prev_hash) == (
                2, "promotion", prepared.incumbent.to_version, prepared.challenger, entries[0].entry_hash), context
            assert moved.approver == "bob" and moved.report_ref and moved.rationale_ref, context
            client = MlflowClient(tracking_uri=prepared.tracking_uri)
            assert _sha256_of(client, moved.report_ref) == moved.report_sha256, context
            assert _sha256_of(client, moved.rationale_ref) == moved.rationale_sha256, context
        head = entries[-1].to_version
        alias = registry.champion_alias(MODEL)
        assert alias in (prepared.incumbent.to_version, head), f"alias {alias}: {context}"

        anchored = service.verify(MODEL)  # never a cut tail: the anchor is the head or an unfinished move behind it
        assert anchored.anchor_state in ("matches", "behind"), (anchored, context)
        repaired = service.reconcile()
        for finding in repaired.findings:
            assert finding.model == MODEL and finding.problem in ("alias_drift", "alias_missing", "anchor_behind"), (
                finding, context)
            assert finding.repaired, (finding, context)
        assert len([f for f in repaired.findings if f.problem.startswith("alias")]) == (0 if alias == head else 1), (
            repaired.findings, context)
        assert [f.problem for f in repaired.findings if f.problem.startswith("anchor")] == (
            [] if anchored.anchor_state == "matches" else ["anchor_behind"]), (repaired.findings, context)
        assert service.verify(MODEL).anchor_state == "matches", context
        again = service.reconcile(check_only=True)
        assert again.findings == () and again.consistent, (again.findings, context)
        assert registry.champion_alias(MODEL) == champion_of_record(registry, MODEL) == head, context
        assert load_champion(registry, MODEL, prepared.live, policy="off").version == head, context
        return State(entries, alias, anchored.anchor_state)
    finally:
        service.close()
        ledger.close()


def _published(prepared: Prepared, entry: LedgerEntry) -> bool:
    """Whether the entry's rationale was published where later promotions' copy check reads it."""
    client = MlflowClient(tracking_uri=prepared.tracking_uri)
    run_id, _, path = (entry.rationale_ref or "").removeprefix("runs:/").partition("/")
    folder = path.removesuffix("/submitted/rationale.md")
    root = client.get_run(run_id).info.artifact_uri.removeprefix("file://")
    return (Path(root) / folder / "rationale.md").is_file()


def _trial(crash: CrashDriver, prepared: Prepared, index: int, trial: dict[str, Any],
           duration: float) -> tuple[State, Outcome, Outcome]:
    prepared.reset()
    point = trial["point"]
    delay = None if trial["fraction"] is None else round(trial["fraction"] * duration, 3)
    outcome = _run(crash, prepared, point, delay)
    context = f"trial {index} {trial} (delay {delay}) -> {outcome}"
    if point is not None:
        assert outcome.killed, f"the promotion was not killed: {context}"
    elif not outcome.killed:  # the kill came after the end: the promotion must have succeeded
        assert outcome.run is not None and outcome.run["success"], context

    state = _check(prepared, context)
    if point is not None:
        assert state.moved == (point in MOVED_AT), f"moved={state.moved}: {context}"
        expected_alias = state.head.to_version if point in MIRRORED_AT else prepared.incumbent.to_version
        assert state.alias == expected_alias, f"alias {state.alias}: {context}"
        expected_anchor = "behind" if state.moved and point == "champion.ledger_committed" else "matches"
        assert state.anchor_state == expected_anchor, f"anchor {state.anchor_state}: {context}"
        if state.moved:  # published for later copy checks only after the entry, and only at the end
            assert _published(prepared, state.head) == (point == "promotion.rationale_published"), context

    rerun = _run(crash, prepared)
    context += f"; the promotion run again -> {rerun}"
    assert not rerun.killed and rerun.run is not None, context
    if state.moved:
        assert not rerun.run["success"] and rerun.run["gate"] == "report", context
        assert "already the champion" in rerun.run["message"], context
    else:
        assert rerun.run["success"], context
    after = _check(prepared, context)
    assert after.moved and after.alias == prepared.challenger, context
    if state.moved:
        assert after.entries == state.entries, f"the refused promotion wrote: {context}"
    else:
        assert _published(prepared, after.head), context
    return state, outcome, rerun


def kill_promotions(crash: CrashDriver, prepared: Prepared, trials: list[dict[str, Any]]) -> dict[str, int]:
    """One promotion unkilled (its duration scales the random-time kills), then each trial; counts outcomes."""
    for index, trial in enumerate(trials):
        print(f"  {index:2d} {trial}")
    started = time.perf_counter()
    prepared.reset()
    full = _run(crash, prepared)
    assert not full.killed and full.run == {"success": True, "gate": None, "message": ""}, \
        f"{full}\n{crash.log_tail()}"
    state = _check(prepared, "the unkilled promotion")
    assert state.moved and _published(prepared, state.head)
    duration = full.seconds
    print(f"a full promotion in the driver's child takes {duration:.2f} s")

    outcomes = {"moved": 0, "not moved": 0, "finished before the kill": 0}
    for index, trial in enumerate(trials):
        began = time.perf_counter()
        try:
            state, outcome, rerun = _trial(crash, prepared, index, trial, duration)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{crash.log_tail()}") from exc
        outcomes["moved" if state.moved else "not moved"] += 1
        outcomes["finished before the kill"] += not outcome.killed
        print(f"  trial {index:2d}: {'moved' if state.moved else 'not moved'}, killed after "
              f"{outcome.seconds:.2f} s, run again in {rerun.seconds:.2f} s, "
              f"{time.perf_counter() - began:.2f} s in all")
    print(f"outcomes of the {len(trials)} kills: {outcomes}; {time.perf_counter() - started:.1f} s")
    return outcomes


@pytest.mark.beside
def test_a_promotion_killed_anywhere_leaves_the_incumbent_or_the_challenger(
    driver: tuple[CrashDriver, Prepared],
) -> None:
    crash, prepared = driver
    print("promotion crash schedule:")
    outcomes = kill_promotions(crash, prepared, [{"point": point, "fraction": None} for point in SCHEDULE])
    assert outcomes["moved"] and outcomes["not moved"]


def test_the_schedule_kills_at_every_catalogued_and_hooked_point() -> None:
    assert sorted(SCHEDULE) == sorted(NAMED_POINTS)


@pytest.mark.stress
def test_a_promotion_killed_at_random_times_leaves_the_incumbent_or_the_challenger(
    driver: tuple[CrashDriver, Prepared],
) -> None:
    crash, prepared = driver
    seed = crash_seed(DEFAULT_SEED)
    print(f"random promotion crash schedule (seed {seed}, ML_PLATFORM_CRASH_SEED to change); a fraction is of "
          "the duration of the first, unkilled promotion:")
    kill_promotions(crash, prepared, random_trials(seed))


# -- the record step's rationale, without killing anything ------------------------------------------------


def _rationales(project: Project) -> dict[str, list[str]]:
    """``submitted`` / ``published``: every rationale.md beside the model's versions, by where it lies."""
    client = MlflowClient(tracking_uri=project.registry.tracking_uri)
    found: dict[str, list[str]] = {"submitted": [], "published": []}
    for version in client.search_model_versions(f"name='{MODEL}'"):
        root = Path(client.get_run(version.run_id).info.artifact_uri.removeprefix("file://")) / "promotion"
        for file in sorted(root.glob("*/rationale.md")):
            found["published"].append(file.read_text())
        for file in sorted(root.glob("*/submitted/rationale.md")):
            found["submitted"].append(file.read_text())
    return found


def test_a_promotion_failing_at_the_ledger_can_run_again_with_the_same_rationale(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rationale a failed record step stored is not one the same promotion, run again, copies."""
    v1 = project.register()
    original = ChampionService.promote

    def unavailable(self: ChampionService, *args: Any, **kwargs: Any) -> Any:
        raise LedgerUnavailable("ledger: the database is unreachable (simulated); nothing was written")

    monkeypatch.setattr(ChampionService, "promote", unavailable)
    outcome = run_outcome(project.run(v1))
    assert (outcome["success"], outcome["gate"]) == (False, "record") and "simulated" in outcome["message"]
    assert project.head() is None and project.alias() is None
    assert [len(v) for v in _rationales(project).values()] == [1, 0]  # stored, never published

    monkeypatch.setattr(ChampionService, "promote", original)
    outcome = run_outcome(project.run(v1))  # the same rationale: not a copy of the failed attempt's
    assert outcome["success"], outcome
    head = project.head()
    assert head is not None and head.to_version == v1 and project.alias() == v1
    assert head.rationale_ref is not None and head.rationale_ref.endswith("/submitted/rationale.md")
    found = _rationales(project)
    assert len(found["submitted"]) == 2 and found["published"] == found["submitted"][-1:]

    v2 = project.register((0.011, -0.004))  # a later promotion still may not copy the recorded one
    outcome = run_outcome(project.run(v2, rationale=found["published"][0]))
    assert outcome["gate"] == "rationale" and "copy" in outcome["message"], outcome
    assert project.head() == head


def test_a_failed_publication_after_the_entry_is_logged_and_the_promotion_stands(
    project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    v1 = project.register()
    original = run_files.log_files

    def log_files(registry: Any, run_id: str, folder: str, files: Any) -> None:
        if "rationale.md" in files and not folder.endswith("/submitted"):
            raise RegistryError("the artefact store refused the upload (simulated)")
        original(registry, run_id, folder, files)

    monkeypatch.setattr(run_files, "log_files", log_files)
    with caplog.at_level(logging.WARNING, logger="ml_platform.promotion.service"):
        outcome = run_outcome(project.run(v1))
    assert outcome["success"], outcome
    head = project.head()
    assert head is not None and head.to_version == v1 and project.alias() == v1
    assert "could not be published" in caplog.text and head.rationale_ref in caplog.text
    assert [len(v) for v in _rationales(project).values()] == [1, 0]
