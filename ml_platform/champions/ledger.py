"""The champion ledger on SQLAlchemy: SQLite beside MLflow's file, or PostgreSQL in production.

How it works, and why: docs/architecture.md, "ml_platform/champions/ledger.py".
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

from sqlalchemy import Connection, Engine, and_, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.pool import NullPool, StaticPool

from ml_platform.champions.anchor import AnchorReading, check_anchor
from ml_platform.champions.chain import ChainReport, entry_from_row, walk_chain
from ml_platform.champions.entry import (
    GENESIS_HASH,
    KINDS,
    LEDGER_SCHEME,
    LedgerEntry,
    MoveKind,
    check_sha256,
    check_text,
    compute_entry_hash,
    format_time,
)
from ml_platform.champions.schema import ENTRIES, HEADS, SCHEMA_VERSION, current_version, ensure_schema
from ml_platform.database import database_cause
from ml_platform.errors import (
    ConfigurationError,
    LedgerConflict,
    LedgerError,
    LedgerMoveRefused,
    LedgerSchemaError,
    LedgerTampered,
    LedgerUnavailable,
)
from ml_platform.redact import has_secret, redacted_url, shareable_cause
from ml_platform.registry.entities import check_model_name, check_version
from ml_platform.settings import deployment_from_env

__all__ = ["DEFAULT_BUSY_TIMEOUT_SECONDS", "DEFAULT_MOVE_ATTEMPTS", "ChampionLedger"]

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0
"""How long a write waits for the database's write lock (SQLite) or the head row's lock (PostgreSQL)."""
DEFAULT_MOVE_ATTEMPTS = 5
"""How many times :meth:`ChampionLedger.move` retries the race between two first entries of a model."""

_WRITE = "ml_platform_ledger_write"
_MAX_ACTOR, _MAX_REASON, _MAX_REF = 256, 10_000, 2048


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ChampionLedger:
    """The append-only, hash-chained record of every champion move, per model.

    Args:
        url: SQLAlchemy URL of the registry's database: ``sqlite:///PATH`` (the MLflow file of the
            embedded default) or ``postgresql+psycopg://...``. The ledger's own tables are created or
            migrated on first use (:mod:`ml_platform.champions.schema`); MLflow's are never touched.
        busy_timeout_seconds: Bound on every wait for a lock (and the PostgreSQL connect timeout).
        clock: Source of ``recorded_at`` (timezone-aware); default: now, UTC.
        production: Refuse a promotion entry without its numeric report and written rationale (refs and
            hashes): in production only the promotion job, whose gates make both, moves a champion
            forward. Default: ``ML_PLATFORM_DEPLOYMENT=production``. Rollbacks are never refused for it.
        read_only: Only read: a SQLite file is opened ``mode=ro`` and must exist, PostgreSQL sessions are
            read-only, tables are never created or migrated (a database without them reads as an empty
            ledger), and every write fails. For commands that only read (``history``, ``audit verify``).
        create: Create a missing SQLite file (and its folder); ``False`` refuses one that does not exist.
    """

    def __init__(self, url: str, *, busy_timeout_seconds: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
                 clock: Callable[[], dt.datetime] | None = None, production: bool | None = None,
                 read_only: bool = False, create: bool = True) -> None:
        if not isinstance(url, str) or not url.strip():
            shown = redacted_url(url) if isinstance(url, str) else type(url).__name__
            raise ConfigurationError(f"the ledger URL must be a non-empty SQLAlchemy URL, got {shown!r}")
        if (isinstance(busy_timeout_seconds, bool) or not isinstance(busy_timeout_seconds, (int, float))
                or not 0 < busy_timeout_seconds <= 3600):
            raise ConfigurationError(
                f"busy_timeout_seconds must be a number of seconds in (0, 3600], got {busy_timeout_seconds!r}")
        try:
            parsed = make_url(url)
        except Exception as exc:  # noqa: BLE001 - refused whatever SQLAlchemy raised, its text redacted
            # SQLAlchemy's message may quote a piece of the password (a raw '@' or ':' in it moves the split)
            why = f"{type(exc).__name__}, its text left out: the URL holds a password" if has_secret(url) else exc
            raise ConfigurationError(f"the ledger URL {redacted_url(url)!r} is not a SQLAlchemy URL: {why}") from None
        self._backend = parsed.get_backend_name()
        if self._backend not in ("sqlite", "postgresql"):
            raise ConfigurationError(
                f"the ledger stores into SQLite or PostgreSQL, not {self._backend!r} ({self._label(parsed)})")
        if self._backend == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise ConfigurationError("an in-memory SQLite ledger would vanish with its connection; give a file: "
                                     "sqlite:///PATH (the registry's MLflow database)")
        self.url = url
        self.store = self._label(parsed)
        self.busy_timeout_seconds = float(busy_timeout_seconds)
        self._clock = clock or _utc_now
        self._parsed = parsed
        self.production = deployment_from_env(os.environ) == "production" if production is None else bool(production)
        self.read_only = bool(read_only)
        self.create = bool(create) and not self.read_only
        self._engine_instance: Engine | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ChampionLedger({self.store!r})"

    @staticmethod
    def _label(parsed: Any) -> str:
        return redacted_url(str(parsed.render_as_string(hide_password=True)))

    # -- engine --------------------------------------------------------------------------------

    @property
    def _engine(self) -> Engine:
        if self._engine_instance is not None:
            return self._engine_instance
        with self._lock:
            if self._engine_instance is None and self.read_only:
                self._engine_instance = self._open_read_only()
            if self._engine_instance is None:
                engine = self._create_engine()
                try:
                    with self._errors("create or migrate the ledger's tables"), \
                            engine.connect() as read, engine.connect().execution_options(**{_WRITE: True}) as write:
                        ensure_schema(read, write)
                except BaseException:
                    engine.dispose()
                    raise
                self._engine_instance = engine
        return self._engine_instance

    def _open_read_only(self) -> Engine:
        """The engine of a read-only ledger: its tables checked, never created; none at all reads as empty."""
        engine = self._create_engine()
        try:
            with self._errors("read the ledger's schema version"), engine.connect() as conn:
                version = current_version(conn)
        except BaseException:
            engine.dispose()
            raise
        if version == SCHEMA_VERSION:
            return engine
        engine.dispose()
        if version == 0:  # never promoted anything: an empty ledger, in memory, and nothing written to the file
            empty = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
            with empty.connect() as conn:
                ensure_schema(conn)
            return empty
        newer = version > SCHEMA_VERSION
        raise LedgerSchemaError(
            f"ledger {self.store}: its tables are at schema version {version}, {'newer' if newer else 'older'} than "
            f"the {SCHEMA_VERSION} of this ml_platform, and a command that only reads never migrates: "
            + ("upgrade ml_platform" if newer else "run a writing command (`ml-platform registry reconcile`) first"))

    def _create_engine(self) -> Engine:
        wait = self.busy_timeout_seconds
        if self._backend == "sqlite":
            path = Path(str(self._parsed.database)).expanduser()
            if not self.create and not path.is_file():
                raise LedgerError(
                    f"no ledger database at {path}: nothing was created or written; name the registry's database "
                    "with --tracking-uri or --ledger-url (or set ML_PLATFORM_HOME, ML_PLATFORM_LEDGER_URL)")
            if self.read_only:
                location = f"{path.resolve().as_uri()}?mode=ro"
                engine = create_engine("sqlite://", poolclass=NullPool, creator=lambda: sqlite3.connect(
                    location, uri=True, timeout=wait, check_same_thread=False))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(self._parsed, connect_args={"timeout": wait}, pool_size=5, max_overflow=32)

            @event.listens_for(engine, "connect")
            def _connect(dbapi_connection: Any, record: Any) -> None:
                dbapi_connection.isolation_level = None  # the "begin" listener below issues BEGIN itself
                dbapi_connection.execute("PRAGMA foreign_keys = ON")

            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

            return engine
        options = f"-c lock_timeout={int(wait * 1000)}"
        if self.read_only:
            options += " -c default_transaction_read_only=on"
        return create_engine(self._parsed, pool_size=5, max_overflow=32, pool_pre_ping=True,
                             connect_args={"connect_timeout": max(2, math.ceil(wait)), "options": options})

    @property
    def engine(self) -> Engine:
        """The ledger's SQLAlchemy engine (schema ensured), for read-only queries beside the ledger's own.

        :class:`~ml_platform.champions.service.ChampionService` reads MLflow's version rows through it
        when they live in the same database (the fast path that needs no MLflow client). Never write
        the ledger's tables through it: only :meth:`append` and :meth:`move` keep the chain.
        """
        return self._engine

    def close(self) -> None:
        """Close the ledger's connections (it reconnects on next use)."""
        with self._lock:
            if self._engine_instance is not None:
                self._engine_instance.dispose()
                self._engine_instance = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except LedgerError:
            raise
        except ConfigurationError:
            raise
        except Exception as exc:  # noqa: BLE001 - chained unless its text holds a credential (shareable_cause)
            cause = database_cause(exc)
            chained = shareable_cause(exc)  # a driver's message may quote the URL with its password
            if cause is None:
                raise LedgerError(f"ledger {self.store}: failed to {action}: {type(exc).__name__}: "
                                  f"{redacted_url(str(exc))}") from chained
            head = f"ledger {self.store}: {redacted_url(cause.message)} ({cause.kind}), while trying to {action}"
            if cause.busy:
                raise LedgerUnavailable(
                    f"{head}: still locked by another writer after {self.busy_timeout_seconds:g} s; nothing was "
                    "written, retry (or wait longer: busy_timeout_seconds)") from chained
            if cause.unreachable:
                raise LedgerUnavailable(f"{head}; nothing was written: check that the database server is up and "
                                        "the URL is right") from chained
            raise LedgerError(f"{head}; nothing was written") from chained

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self.read_only:
            raise LedgerError(f"ledger {self.store} was opened read-only; nothing was written")
        with self._engine.connect().execution_options(**{_WRITE: True}) as conn, conn.begin():
            yield conn

    # -- reads ---------------------------------------------------------------------------------

    def head(self, model: str) -> LedgerEntry | None:
        """The champion of record: the newest entry of ``model`` (``None`` if it never had one). One read.

        The entry's hash and the head row are checked against each other on the way, and against the
        newest entry's number (no extra query): a head row moved back to an earlier entry is refused.

        Raises:
            LedgerTampered: the head entry, or the head row, was altered, or the head row was moved back.
        """
        check_model_name(model)
        newest = select(func.max(ENTRIES.c.seq)).where(ENTRIES.c.model == model).scalar_subquery()
        query = (select(HEADS.c.seq.label("head_seq"), HEADS.c.entry_hash.label("head_hash"),
                        newest.label("newest_seq"), ENTRIES)
                 .select_from(HEADS.outerjoin(ENTRIES, and_(ENTRIES.c.model == HEADS.c.model,
                                                            ENTRIES.c.seq == HEADS.c.seq)))
                 .where(HEADS.c.model == model))
        with self._errors(f"read the champion of record of {model!r}"), self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        report = ChainReport(model, 1, row["head_seq"], row["head_hash"], None)
        problem, kind = None, "head"
        if row["seq"] is None:
            problem = f"the head names entry {row['head_seq']}, which is missing (deleted)"
        else:
            try:
                entry = entry_from_row(row)
                if entry.expected_hash != entry.entry_hash:
                    problem = "its fields do not give its hash: it was edited"
                elif entry.entry_hash != row["head_hash"] or entry.model != model:
                    problem = "the head row names another hash: the head row was altered"
                elif row["newest_seq"] != entry.seq:
                    problem = (f"the chain goes on to entry {row['newest_seq']}: the head row was moved back, or an "
                               "entry was written past it")
                    kind = "moved_back"
                else:
                    return entry
            except (ValueError, TypeError, ConfigurationError) as exc:
                problem = f"it cannot be read back ({exc}): it was edited"
        raise LedgerTampered(
            f"ledger {self.store}: the head entry {row['head_seq']} of model {model!r} is tampered: {problem}; "
            f"do not serve from it, run `ml-platform audit verify {model}` and restore the table from a backup",
            model=model, seq=report.head_seq, problem=kind)

    def history(self, model: str) -> tuple[LedgerEntry, ...]:
        """Every entry of ``model``, oldest first, as stored (use :meth:`verify` to check them).

        Raises:
            LedgerTampered: a row cannot be read back into an entry.
        """
        check_model_name(model)
        query = select(ENTRIES).where(ENTRIES.c.model == model).order_by(ENTRIES.c.seq)
        with self._errors(f"read the ledger of {model!r}"), self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        entries = []
        for row in rows:
            try:
                entries.append(entry_from_row(row))
            except (ValueError, TypeError) as exc:
                raise LedgerTampered(
                    f"ledger {self.store}: entry {row['seq']} of model {model!r} cannot be read back ({exc}); run "
                    f"`ml-platform audit verify {model}`", model=model, seq=row["seq"], problem="altered") from exc
        return tuple(entries)

    def was_champion(self, model: str, version: str | int) -> bool:
        """Whether ``version`` was ever the champion of ``model`` (one indexed read)."""
        check_model_name(model)
        number = check_version(version)
        query = select(ENTRIES.c.seq).where(and_(ENTRIES.c.model == model, ENTRIES.c.to_version == number)).limit(1)
        with self._errors(f"read the ledger of {model!r}"), self._engine.connect() as conn:
            return conn.execute(query).first() is not None

    def models(self) -> tuple[str, ...]:
        """Every model with a champion of record, sorted."""
        with self._errors("list the ledger's models"), self._engine.connect() as conn:
            return tuple(conn.execute(select(HEADS.c.model).order_by(HEADS.c.model)).scalars())

    def verify(self, model: str, *, strict: bool = True, anchor: AnchorReading | None = None) -> ChainReport:
        """Re-walk ``model``'s chain from the genesis hash to its head, in one read transaction.

        Args:
            model: Registered model name.
            strict: Raise on a broken chain (default); ``False`` returns the report either way.
            anchor: The head's anchor as read outside the ledger's tables, to cross-check the head
                against (:func:`~ml_platform.champions.anchor.check_anchor`); ``None``: not checked.

        Raises:
            LedgerTampered: (``strict``) naming the first altered, deleted or reordered entry, or the
                cut tail or rewritten chain the anchor names.
        """
        check_model_name(model)
        with self._errors(f"verify the ledger of {model!r}"), self._engine.connect() as conn, conn.begin():
            rows = conn.execute(select(ENTRIES).where(ENTRIES.c.model == model)
                                .order_by(ENTRIES.c.seq)).mappings().all()
            head = conn.execute(select(HEADS).where(HEADS.c.model == model)).mappings().first()
        report = walk_chain(model, rows, head)
        if anchor is not None:
            report = check_anchor(report, rows, anchor)
        return report.raise_if_tampered() if strict else report

    # -- writes --------------------------------------------------------------------------------

    def append(
        self,
        model: str,
        *,
        expected_head_seq: int,
        kind: str,
        to_version: str | int,
        actor: str,
        reason: str,
        approver: str | None = None,
        report_ref: str | None = None,
        report_sha256: str | None = None,
        rationale_ref: str | None = None,
        rationale_sha256: str | None = None,
        override: bool = False,
    ) -> LedgerEntry:
        """Record one champion move, if the head is still ``expected_head_seq`` (compare-and-set, one transaction).

        ``from_version`` and ``prev_hash`` are taken from the head under its lock, never from the caller.

        Args:
            model: Registered model name.
            expected_head_seq: The ``seq`` of the head the caller decided on (``0``: the ledger is empty).
            kind: ``promotion`` or ``rollback``.
            to_version: The new champion version.
            actor: Who (or which run) moves the champion.
            reason: Why, in words.
            approver: Who approved (the four-eyes gate's approver), if anyone.
            report_ref / report_sha256: The numeric report's location and ``sha256:<hex>``, both or neither.
            rationale_ref / rationale_sha256: The rationale's location and ``sha256:<hex>``, both or neither.
            override: The rationale declares an override of a threshold (promotions with a rationale only).

        Returns:
            The entry written, now the head.

        Raises:
            ConfigurationError: an argument is malformed; nothing was written.
            LedgerConflict: the head is no longer ``expected_head_seq``; nothing was written.
            LedgerMoveRefused: ``to_version`` is already champion, or a rollback targets a version that was
                never champion (or there is no champion to roll back from); nothing was written.
            LedgerUnavailable / LedgerError: the database failed; nothing was written.
        """
        fields = self._checked_move(model, kind, to_version, actor, reason, approver, report_ref, report_sha256,
                                    rationale_ref, rationale_sha256, override)
        if (isinstance(expected_head_seq, bool) or not isinstance(expected_head_seq, int)
                or expected_head_seq < 0):
            raise ConfigurationError(f"expected_head_seq must be the head's seq, or 0 for an empty ledger, got "
                                     f"{expected_head_seq!r}")
        return self._append(fields, expected_head_seq)

    def _append(self, fields: dict[str, Any], expected_head_seq: int | None) -> LedgerEntry:
        """Record a checked move; ``expected_head_seq=None`` takes the head found under the lock."""
        model, kind, version = fields["model"], fields["kind"], fields["to_version"]
        try:
            with self._errors(f"record the {kind} of {model!r} to version {version}"), self._write() as conn:
                # Lock the head row alone first: on PostgreSQL, a statement that waited for the lock re-reads
                # only the locked row, so the entry it names is read by a second statement (a fresh snapshot).
                locked = conn.execute(select(HEADS.c.seq, HEADS.c.entry_hash)
                                      .where(HEADS.c.model == model).with_for_update()).first()
                actual = 0 if locked is None else int(locked.seq)
                if expected_head_seq is not None and actual != expected_head_seq:
                    raise LedgerConflict(
                        f"ledger {self.store}: the champion of {model!r} moved: its head is entry {actual}, not "
                        f"{expected_head_seq} as expected; nothing was written. Read the head again and re-decide "
                        "(re-run the gates against the new incumbent) before moving it",
                        model=model, expected_seq=expected_head_seq, actual_seq=actual)
                current = None
                if locked is not None:
                    current = conn.execute(select(ENTRIES.c.to_version).where(
                        and_(ENTRIES.c.model == model, ENTRIES.c.seq == actual))).scalar()
                    if current is None:
                        raise LedgerTampered(
                            f"ledger {self.store}: the head of {model!r} names entry {actual}, which is missing; "
                            f"run `ml-platform audit verify {model}`", model=model, seq=actual, problem="missing")
                self._check_target(conn, model, kind, version, current)
                entry = self._new_entry(fields, seq=actual + 1, from_version=current,
                                        prev_hash=GENESIS_HASH if locked is None else locked.entry_hash)
                conn.execute(ENTRIES.insert().values(**entry.hashed_fields(), entry_hash=entry.entry_hash))
                if locked is None:
                    conn.execute(HEADS.insert().values(model=model, seq=entry.seq, entry_hash=entry.entry_hash))
                else:
                    moved = conn.execute(HEADS.update()
                                         .where(and_(HEADS.c.model == model, HEADS.c.seq == actual))
                                         .values(seq=entry.seq, entry_hash=entry.entry_hash)).rowcount
                    if moved != 1:  # cannot happen under the lock; refuse rather than fork
                        raise LedgerConflict(f"ledger {self.store}: the head of {model!r} moved under its lock; "
                                             "nothing was written, retry", model=model,
                                             expected_seq=expected_head_seq)
        except LedgerError as exc:
            if isinstance(exc.__cause__, SAIntegrityError) and _is_unique_violation(exc.__cause__):
                raise LedgerConflict(
                    f"ledger {self.store}: another move of {model!r} was recorded at the same time; nothing was "
                    "written. Read the head again and re-decide", model=model,
                    expected_seq=expected_head_seq) from exc.__cause__
            raise
        logger.info("ledger: %s of %r %s -> %s recorded as entry %d (%s)", kind, model, entry.from_version,
                    entry.to_version, entry.seq, entry.entry_hash)
        return entry

    def move(self, model: str, *, kind: str, to_version: str | int, actor: str, reason: str,
             max_attempts: int = DEFAULT_MOVE_ATTEMPTS, **details: Any) -> LedgerEntry:
        """Move the champion from whatever the head is: the head is read under its lock, in the append's transaction.

        For callers whose decision does not depend on the incumbent (a manual rollback, ``make demo``).
        Because the head is read after the lock is taken, concurrent moves queue on the lock instead of
        failing; the only race left is between two *first* entries of a model (no head row to lock yet),
        retried here at most ``max_attempts`` times with jittered back-off. The promotion job must use
        :meth:`append` with the head its gates compared against, so that a move recorded in between
        fails it instead of being silently overtaken.

        Args:
            details: ``approver``, ``report_ref``, ``report_sha256``, ``rationale_ref``,
                ``rationale_sha256``, ``override`` (as for :meth:`append`).

        Raises:
            LedgerConflict: every attempt lost a race; nothing was written by this call.
            Whatever :meth:`append` raises otherwise.
        """
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 100:
            raise ConfigurationError(f"max_attempts must be an integer from 1 to 100, got {max_attempts!r}")
        unknown = set(details) - {"approver", "report_ref", "report_sha256", "rationale_ref", "rationale_sha256",
                                  "override"}
        if unknown:
            raise ConfigurationError(f"move() got unknown arguments {sorted(unknown)}")
        fields = self._checked_move(model, kind, to_version, actor, reason, details.get("approver"),
                                    details.get("report_ref"), details.get("report_sha256"),
                                    details.get("rationale_ref"), details.get("rationale_sha256"),
                                    details.get("override", False))
        last: LedgerConflict | None = None
        for attempt in range(1, max_attempts + 1):
            try:
                return self._append(fields, None)
            except LedgerConflict as exc:
                last = exc
                if attempt < max_attempts:  # full jitter, capped: spreads the retries of a race
                    time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** attempt)))
        raise LedgerConflict(
            f"ledger {self.store}: the champion of {model!r} kept moving under this {kind} to version {to_version} "
            f"({max_attempts} attempts lost the race); nothing was written by it. Retry later",
            model=model, actual_seq=last.actual_seq if last else None) from last

    # -- helpers -------------------------------------------------------------------------------

    def _checked_move(self, *args: Any) -> dict[str, Any]:
        """The move's fields, checked; in production a promotion without its report and rationale is refused."""
        fields = _check_move(*args)
        if self.production and fields["kind"] == MoveKind.PROMOTION:
            missing = [name for name in ("report_ref", "report_sha256", "rationale_ref", "rationale_sha256")
                       if not fields.get(name)]
            if missing:
                raise LedgerMoveRefused(
                    f"ledger {self.store}: in production (ML_PLATFORM_DEPLOYMENT=production) a promotion of "
                    f"{fields['model']!r} needs its numeric report and written rationale, and this one has no "
                    f"{', '.join(missing)}: promote through the promotion job (`ml-platform promote`), whose "
                    "gates make both; nothing was written")
        return fields

    def _check_target(self, conn: Connection, model: str, kind: str, version: str, current: str | None) -> None:
        if version == current:
            raise LedgerMoveRefused(f"version {version} of {model!r} is already the champion of record; "
                                    "nothing was written")
        if kind != MoveKind.ROLLBACK:
            return
        if current is None:
            raise LedgerMoveRefused(f"model {model!r} has no champion of record to roll back from; promote a "
                                    "version first")
        was_champion = conn.execute(select(ENTRIES.c.seq).where(
            and_(ENTRIES.c.model == model, ENTRIES.c.to_version == version)).limit(1)).first()
        if was_champion is None:
            raise LedgerMoveRefused(
                f"version {version} of {model!r} was never its champion, so it cannot be rolled back to; a rollback "
                f"returns to an earlier champion (see `ml-platform history {model}`), promote new versions instead")

    def _new_entry(self, fields: dict[str, Any], *, seq: int, from_version: str | None, prev_hash: str) -> LedgerEntry:
        recorded_at = self._clock()
        hashed = {**fields, "scheme": LEDGER_SCHEME, "seq": seq, "from_version": from_version,
                  "prev_hash": prev_hash, "recorded_at": format_time(recorded_at)}
        entry_hash = compute_entry_hash(hashed)
        return LedgerEntry(**{**hashed, "recorded_at": recorded_at.astimezone(dt.UTC)}, entry_hash=entry_hash)


