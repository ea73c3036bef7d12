"""Issue 26, findings 3-5: commands that only read never create, unknown names are errors, bad input never writes.

One small prepared home (a real MLflow SQLite registry with a model promoted twice, its ledger, a store
and a Dagster instance) is driven in-process through click's CliRunner; every file under it is hashed
before and after, so "nothing was written" is a byte-for-byte claim.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import string
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ml_platform.champions.service import ChampionService
from ml_platform.cli import main
from ml_platform.cli.params import printable
from ml_platform.errors import ConfigurationError
from ml_platform.registry.entities import check_version
from ml_platform.registry.store import ModelRegistry
from ml_platform.testing.factories import CODE_SNAPSHOT, FEATURES, make_contract, make_model
from ml_platform_tests.harness.mlflow_template import copy_mlflow_template

MODEL = "alpha"


def snapshot(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (and the set of directories): any write shows up as a difference."""
    found: dict[str, str] = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return found


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> Path:
    """``ML_PLATFORM_HOME``: a registry (alpha 1-3, promoted 1 then 2; 3 trained by a name with U+202E), a store,
    a Dagster home."""
    root = tmp_path_factory.mktemp("cli_home")
    database = copy_mlflow_template(mlflow_template, root / "mlflow" / "mlflow.db")
    registry = ModelRegistry(f"sqlite:///{database}", artifact_location=str(root / "mlflow" / "artifacts"))
    for shift, trainer in ((0.0, "alice@research"), (0.1, "alice@research"), (0.3, "eve\u202eevol")):
        model = make_model(shift)
        registry.register(model_name=MODEL, model=model, contract=make_contract(MODEL, model, trained_by=trainer),
                          params={"alpha": 1.0, "features": list(FEATURES)}, metrics={"sharpe": 1.0},
                          code_snapshot=CODE_SNAPSHOT)
    with ChampionService.open(registry) as service:
        service.promote(MODEL, "1", actor="alice", approver="bob", reason="first")
        service.promote(MODEL, "2", actor="alice", approver="bob", reason="better")
        service.ledger.close()
    (root / "storage").mkdir()
    (root / "storage" / "keep.txt").write_text("a stored byte")
    (root / "dagster").mkdir()
    dg.DagsterInstance.from_config(str(root / "dagster")).dispose()
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "rationale.md").write_text("why\n")
    return root


@pytest.fixture
def cli_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ML_PLATFORM_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    for name in ("ML_PLATFORM_LEDGER_URL", "ML_PLATFORM_STORAGE", "ML_PLATFORM_MLFLOW_TRACKING_URI",
                 "ML_PLATFORM_DEPLOYMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(home / "elsewhere")
    return home


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), prog_name="ml-platform")


