"""Database backends for the store tests: every test gets a fresh, empty database on each.

- SQLite: a new file under the test's tmp_path.
- PostgreSQL: a new database on the server in GEOAI_TEST_POSTGRES_URL
  (`eval "$(scripts/pg-test-server.sh start)"` runs a throw-away one), dropped afterwards.

Without GEOAI_TEST_POSTGRES_URL the PostgreSQL cases skip, except under CI (CI or
GEOAI_REQUIRE_POSTGRES=1 set): there a missing server fails them, so CI cannot pass
without having tested PostgreSQL.

    from db_backends import db_url  # noqa: F401 - a fixture
    def test_x(db_url): GameStore(db_url)...
"""
from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ENV = "GEOAI_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


def postgres_required() -> bool:
    return os.environ.get("GEOAI_REQUIRE_POSTGRES") == "1" or bool(os.environ.get("CI"))


def postgres_admin_url() -> str:
    """The test server's URL; skips the test (fails it under CI) when there is none."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        message = (f"{POSTGRES_ENV} is not set: start a server with "
                   f'`eval "$(scripts/pg-test-server.sh start)"`')
        if postgres_required():
            pytest.fail(f"PostgreSQL is required here (CI or GEOAI_REQUIRE_POSTGRES=1): {message}")
        pytest.skip(message)
    return url


class PostgresDatabases:
    """Creates and drops throw-away databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT",
                                    connect_args={"connect_timeout": 10})

    def create(self) -> str:
        name = f"geoai_test_{uuid.uuid4().hex[:16]}"
        with self.engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


_servers: dict[str, PostgresDatabases] = {}  # admin URL -> its helper, one per test process


def fresh_url(backend: str, tmp_path):
    """(URL of a new empty database, cleanup)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'games-{uuid.uuid4().hex[:8]}.sqlite'}", lambda: None
    admin = postgres_admin_url()
    databases = _servers.get(admin) or _servers.setdefault(admin, PostgresDatabases(admin))
    url = databases.create()
    return url, lambda: databases.drop(url)


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """A fresh empty database's URL, once per backend."""
    url, cleanup = fresh_url(request.param, tmp_path)
    yield url
    cleanup()


@pytest.fixture
def make_db_url(tmp_path):
    """make_db_url(backend) -> a fresh empty database's URL (for tests choosing backends themselves)."""
    cleanups = []

    def make(backend: str) -> str:
        url, cleanup = fresh_url(backend, tmp_path)
        cleanups.append(cleanup)
        return url

    yield make
    for cleanup in cleanups:
        cleanup()


# -- records ---------------------------------------------------------------------------------
def game_record(name="Ana", map_name="croatia", person_km=(10.0, 20.0), model_km=(50.0, 5.0), at=None,
                models=("beit",), labels=None, challenge_code=None, **fields):
    """A finished game: the person and `models` guess len(person_km) rounds."""
    from datetime import datetime, timedelta, timezone

    from db import GameRecord, GuessRecord, RoundRecord
    from db.models import PERSON
    at = at or datetime(2026, 1, 1, tzinfo=timezone.utc)
    labels = labels or {}
    rounds = []
    for i, (p_km, m_km) in enumerate(zip(person_km, model_km), start=1):
        guesses = [GuessRecord(PERSON, 45.0, 16.0, p_km, int(5000 - p_km))]
        guesses += [GuessRecord(m, 44.0, 15.0, m_km, int(5000 - m_km), labels.get(m)) for m in models]
        rounds.append(RoundRecord(i, f"loc{i}", f"img{i}.jpg", 45.1, 16.1, tuple(guesses)))
    person = sum(5000 - k for k in person_km)
    model = sum(5000 - k for k in model_km)
    values = dict(player_name=name, map_name=map_name, map_size_km=421.0, rounds=tuple(rounds),
                  winner=name if person > model else models[0], person_won=person > model,
                  started_at=at, finished_at=at + timedelta(minutes=3), challenge_code=challenge_code)
    values.update(fields)
    return GameRecord(**values)
