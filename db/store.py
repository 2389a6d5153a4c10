"""The game database: engine set-up, saving finished games, leaderboard queries.

GEOAI_DATABASE_URL picks the database (any SQLAlchemy URL, e.g. a hosted
``postgresql+psycopg://user:pass@host/geoai``); the default is the SQLite file
db/geoai.sqlite beside this module. Tables are created on first use.

SQLite serves several Streamlit sessions at once: WAL lets readers run beside the writer,
every transaction starts with BEGIN IMMEDIATE (it takes the write lock up front, so two
writers queue on busy_timeout instead of failing with "database is locked" when a reader
upgrades), and a game is saved in ONE transaction: all of it lands or none of it does.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.models import PERSON, Base, Game, Guess, Player, Round
from db.names import validate_player_name
from db.records import GameRecord

DATABASE_URL_ENV = "GEOAI_DATABASE_URL"
DEFAULT_SQLITE_PATH = Path(__file__).resolve().parent / "geoai.sqlite"
SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_SAVE_ATTEMPTS = 5


class StoreError(RuntimeError):
    """The database cannot be reached or refused a write; the message says what to check."""


def database_url() -> str:
    """The configured SQLAlchemy URL (GEOAI_DATABASE_URL or the default SQLite file)."""
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{DEFAULT_SQLITE_PATH}"


def make_engine(url: str | None = None) -> Engine:
    """An engine for `url` (default: database_url()), with SQLite tuned for concurrent sessions."""
    url = url or database_url()
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as exc:  # unknown dialect, missing driver
        raise StoreError(f"cannot use database URL from {DATABASE_URL_ENV} ({_safe(url)}): {exc}") from exc
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    database = engine.url.database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN (pysqlite's implicit BEGIN is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable with WAL, much faster commits
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _enable_wal(cursor) -> None:
    """Switch to WAL, retrying: the switch needs the file to itself and SQLite answers "locked"
    at once (no busy_timeout wait) while other connections open the same new database."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _safe(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as a placeholder
        return "<unparsable URL>"


@dataclass(frozen=True)
class BestGame:
    rank: int
    player: str
    points: int
    rounds: int
    winner: str
    finished_at: str


@dataclass(frozen=True)
class ModelMatchup:
    """How people fared against one model over every round both played."""
    model: str
    games: int
    person_won_games: int
    model_won_games: int
    tied_games: int
    rounds: int
    person_won_rounds: int
    person_mean_km: float
    model_mean_km: float

    @property
    def person_game_win_rate(self) -> float:
        return self.person_won_games / self.games if self.games else 0.0

    @property
    def person_round_win_rate(self) -> float:
        return self.person_won_rounds / self.rounds if self.rounds else 0.0


