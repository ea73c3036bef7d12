"""A throwaway PostgreSQL 15 server for tests of the production storage paths.

How it works, and why: docs/architecture.md, "ml_platform/testing/postgres.py".
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg import sql

from ml_platform.errors import ConfigurationError, MLPlatformError

__all__ = [
    "DetachedPostgres",
    "PostgresDatabase",
    "PostgresHarnessError",
    "PostgresServer",
    "find_postgres_binaries",
    "unique_database_name",
]

HOST = "127.0.0.1"
SUPERUSER = "postgres"
DAGSTER_SCHEME = "postgresql+psycopg2"
_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
_DEFAULT_SEARCH_DIRS = (Path("/usr/lib/postgresql"), Path("/usr/local/pgsql/bin"), Path("/opt/homebrew/bin"))
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_LOG_TAIL_LINES = 40
_START_ATTEMPTS = 3
_NO_DURABILITY = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_TEST_SETTINGS: Mapping[str, str] = {**_NO_DURABILITY, "max_connections": "200"}
_INITDB_FLAGS = ("-U", SUPERUSER, "--auth-local=trust", "--auth-host=trust", "--encoding=UTF8", "--locale=C")


class PostgresHarnessError(MLPlatformError):
    """The test PostgreSQL server could not be found, started, stopped or used."""

    code = "POSTGRES_HARNESS_ERROR"


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on a :class:`PostgresServer`, with the connection strings each client needs.

    Attributes:
        name: Database name.
        host: Loopback address the server listens on.
        port: TCP port of the server.
        user: Role to connect as (the trust-authenticated superuser).
    """

    name: str
    host: str
    port: int
    user: str = SUPERUSER

    @property
    def dsn(self) -> str:
        """The libpq URL, for ``psycopg.connect``: ``postgresql://postgres@127.0.0.1:PORT/NAME``."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.name}"

    @property
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL with the psycopg 3 driver, for MLflow's tracking and registry stores."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.name}"

    def dagster_storage_config(self) -> dict[str, Any]:
        """The ``storage`` block of a ``dagster.yaml`` that puts every Dagster storage on this database.

        The shape is dagster-postgres's ``pg_config`` under the ``postgres`` storage selector; run,
        event log and schedule storage all land in this one database. The driver is pinned to psycopg2:
        SQLAlchemy 2.1 maps a bare ``postgresql`` scheme to psycopg 3, whose server-side parameter
        binding breaks dagster-postgres's ``NOTIFY run_events, :notify_id`` on every stored event.

        Returns:
            ``{"storage": {"postgres": {"postgres_db": {...}}}}``, ready for ``instance_for_test(overrides=...)``.
        """
        postgres_db = {"username": self.user, "password": "", "hostname": self.host, "db_name": self.name}
        postgres_db |= {"port": self.port, "scheme": DAGSTER_SCHEME}
        return {"storage": {"postgres": {"postgres_db": postgres_db}}}


@dataclass(frozen=True)
class DetachedPostgres:
    """A server :meth:`PostgresServer.detach` left running beyond its object and process: how to stop it.

    Attributes:
        bin_dir: Directory of ``pg_ctl``.
        directory: The server's temporary directory (data folder, log, socket), removed by :meth:`stop`.
        port: TCP port on the loopback address.
        run_as: The system user the server runs as (``postgres`` when started as root), or None.
    """

    bin_dir: Path
    directory: Path
    port: int
    run_as: str | None = None

    @property
    def host(self) -> str:
        return HOST

    @property
    def running(self) -> bool:
        """Whether the server's ``postmaster.pid`` is still there (pg_ctl removes it on a clean stop)."""
        return (self.directory / "data" / "postmaster.pid").exists()

    def database(self, name: str) -> PostgresDatabase:
        return PostgresDatabase(name=name, host=HOST, port=self.port)

    def stop(self) -> None:
        """Stop the server (fast, else immediate, else SIGKILL) and remove its directory; idempotent."""
        _teardown(self.bin_dir, self.directory, pwd.getpwnam(self.run_as) if self.run_as else None)


def find_postgres_binaries(search_dirs: Sequence[Path] | None = None) -> tuple[Path | None, str]:
    """Find a directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Args:
        search_dirs: Directories to try in order, each also as a parent (``/usr/lib/postgresql``) of
            ``<version>/bin`` directories, newest first. ``None``: ``initdb``'s directory on ``PATH``
            (symlinks resolved), then the usual install locations.

    Returns:
        ``(bin_dir, description)`` when found, else ``(None, reason)`` naming what was searched.
    """
    candidates: list[Path] = []
    if search_dirs is None:
        on_path = shutil.which("initdb")
        if on_path is not None:
            candidates.append(Path(on_path).resolve().parent)
        search_dirs = _DEFAULT_SEARCH_DIRS
    for directory in search_dirs:
        candidates.append(directory)
        versioned = [d / "bin" for d in directory.glob("*") if (d / "bin").is_dir()]
        versioned.sort(key=lambda p: tuple(int(n) for n in re.findall(r"\d+", p.parent.name)), reverse=True)
        candidates.extend(versioned)
    for candidate in candidates:
        if all(os.access(candidate / name, os.X_OK) for name in _REQUIRED_BINARIES):
            return candidate, f"PostgreSQL binaries found in {candidate}"
    searched = ", ".join(str(c) for c in candidates) or "nothing"
    return None, (
        f"no directory with {', '.join(_REQUIRED_BINARIES)} found (searched: {searched}); "
        "install PostgreSQL 15 server binaries (for example apt-get install postgresql-15)"
    )