def _is_unique_violation(exc: SAIntegrityError) -> bool:
    """A primary-key or unique-constraint clash (a concurrent insert of the same entry), not a CHECK or FK failure."""
    orig = exc.orig
    return type(orig).__name__ == "UniqueViolation" or "unique constraint" in str(orig).lower()


def _check_move(model: str, kind: str, to_version: str | int, actor: str, reason: str, approver: str | None,
                report_ref: str | None, report_sha256: str | None, rationale_ref: str | None,
                rationale_sha256: str | None, override: bool) -> dict[str, Any]:
    """The validated caller-given fields of an entry (everything but seq, from_version, time and hashes)."""
    check_model_name(model)
    if kind not in KINDS:
        raise ConfigurationError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(override, bool):
        raise ConfigurationError(f"override must be True or False, got {override!r}")
    for ref_name, ref, sha_name, sha in (("report_ref", report_ref, "report_sha256", report_sha256),
                                         ("rationale_ref", rationale_ref, "rationale_sha256", rationale_sha256)):
        if (ref is None) != (sha is None):
            raise ConfigurationError(f"{ref_name} and {sha_name} go together: give both or neither")
        check_text(ref_name, ref, max_length=_MAX_REF, optional=True)
        check_sha256(sha_name, sha, optional=True)
    if override and (kind != MoveKind.PROMOTION or rationale_ref is None):
        raise ConfigurationError("override=True records a threshold override declared by a rationale: it needs "
                                 "kind='promotion' and a rationale_ref")
    return {
        "model": model, "kind": kind, "to_version": check_version(to_version),
        "actor": check_text("actor", actor, max_length=_MAX_ACTOR),
        "approver": check_text("approver", approver, max_length=_MAX_ACTOR, optional=True),
        "reason": check_text("reason", reason, max_length=_MAX_REASON, multiline=True),
        "report_ref": report_ref, "report_sha256": report_sha256,
        "rationale_ref": rationale_ref, "rationale_sha256": rationale_sha256, "override": override,
    }