class GameStore:
    """Saves games and answers leaderboard queries. Thread-safe: one per process is enough."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._created = False
        self._create_lock = threading.Lock()

    def create_tables(self) -> None:
        """Create missing tables (idempotent; called before the first query)."""
        with self._create_lock:
            if self._created:
                return
            try:
                Base.metadata.create_all(self.engine)
            except OperationalError as exc:
                raise StoreError(f"cannot open the game database {_safe(self.url)}: {exc.orig}") from exc
            self._created = True

    def _session(self) -> Session:
        self.create_tables()
        return self._sessions()

    # -- writing -----------------------------------------------------------------------
    def save_game(self, record: GameRecord) -> int:
        """Store a finished game with all its rounds and guesses in one transaction; its id.

        The player's name is validated (InvalidPlayerName); a name seen for the first time
        creates the player. Concurrent saves of the same new name are retried, so no game
        is lost to the unique constraint.
        """
        name = validate_player_name(record.player_name)
        if not record.rounds:
            raise ValueError("a game without rounds cannot be saved")
        last_error: Exception | None = None
        for _ in range(MAX_SAVE_ATTEMPTS):
            new_player = False
            try:
                with self._session() as session, session.begin():
                    player = session.scalar(select(Player).where(Player.name == name))
                    if player is None:
                        player, new_player = Player(name=name, created_at=record.started_at), True
                        session.add(player)
                    game = _game_row(record, player)
                    session.add(game)
                    session.flush()
                    return game.id
            except IntegrityError as exc:
                if not new_player:  # not the name race: the record breaks a constraint
                    raise StoreError(f"the database refused the game: {exc.orig}") from exc
                last_error = exc  # another session may have created the same player first
            except OperationalError as exc:
                raise StoreError(f"could not save the game to {_safe(self.url)}: {exc.orig}") from exc
        raise StoreError(f"could not save the game after {MAX_SAVE_ATTEMPTS} attempts: {last_error}")

    # -- reading -----------------------------------------------------------------------
    def maps(self) -> list[str]:
        """Names of the maps with at least one saved game, alphabetically."""
        with self._session() as session:
            return list(session.scalars(select(Game.map_name).distinct().order_by(Game.map_name)))

    def game_count(self, map_name: str | None = None) -> int:
        with self._session() as session:
            query = select(func.count(Game.id))
            if map_name is not None:
                query = query.where(Game.map_name == map_name)
            return int(session.scalar(query) or 0)

    def best_games(self, map_name: str, limit: int = 10) -> list[BestGame]:
        """The map's highest-scoring games (ties: the earlier game first)."""
        with self._session() as session:
            rows = session.execute(
                select(Player.name, Game.person_points, Game.rounds_played, Game.winner, Game.finished_at)
                .join(Player, Game.player_id == Player.id)
                .where(Game.map_name == map_name)
                .order_by(Game.person_points.desc(), Game.finished_at, Game.id)
                .limit(limit)
            ).all()
        return [BestGame(rank=i + 1, player=r[0], points=int(r[1]), rounds=int(r[2]), winner=r[3],
                         finished_at=r[4].strftime("%Y-%m-%d %H:%M")) for i, r in enumerate(rows)]

    def person_vs_models(self, map_name: str | None = None) -> list[ModelMatchup]:
        """Per model: games and rounds won by people vs the model, and both mean distances."""
        with self._session() as session:
            rows = session.execute(_matchup_query(map_name)).all()
        per_model: dict[str, dict[str, Any]] = {}
        for game_id, model, p_km, m_km, p_pts, m_pts in rows:
            stats = per_model.setdefault(model, {"games": {}, "rounds": 0, "won": 0, "p_km": 0.0, "m_km": 0.0})
            stats["rounds"] += 1
            stats["won"] += int(p_km < m_km)
            stats["p_km"] += p_km
            stats["m_km"] += m_km
            totals = stats["games"].setdefault(game_id, [0, 0])
            totals[0] += p_pts
            totals[1] += m_pts
        result = []
        for model, s in sorted(per_model.items()):
            games = list(s["games"].values())
            result.append(ModelMatchup(
                model=model, games=len(games),
                person_won_games=sum(p > m for p, m in games),
                model_won_games=sum(m > p for p, m in games),
                tied_games=sum(p == m for p, m in games),
                rounds=s["rounds"], person_won_rounds=s["won"],
                person_mean_km=s["p_km"] / s["rounds"], model_mean_km=s["m_km"] / s["rounds"]))
        return result

    def dispose(self) -> None:
        self.engine.dispose()


def _game_row(record: GameRecord, player: Player) -> Game:
    game = Game(player=player, map_name=record.map_name, map_size_km=float(record.map_size_km),
                rounds_played=len(record.rounds),
                person_points=sum(g.points for r in record.rounds for g in r.guesses if g.who == PERSON),
                winner=record.winner, person_won=bool(record.person_won),
                started_at=record.started_at, finished_at=record.finished_at)
    for r in record.rounds:
        row = Round(number=r.number, location_id=str(r.location_id), image=str(r.image),
                    lat=float(r.lat), lon=float(r.lon))
        row.guesses = [Guess(who=g.who, lat=float(g.lat), lon=float(g.lon),
                             distance_km=float(g.distance_km), points=int(g.points)) for g in r.guesses]
        game.rounds.append(row)
    return game


def _matchup_query(map_name: str | None):
    """(game id, model, person km, model km, person points, model points) per round."""
    person = Guess.__table__.alias("person_guess")
    model = Guess.__table__.alias("model_guess")
    query = (
        select(Round.game_id, model.c.who, person.c.distance_km, model.c.distance_km,
               person.c.points, model.c.points)
        .join(person, (person.c.round_id == Round.id) & (person.c.who == PERSON))
        .join(model, (model.c.round_id == Round.id) & (model.c.who != PERSON))
    )
    if map_name is not None:
        query = query.join(Game, Game.id == Round.game_id).where(Game.map_name == map_name)
    return query
