"""The database schema's version (Alembic): create, check and upgrade.

- An empty database gets the newest schema on first use, by the first process to get
  there: the check and the creation run under one lock (PostgreSQL: an advisory lock;
  SQLite: the write lock), so parallel first starts do not race.
- A database at an older revision is never changed behind anyone's back: the game refuses
  to run on it, and `python -m db upgrade` (after a backup) brings it up to date.
- A database written before migrations existed (the four game tables, no alembic_version)
  is that first revision.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from db.connect import WRITE, StoreError, safe_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BASELINE = "0001"  # what a database from before migrations is
LEGACY_TABLES = {"player", "game", "round", "guess"}
UPGRADE_COMMAND = "python -m db upgrade"
_PG_LOCK_KEY = 0x6765_6F61_6900  # "geoai": one advisory lock id for schema changes


class SchemaOutOfDate(StoreError):
    """The database was written by an older geoai; `python -m db upgrade` fixes it."""


@dataclass(frozen=True)
class SchemaState:
    revision: str | None  # None: an empty database
    head: str
    legacy: bool = False  # the game tables without alembic_version (before migrations)

    @property
    def current(self) -> bool:
        return self.revision == self.head


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def known_revisions() -> set[str]:
    return {s.revision for s in ScriptDirectory.from_config(_config()).walk_revisions()}


def schema_state(connection: Connection) -> SchemaState:
    revision = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if revision is not None:
        return SchemaState(revision, head)
    tables = set(inspect(connection).get_table_names())
    if tables & LEGACY_TABLES:
        if not LEGACY_TABLES <= tables:
            raise StoreError(f"the database has only some of the game's tables ({', '.join(sorted(tables & LEGACY_TABLES))}); "
                             f"it is not a geoai database, or it is damaged")
        return SchemaState(BASELINE, head, legacy=True)
    return SchemaState(None, head)


def _lock(connection: Connection) -> None:
    """Serialise schema changes between processes until this transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    # SQLite: the connection's BEGIN IMMEDIATE already holds the database's write lock.


def ensure_current(engine: Engine, url: str) -> None:
    """Create the schema in an empty database; StoreError unless the schema is current."""
    with engine.connect() as connection:  # a read first: a read-only database may be current
        state = schema_state(connection)
    if state.revision is None:
        with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
            _lock(connection)
            state = schema_state(connection)  # another process may have created it meanwhile
            if state.revision is None:
                command.upgrade(_config(connection), "head")
                return
    _require_current(state, url)


def _require_current(state: SchemaState, url: str) -> None:
    if state.current:
        return
    if state.revision not in known_revisions():
        raise StoreError(f"the database {safe_url(url)} was written by a newer geoai (schema {state.revision}); "
                         f"update geoai to play with it")
    raise SchemaOutOfDate(
        f"the database {safe_url(url)} has an older schema ({state.revision}, this geoai needs {state.head}): "
        f"back it up, then run `{UPGRADE_COMMAND}`")


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to the newest schema, in one transaction; (revision before, after)."""
    with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        _lock(connection)
        state = schema_state(connection)
        if state.revision is not None and state.revision not in known_revisions():
            raise StoreError(f"the database has schema {state.revision}, which this geoai does not know; "
                             f"update geoai instead")
        config = _config(connection)
        if state.legacy:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")
        return state.revision, state.head
