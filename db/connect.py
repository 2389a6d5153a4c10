"""Engines for the game database and the one place database errors become StoreErrors.

Every backend gets bounded waits, so a server that accepts a connection and never answers
fails a save in seconds instead of hanging a page:

- PostgreSQL (psycopg 3): ``connect_timeout`` and a server-side ``statement_timeout``;
- SQLite: ``busy_timeout`` (a writer queues behind another writer, never longer).

SQLite serves several Streamlit sessions at once: WAL lets readers run beside the writer,
write transactions start with BEGIN IMMEDIATE (the write lock up front, so two writers queue
on busy_timeout instead of failing with "database is locked"), reads with a plain BEGIN.
A read-only file stays readable: the WAL switch is skipped when the file cannot be written.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from geoai.settings import DEFAULT_SQLITE_PATH, database_url  # noqa: F401  (re-exported)

DATABASE_URL_ENV = "GEOAI_DATABASE_URL"  # named in messages; geoai.settings reads it
SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 15_000
POOL_TIMEOUT_S = 10
WRITE = "geoai_write"  # execution option: this connection writes (SQLite: BEGIN IMMEDIATE)


class StoreError(RuntimeError):
    """The database cannot be reached or refused a write; the message says what to check."""


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as a placeholder
        return "<unparsable URL>"


def sqlite_path(engine: Engine) -> Path | None:
    """The SQLite file behind `engine`; None for other backends and in-memory databases."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def make_engine(url: str | None = None) -> Engine:
    """An engine for `url` (default: database_url()) with timeouts; StoreError when unusable."""
    url = url or database_url()
    try:
        parsed = make_url(url)
        kwargs: dict = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "postgresql":
            kwargs["pool_timeout"] = POOL_TIMEOUT_S
            kwargs["connect_args"] = _postgres_timeouts(parsed)
        engine = create_engine(parsed, **kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:  # unknown dialect, missing driver
        raise StoreError(f"cannot use database URL from {DATABASE_URL_ENV} ({safe_url(url)}): {exc}") from exc
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def _postgres_timeouts(url) -> dict:
    """connect_timeout and statement_timeout unless the URL sets them itself."""
    args: dict = {}
    if "connect_timeout" not in url.query:
        args["connect_timeout"] = CONNECT_TIMEOUT_S
    if "options" not in url.query:
        args["options"] = f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
    return args


def _tune_sqlite(engine: Engine) -> None:
    path = sqlite_path(engine)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a file where the folder should be, no permission...
            raise StoreError(f"cannot create the folder of the game database {path}: {exc}") from exc
        if path.is_dir():
            raise StoreError(f"the game database {path} is a folder, not a file: "
                             f"remove it or point {DATABASE_URL_ENV} at a file")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let the "begin" event issue BEGIN (pysqlite's implicit BEGIN is deferred and late).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable with WAL, much faster commits
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        writes = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def _enable_wal(cursor) -> None:
    """Switch to WAL, retrying: the switch needs the file to itself and SQLite answers "locked"
    at once (no busy_timeout wait) while other connections open the same new database.
    A read-only file keeps its journal mode: reading needs no switch."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc):
                return
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def database_errors(action: str, url: str) -> Iterator[None]:
    """Turn any database or file-system error inside the block into a one-line StoreError."""
    try:
        yield
    except StoreError:
        raise
    except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
        raise StoreError(f"{action}: {explain(exc, url)}") from exc


def explain(exc: BaseException, url: str) -> str:
    """What went wrong, in words a person running the game can act on (one line)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    where = safe_url(url)
    lowered = text.lower()
    if "file is not a database" in lowered or "not a database" in lowered:
        return f"{where} is not a SQLite database (damaged, or another kind of file); move it away"
    if "unable to open database file" in lowered:
        return f"cannot open {where}: is it a folder, or is its folder missing or not writable?"
    if "readonly" in lowered or "read-only" in lowered:
        return f"{where} is read-only: the leaderboard can be read, but no game can be saved"
    if "database is locked" in lowered:
        return f"{where} stayed locked by another writer for {SQLITE_BUSY_TIMEOUT_MS // 1000} s"
    if "timeout expired" in lowered or "timed out" in lowered:
        return f"the database server {where} did not answer within {CONNECT_TIMEOUT_S} s"
    if "statement timeout" in lowered:
        return f"the database server {where} took longer than {STATEMENT_TIMEOUT_MS // 1000} s to answer"
    if "connection refused" in lowered or "could not connect" in lowered or "connection failed" in lowered:
        return f"cannot reach the database server {where}: {text}"
    return f"{text} ({where})"