def unique_database_name(prefix: str = "test") -> str:
    """A fresh valid database name: the prefix reduced to ``[a-z0-9_]`` plus a random suffix."""
    cleaned = re.sub(r"[^a-z0-9_]+", "_", prefix.lower()).strip("_")[:40] or "test"
    if cleaned[0].isdigit():
        cleaned = f"db_{cleaned}"[:40]
    return f"{cleaned}_{uuid.uuid4().hex[:12]}"


class PostgresServer:
    """A private PostgreSQL server in a temporary directory; a context manager.

    Args:
        bin_dir: Directory of ``initdb``/``pg_ctl``/``postgres``; found with
            :func:`find_postgres_binaries` when ``None``.
        settings: Extra ``postgresql.conf`` settings, applied after the harness defaults.
    """

    def __init__(self, bin_dir: Path | None = None, settings: Mapping[str, str] | None = None) -> None:
        if bin_dir is None:
            found, reason = find_postgres_binaries()
            if found is None:
                raise PostgresHarnessError(reason)
            bin_dir = found
        self._bin_dir = bin_dir
        self._settings = {**_TEST_SETTINGS, **(settings or {})}
        self._run_as = _run_as_user()
        self._directory: Path | None = None
        self._port: int | None = None
        self._finalizer: weakref.finalize | None = None

    @property
    def host(self) -> str:
        """The loopback address the server listens on."""
        return HOST

    @property
    def port(self) -> int:
        """The TCP port of the running server."""
        if self._port is None:
            raise PostgresHarnessError("the server is not running; call start() or enter it with `with`")
        return self._port

    @property
    def directory(self) -> Path | None:
        """The temporary directory of the most recent start (removed again by :meth:`stop`)."""
        return self._directory

    @property
    def running(self) -> bool:
        """Whether :meth:`start` succeeded and :meth:`stop` has not been called since."""
        return self._port is not None

    def start(self) -> None:
        """Create the cluster and start the server; retries on a port taken between probe and bind.

        Raises:
            PostgresHarnessError: ``initdb`` or ``pg_ctl start`` failed; the message quotes the log tail.
        """
        if self.running:
            raise PostgresHarnessError("the server is already running; call stop() before starting it again")
        for attempt in range(1, _START_ATTEMPTS + 1):
            directory = _make_owned_directory(self._run_as)
            self._directory = directory
            self._finalizer = weakref.finalize(self, _teardown, self._bin_dir, directory, self._run_as)
            try:
                port = _free_port()
                self._initdb(directory)
                self._configure(directory, port)
                log = str(directory / "postgres.log")
                _pg_ctl(self._bin_dir, directory, self._run_as, "start", "-l", log)
            except PostgresHarnessError as exc:
                log_tail = _log_tail(directory / "postgres.log")
                self._finalizer()
                if "could not bind" in log_tail and attempt < _START_ATTEMPTS:
                    continue
                detail = exc.args[0]
                raise PostgresHarnessError(f"{detail}\n--- server log tail ---\n{log_tail}") from exc
            except BaseException:
                self._finalizer()
                raise
            self._port = port
            return

    def stop(self) -> None:
        """Stop the server (fast, else immediate shutdown, else SIGKILL) and remove its directory; idempotent."""
        if self._finalizer is not None:
            self._finalizer()
        self._port = None

    def detach(self) -> DetachedPostgres:
        """Leave the server running when this object, and this process, are gone; how to stop it later.

        A launcher that starts the server and exits (``make prod-local``) records the handle and stops the
        server from another process with :meth:`DetachedPostgres.stop`. This object is stopped afterwards.

        Raises:
            PostgresHarnessError: The server is not running.
        """
        if self._finalizer is None or self._directory is None or self._port is None:
            raise PostgresHarnessError("the server is not running; start() it before detaching it")
        self._finalizer.detach()
        handle = DetachedPostgres(bin_dir=self._bin_dir, directory=self._directory, port=self._port,
                                  run_as=self._run_as.pw_name if self._run_as is not None else None)
        self._finalizer = None
        self._port = None
        return handle

    def create_database(self, name: str) -> PostgresDatabase:
        """Create an empty database.

        Args:
            name: Lower-case identifier, ``[a-z_][a-z0-9_]*``, at most 63 characters.

        Raises:
            ConfigurationError: The name is not a plain lower-case identifier.
            PostgresHarnessError: The database exists already, or the server refused.
        """
        self._check_name(name)
        self._admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)), f"create database {name!r}")
        return PostgresDatabase(name=name, host=self.host, port=self.port)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, terminating any connections still open on it."""
        self._check_name(name)
        statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        self._admin(statement, f"drop database {name!r}")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _check_name(self, name: str) -> None:
        if not _DATABASE_NAME.fullmatch(name):
            raise ConfigurationError(
                f"database name {name!r} is not a plain lower-case identifier ([a-z_][a-z0-9_]*, at most "
                "63 characters); use unique_database_name() to derive one"
            )

    def _admin(self, statement: sql.Composed, action: str) -> None:
        maintenance = PostgresDatabase(name="postgres", host=self.host, port=self.port)
        try:
            with psycopg.connect(maintenance.dsn, autocommit=True, connect_timeout=10) as conn:
                conn.execute(statement)
        except psycopg.Error as exc:
            raise PostgresHarnessError(f"could not {action} on {self.host}:{self.port}: {exc}") from exc

    def _initdb(self, directory: Path) -> None:
        args = ["-D", str(directory / "data"), *_INITDB_FLAGS, "--no-sync"]
        _run(self._bin_dir / "initdb", args, run_as=self._run_as, cwd=directory, timeout=180)

    def _configure(self, directory: Path, port: int) -> None:
        settings = {
            **self._settings,
            "listen_addresses": f"'{HOST}'",
            "port": str(port),
            "unix_socket_directories": f"'{directory}'",
        }
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        with (directory / "data" / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# ml_platform test harness\n" + lines)


def _run_as_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PostgresHarnessError(
            "running as root, and initdb refuses root, but there is no 'postgres' system user to run the "
            "server as; create one (useradd --system postgres) or run the tests as a non-root user"
        ) from None


def _make_owned_directory(run_as: pwd.struct_passwd | None) -> Path:
    """A fresh directory the server user owns, reachable by that user, short enough for a socket path."""
    base = Path(tempfile.gettempdir())
    if run_as is not None and not all(p.stat().st_mode & 0o001 for p in (base, *base.parents)):
        base = Path("/tmp")  # the postgres user could not traverse TMPDIR
    if len(str(base / "mlp_pg_12345678" / ".s.PGSQL.65535")) > 100:
        raise PostgresHarnessError(f"TMPDIR {base} is too long for a unix socket path; set TMPDIR=/tmp")
    directory = Path(tempfile.mkdtemp(prefix="mlp_pg_", dir=base))
    try:
        if run_as is not None:
            os.chown(directory, run_as.pw_uid, run_as.pw_gid)
        directory.chmod(0o700)
    except OSError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise PostgresHarnessError(f"could not hand {directory} to the server user: {exc}") from exc
    return directory


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _run(
    binary: Path, args: list[str], *, run_as: pwd.struct_passwd | None, cwd: Path, timeout: float
) -> None:
    command = [str(binary), *args]
    if run_as is not None:
        command = ["runuser", "-u", run_as.pw_name, "--", *command]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    try:
        completed = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostgresHarnessError(f"{' '.join(command)} could not run: {exc}") from exc
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip()[-4000:]
        raise PostgresHarnessError(f"{' '.join(command)} exited with {completed.returncode}:\n{output}")


def _pg_ctl(bin_dir: Path, directory: Path, run_as: pwd.struct_passwd | None, *args: str) -> None:
    command_args = ["-D", str(directory / "data"), "-w", "-t", "60", *args]
    _run(bin_dir / "pg_ctl", command_args, run_as=run_as, cwd=directory, timeout=90)


def _teardown(bin_dir: Path, directory: Path, run_as: pwd.struct_passwd | None) -> None:
    """Stop whatever server runs from ``directory`` and remove the directory; never raises."""
    pid_file = directory / "data" / "postmaster.pid"
    if pid_file.exists():
        for mode in ("fast", "immediate"):
            try:
                _pg_ctl(bin_dir, directory, run_as, "-m", mode, "stop")
                break
            except PostgresHarnessError:
                continue
        else:
            _kill_postmaster(pid_file)
    shutil.rmtree(directory, ignore_errors=True)


def _kill_postmaster(pid_file: Path) -> None:
    """SIGKILL the postmaster named in ``pid_file``, only if that pid still runs on this data directory."""
    try:
        pid = int(pid_file.read_text(encoding="utf-8").splitlines()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if os.fsencode(str(pid_file.parent)) in cmdline:
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


def _log_tail(log_file: Path) -> str:
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no server log was written)"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(the server log is empty)"