def assert_refused(result: Result, *needles: str) -> None:
    """Exit 2, exactly one line on stderr naming the problem, nothing on stdout, no traceback."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == "" and "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- finding 3: a typo never creates a registry or a ledger, nor deletes data ---------------------------------


def test_gc_refuses_a_tracking_uri_that_does_not_exist(cli_env: Path, tmp_path: Path) -> None:
    before = snapshot(cli_env)
    typo = tmp_path / "nonexistent" / "x.db"
    result = run("gc", "--tracking-uri", f"sqlite:///{typo}")
    assert_refused(result, "gc refused, nothing deleted", f"no model registry at {typo}", "--no-registry")
    assert not typo.exists() and not typo.parent.exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a file, but no MLflow in it
    assert_refused(run("gc", "--tracking-uri", f"sqlite:///{empty}"), "holds no MLflow registry")
    assert_refused(run("gc", "--tracking-uri", str(tmp_path / "mlruns")), "no MLflow file store")
    assert not (tmp_path / "mlruns").exists()
    assert snapshot(cli_env) == before


def test_gc_refuses_to_run_without_its_configured_registry_unless_told(cli_env: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(cli_env / "storage", bare / "storage")
    monkeypatch.setenv("ML_PLATFORM_HOME", str(bare))
    assert_refused(run("gc", "--dry-run"), f"no model registry at {bare / 'mlflow' / 'mlflow.db'}")
    assert not (bare / "mlflow").exists()
    result = run("gc", "--dry-run", "--no-registry")
    assert result.exit_code == 0, result.output


def test_rollback_with_a_new_ledger_url_creates_nothing(cli_env: Path, tmp_path: Path) -> None:
    before = snapshot(cli_env)
    ledger = tmp_path / "typo" / "ledger.db"
    result = run("rollback", MODEL, "--reason", "bad day", "--ledger-url", f"sqlite:///{ledger}")
    assert_refused(result, f"no ledger database at {ledger}", "nothing was created")
    assert not ledger.parent.exists()
    assert snapshot(cli_env) == before


def test_history_audit_and_checks_only_read_a_locked_database_without_ledger_tables(cli_env: Path,
                                                                                  tmp_path: Path) -> None:
    copy = tmp_path / "mlflow.db"
    shutil.copyfile(cli_env / "mlflow" / "mlflow.db", copy)
    with sqlite3.connect(copy) as conn:  # the registry of a deployment that never promoted anything
        for table in ("ml_platform_ledger_heads", "ml_platform_ledger_entries", "ml_platform_ledger_schema"):
            conn.execute(f"DROP TABLE {table}")
        # nor anchored a ledger head on the MLflow model (an anchor without its ledger is a cut tail)
        conn.execute("DELETE FROM registered_model_tags WHERE key = 'ml_platform.ledger.head'")
    before = snapshot(tmp_path)
    writer = sqlite3.connect(copy, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process holds the write lock: readers may still read
    try:
        uri = f"sqlite:///{copy}"
        history = run("history", MODEL, "--tracking-uri", uri, "--busy-timeout", "0.2")
        assert history.exit_code == 0, history.output
        assert history.stdout == f"model {MODEL!r} has no champion moves recorded\n"
        audit = run("audit", "verify", MODEL, "--tracking-uri", uri, "--busy-timeout", "0.2")
        assert audit.exit_code == 0, audit.output
        assert "0 entries" in audit.stdout
        check = run("registry", "reconcile", "--check", "--tracking-uri", uri, "--busy-timeout", "0.2")
        assert check.exit_code == 1 and "alias_without_ledger" in check.stdout, check.output  # a finding, read
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert snapshot(tmp_path) == before


def test_reading_commands_never_write_to_the_registry_or_ledger(cli_env: Path) -> None:
    before = snapshot(cli_env)
    for args in (["history", MODEL], ["audit", "verify", MODEL], ["models", "list"], ["models", "show", MODEL],
                 ["registry", "reconcile", "--check"], ["registry", "reconcile", MODEL, "--check"]):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
    assert "1 -> 2" in run("history", MODEL).stdout
    for args in (["verify"], ["gc", "--dry-run"]):  # with the Dagster instance of DAGSTER_HOME and the registry
        result = run(*args)
        assert result.exit_code in (0, 1) and "Traceback" not in result.output, (args, result.output)
    unknown = run("trace", "zzmodel", "--date", "2024-01-02", "--instrument", "A")
    assert unknown.exit_code == 2 and "'zzmodel'" in unknown.stderr, unknown.output
    assert snapshot(cli_env) == before


# -- finding 4: an unknown model is an error naming the known ones ---------------------------------------------


@pytest.mark.parametrize("args", [
    ["audit", "verify", "nosuchmodel"],
    ["registry", "reconcile", "nosuchmodel", "--check"],
    ["history", "nosuchmodel"],
    ["rollback", "nosuchmodel", "--reason", "typo"],
    ["models", "show", "nosuchmodel"],
])
def test_an_unknown_model_is_exit_2_listing_the_known_ones(cli_env: Path, args: list[str]) -> None:
    before = snapshot(cli_env)
    assert_refused(run(*args), "MODEL_NOT_FOUND", "'nosuchmodel'", MODEL)
    assert snapshot(cli_env) == before


# -- finding 5: each traceback and each write-before-refusal, now one line and exit 2 -------------------------

LONG = "x" * 10_000


@pytest.mark.parametrize(("args", "needle"), [
    (["graph", "--defs", "../../etc:passwd"], "is not module:attr"),
    (["graph", "--defs", "json:loads"], "is a function that takes arguments"),
    (["init", "/proc/ml_platform/new"], "cannot create the project in '/proc/ml_platform/new'"),
    (["verify", "--base-dir", "d" * 300], "longer than a file name can be"),
    (["promote", MODEL, "1", "--rationale-file", "d" * 300, "--approver", "bob"], "longer than a file name can be"),
    (["gc", "--keep-days", "nan"], "'nan' is not a finite number"),
    (["gc", "--keep-days", "inf"], "'inf' is not a finite number"),
    (["gc", "--grace-seconds", "nan"], "'nan' is not a finite number"),
    (["env", "diff", LONG, "running"], "10000 characters long"),
    (["env", "diff", "y" * 300, "running"], "longer than a file name can be"),
    (["models", "show", MODEL, "\u00b2"], "is not a version number"),
    (["rollback", MODEL, "--to", "99999999999999999999999", "--reason", "r"], "is not a version number"),
    (["reproduce", MODEL, "1", "--workdir", "/nonexistent/a/b"], "/nonexistent/a is not an existing folder"),
    (["trace", MODEL, "--date", "2024-01-02", "--instrument", "A", "--out", "/nonexistent/a/b"],
     "/nonexistent/a is not an existing folder"),
    (["promote", MODEL, "1", "--rationale-file", "rationale.md", "--approver", LONG], "at most 256"),
    (["reproduce", MODEL, "1", "--workdir", "work", "--timeout", "-5"], "'-5' is not a finite number in (0"),
    (["registry", "repair", "--stale-after", "inf"], "'inf' is not a finite number"),
    (["rollback", MODEL, "--reason", "back\r\nto 1"], "control or bidirectional characters (\\u000a, \\u000d)"),
    (["rollback", MODEL, "--reason", "back to \u202e1"], "(\\u202e)"),
    (["rollback", MODEL, "--reason", "r", "--actor", "eve\u202e"], "(\\u202e)"),
    (["promote", MODEL, "1", "--rationale-file", "rationale.md", "--approver", "bob\n"], "(\\u000a)"),
])
def test_each_bad_input_of_the_issue_is_refused_before_anything_is_written(cli_env: Path, args: list[str],
                                                                           needle: str) -> None:
    before = snapshot(cli_env)
    assert_refused(run(*args), needle)
    assert snapshot(cli_env) == before
    assert not (cli_env / "elsewhere" / "work").exists()


def test_the_groups_own_bad_options_are_one_line_and_a_bare_group_still_prints_its_help(cli_env: Path) -> None:
    assert_refused(run("--bogus"), "ml-platform: No such option '--bogus'")
    assert_refused(run("nosuchcommand"), "No such command 'nosuchcommand'")
    assert_refused(run("models", "--bogus"), "ml-platform models: No such option '--bogus'")
    for args in ([], ["models"]):
        bare = run(*args)
        assert bare.exit_code == 2 and "Usage: ml-platform" in bare.output and "Commands:" in bare.output


def test_check_version_takes_ascii_digits_within_sqlites_range_only() -> None:
    assert check_version("3") == "3" and check_version(2**63 - 1) == str(2**63 - 1)
    for bad in ("\u00b2", "\u0663", "0", str(2**63), "99999999999999999999999", " 1", "+1"):
        with pytest.raises(ConfigurationError, match="invalid model version"):
            check_version(bad)


def test_stored_text_is_shown_with_control_and_bidi_characters_escaped(cli_env: Path, tmp_path: Path) -> None:
    copy = tmp_path / "mlflow.db"
    shutil.copyfile(cli_env / "mlflow" / "mlflow.db", copy)
    registry = ModelRegistry(f"sqlite:///{copy}", artifact_location=str(tmp_path / "artifacts"))
    with ChampionService.open(registry) as service:  # a rollback writes only the ledger and the alias: no artefact  # the library keeps multi-line reasons as written
        service.rollback(MODEL, reason="line one\nline two \u202eevil", actor="carol")
        service.ledger.close()
    result = run("history", MODEL, "--tracking-uri", f"sqlite:///{copy}")
    assert result.exit_code == 0, result.output
    assert "reason: line one\\u000aline two \\u202eevil" in result.stdout
    assert "\u202e" not in result.stdout and len(result.stdout.splitlines()) == 3
    shown = run("models", "show", MODEL, "3")  # registered by the home's fixture
    assert shown.exit_code == 0 and "trained by:             eve\\u202eevol at" in shown.stdout, shown.output
    assert "\u202e" not in shown.stdout
    assert printable("a\tb\u2066c\x7f") == "a\\u0009b\\u2066c\\u007f"


# -- the corpus: generated bad input over every subcommand ----------------------------------------------------

_MISSING = "/nonexistent/ml_platform_typo"
_UNSAFE = st.sampled_from(["\r", "\n", "\t", "\x1b", "\x7f", "\u202e", "\u202d", "\u2066", "\u200f", "\u2028"])
_SAFE_TEXT = st.text(alphabet=string.ascii_letters + " ", min_size=0, max_size=8)


@st.composite
def _unsafe_text(draw: st.DrawFn) -> str:
    return draw(_SAFE_TEXT) + draw(_UNSAFE) + draw(_SAFE_TEXT)


_too_long = st.integers(min_value=4097, max_value=12_000).map(lambda n: "p" * n)
_bad_text = st.one_of(_unsafe_text(), st.integers(min_value=257, max_value=11_000).map(lambda n: "t" * n),
                      st.sampled_from(["", "   "]))
_bad_reason = st.one_of(_unsafe_text(), st.integers(min_value=10_001, max_value=12_000).map(lambda n: "r" * n),
                        st.sampled_from(["", "   "]))
_bad_version = st.one_of(
    st.text(alphabet=st.characters(categories=["Nd"]), min_size=1, max_size=3).filter(lambda t: not t.isascii()),
    st.integers(min_value=2**63, max_value=10**30).map(str),
    st.integers(max_value=0).map(str),
    st.sampled_from(["", "1.5", "v2", "0x1", "1e3", " 1", "\u00b2"]),
)
_bad_number = st.one_of(
    st.sampled_from(["nan", "-nan", "inf", "-inf", "Infinity", "1e400", "", "abc", "1,5"]),
    st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False).map(repr),
)
_bad_model = st.one_of(
    st.sampled_from(["", "a/b", "a:b", "_x", "-x", "a b", "../x", "x" * 129]),
    _unsafe_text().map(lambda t: "m" + t),
)
_unknown_model = st.from_regex(r"\Azz[a-z0-9_]{1,12}\Z")
_bad_dir = st.sampled_from([f"{_MISSING}/a/b", "keep.txt/sub", "../storage/keep.txt"])
_bad_defs = st.sampled_from(["../../etc:passwd", "a.b", "a:b:c", ":x", "x:", "1x:defs", "os.path:join()", "a..b:c",
                             "json:loads", "os:path", "string:Template"])
_long_name = st.integers(min_value=256, max_value=600).map(lambda n: "n" * n)
_bad_path = st.one_of(_long_name, _long_name.map(lambda n: f"{_MISSING}/{n}/x"), _too_long)
_bad_uri = st.one_of(st.sampled_from([f"sqlite:///{_MISSING}/x.db", f"file://{_MISSING}", _MISSING, "sqlite:/x"]),
                     _long_name.map(lambda n: f"sqlite:///{n}.db"))


def _cases() -> st.SearchStrategy[list[str]]:
    """One bad argument each, in every subcommand: (command, valid rest) with a generated bad value in its slot."""
    rationale = ["--rationale-file", "rationale.md"]
    return st.one_of(
        _bad_defs.map(lambda v: ["graph", "--defs", v]),
        _too_long.map(lambda v: ["verify", v]),
        _bad_uri.map(lambda v: ["verify", "--tracking-uri", v]),
        _bad_path.map(lambda v: ["verify", "--base-dir", v]),
        _bad_path.map(lambda v: ["verify", "--dagster-home", v]),
        _bad_path.map(lambda v: ["gc", "--no-registry", "--base-dir", v]),
        _bad_number.map(lambda v: ["gc", "--dry-run", "--keep-days", v]),
        _bad_number.map(lambda v: ["gc", "--dry-run", "--grace-seconds", v]),
        _bad_uri.map(lambda v: ["gc", "--tracking-uri", v]),
        _bad_path.map(lambda v: ["env", "diff", v, "running"]),
        _unsafe_text().map(lambda v: ["env", "diff", "running", v]),
        _bad_number.map(lambda v: ["models", "list", "--busy-timeout", v]),
        _bad_model.map(lambda v: ["models", "show", v]),
        _unknown_model.map(lambda v: ["models", "show", v]),
        _bad_version.map(lambda v: ["models", "show", MODEL, v]),
        _bad_uri.map(lambda v: ["models", "list", "--tracking-uri", v]),
        _bad_number.map(lambda v: ["registry", "repair", "--check", "--stale-after", v]),
        _bad_model.map(lambda v: ["registry", "reconcile", v, "--check"]),
        _unknown_model.map(lambda v: ["registry", "reconcile", v, "--check"]),
        _bad_text.map(lambda v: ["init", "new_project", "--name", v]),
        _bad_path.map(lambda v: ["init", v]),
        st.sampled_from(["/proc/ml_platform/new", "keep.txt/new"]).map(lambda v: ["init", v]),
        _bad_model.map(lambda v: ["rollback", v, "--reason", "r"]),
        _unknown_model.map(lambda v: ["rollback", v, "--reason", "r"]),
        _bad_version.map(lambda v: ["rollback", MODEL, "--to", v, "--reason", "r"]),
        _bad_reason.map(lambda v: ["rollback", MODEL, "--reason", v]),
        _bad_text.map(lambda v: ["rollback", MODEL, "--reason", "r", "--actor", v]),
        _bad_uri.map(lambda v: ["rollback", MODEL, "--reason", "r", "--ledger-url", v]),
        _bad_model.map(lambda v: ["history", v]),
        _unknown_model.map(lambda v: ["history", v]),
        _bad_uri.map(lambda v: ["history", MODEL, "--ledger-url", v]),
        _bad_model.map(lambda v: ["audit", "verify", v]),
        _unknown_model.map(lambda v: ["audit", "verify", v]),
        _bad_model.map(lambda v: ["promote", v, "1", *rationale, "--approver", "bob"]),
        _bad_version.map(lambda v: ["promote", MODEL, v, *rationale, "--approver", "bob"]),
        _bad_text.map(lambda v: ["promote", MODEL, "1", *rationale, "--approver", v]),
        _bad_path.map(lambda v: ["promote", MODEL, "1", "--rationale-file", v, "--approver", "bob"]),
        _bad_defs.map(lambda v: ["promote", MODEL, "1", *rationale, "--approver", "bob", "--defs", v]),
        _bad_version.map(lambda v: ["reproduce", MODEL, v, "--workdir", "work"]),
        _bad_dir.map(lambda v: ["reproduce", MODEL, "1", "--workdir", v]),
        _bad_number.map(lambda v: ["reproduce", MODEL, "1", "--workdir", "work", "--timeout", v]),
        _bad_number.map(lambda v: ["reproduce", MODEL, "1", "--workdir", "work", "--daemon-refresh", v]),
        _bad_uri.map(lambda v: ["reproduce", MODEL, "1", "--workdir", "work", "--tracking-uri", v]),
        _bad_path.map(lambda v: ["reproduce", MODEL, "1", "--workdir", "work", "--base-dir", v]),
        _bad_dir.map(lambda v: ["trace", MODEL, "--date", "2024-01-02", "--instrument", "A", "--out", v]),
        _unsafe_text().map(lambda v: ["trace", MODEL, "--date", "2024-01-02", "--instrument", v]),
        _bad_uri.map(lambda v: ["trace", MODEL, "--date", "2024-01-02", "--instrument", "A", "--tracking-uri", v]),
        _bad_path.map(lambda v: ["monitoring", "status", "--outbox-dir", v]),
        _bad_path.map(lambda v: ["migrate-store", "--dry-run", "--base-dir", v]),
        _bad_path.map(lambda v: ["migrate-store", "--base-dir", v]),
        _unknown_model.map(lambda v: ["audit", "verify", v, "--anchor-only"]),
        _bad_uri.map(lambda v: ["verify", "--heads-only", "--tracking-uri", v]),
    )


@pytest.fixture
def corpus_dir(cli_env: Path) -> Iterator[Path]:
    (cli_env / "elsewhere" / "keep.txt").write_text("a file, not a folder")
    yield cli_env
    (cli_env / "elsewhere" / "keep.txt").unlink()


def test_a_generated_corpus_of_bad_input_is_refused_without_a_traceback_or_a_write(corpus_dir: Path) -> None:
    before = snapshot(corpus_dir)
    seen: list[list[str]] = []

    @settings(max_examples=250, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(_cases())
    def refused(args: list[str]) -> None:
        seen.append(args)
        result = run(*args)
        assert_refused(result)
        assert snapshot(corpus_dir) == before, args
        assert not Path(_MISSING).parent.exists(), args
        assert sorted(os.listdir(corpus_dir / "elsewhere")) == ["keep.txt", "rationale.md"], args

    refused()
    assert len(seen) >= 200 and len({args[0] for args in seen}) >= 14
    assert sorted(os.listdir(corpus_dir / "elsewhere")) == ["keep.txt", "rationale.md"]
