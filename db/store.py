"""The game store: saving finished games and answering leaderboard and challenge queries.

GEOAI_DATABASE_URL picks the database (any SQLAlchemy URL, e.g. a hosted
``postgresql+psycopg://user:pass@host/geoai``); the default is the SQLite file
db/geoai.sqlite beside this package. An empty database gets the schema on first use; an
older one must be upgraded first (`python -m db upgrade`, see db.schema).

Every failure is a StoreError with one line a person can act on (db.connect.explain);
a game is saved in ONE transaction: all of it lands or none of it does.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db import challenges, schema
from db.connect import (DATABASE_URL_ENV, DEFAULT_SQLITE_PATH, WRITE, StoreError, database_errors,
                        database_url, make_engine, safe_url, sqlite_path)
from db.models import PERSON, Challenge, Game, Guess, Player, Round
from db.names import player_key, validate_player_name
from db.records import GameRecord
from db.validate import RecordError, check_record

__all__ = ["DATABASE_URL_ENV", "DEFAULT_SQLITE_PATH", "BestGame", "GameStore", "ModelMatchup",
           "RecordError", "StoreError", "database_url"]

log = logging.getLogger("geoai.db")
MAX_SAVE_ATTEMPTS = 5


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
    """How people fared against one model (by its label) over every round both played."""
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
    """Saves games and answers queries. Thread-safe: one per process is enough."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(self.engine.execution_options(**{WRITE: True}), expire_on_commit=False)
        self._file = sqlite_path(self.engine)
        self._file_id: tuple[int, int] | None = None
        self._ready = False
        self._ready_lock = threading.Lock()

    # -- schema and the file behind it ------------------------------------------------------
    def create_tables(self) -> None:
        """Create the schema in an empty database, or check it is current (StoreError if not)."""
        with self._ready_lock:
            if self._ready:
                return
            with database_errors("cannot open the game database", self.url):
                schema.ensure_current(self.engine, self.url)
            self._file_id = self._identity()
            self._ready = True

    def _identity(self) -> tuple[int, int] | None:
        if self._file is None:
            return None
        try:
            status = os.stat(self._file)
        except FileNotFoundError:
            return None
        return status.st_dev, status.st_ino

    def _check_file(self, saved: bool = False) -> None:
        """StoreError when the SQLite file this store opened was deleted or replaced.

        A connection keeps writing into a deleted file's inode and reports success; this
        check (before and after each save) makes that an error instead. Before a query a
        replaced file is followed: the store reopens the path and checks its schema again.
        """
        if self._file is None or self._file_id is None:
            return
        now = self._identity()
        if now == self._file_id:
            return
        if now is None:
            what = "the game was written into a file that no longer exists" if saved else "nothing can be saved"
            raise StoreError(f"the database file {self._file} was deleted while the game was running: {what}; "
                             f"restore the file or restart the game to start a new leaderboard")
        if saved:
            raise StoreError(f"the database file {self._file} was replaced while the game was being saved: "
                             f"the game is not in the new file; please play it again")
        log.warning("database file %s was replaced; reopening it", self._file)
        self.engine.dispose()
        with self._ready_lock:
            self._ready = False
        self.create_tables()

    @contextmanager
    def _reading(self, action: str) -> Iterator[Session]:
        with database_errors(action, self.url):
            self.create_tables()
            self._check_file()
            with self._sessions() as session:
                yield session

    # -- writing -----------------------------------------------------------------------------
    def save_game(self, record: GameRecord) -> int:
        """Store a finished game with all its rounds and guesses in one transaction; its id.

        The player's name is validated (InvalidPlayerName) and every field checked against
        its column (RecordError); a name seen for the first time, in any case, creates the
        player. Concurrent saves of the same new name are retried, so none is lost.
        """
        name = validate_player_name(record.player_name)
        if not record.rounds:
            raise RecordError("a game without rounds cannot be saved")
        check_record(record)
        last_error: Exception | None = None
        with database_errors("could not save the game", self.url):
            self.create_tables()
            for _ in range(MAX_SAVE_ATTEMPTS):
                self._check_file()
                try:
                    game_id = self._insert_game(record, name)
                except IntegrityError as exc:
                    if "name" not in str(exc.orig).lower():  # not the new-player race: a bad record
                        raise StoreError(f"the database refused the game: {exc.orig}") from exc
                    last_error = exc  # another session created the same player first: retry
                    continue
                self._check_file(saved=True)
                return game_id
        raise StoreError(f"could not save the game after {MAX_SAVE_ATTEMPTS} attempts: {last_error}")

    def _insert_game(self, record: GameRecord, name: str) -> int:
        with self._writes() as session, session.begin():
            player = session.scalar(select(Player).where(Player.name_key == player_key(name)))
            if player is None:
                player = Player(name=name, name_key=player_key(name), created_at=record.started_at)
                session.add(player)
            challenge = self._challenge_for(session, record) if record.challenge_code is not None else None
            game = _game_row(record, player)
            game.challenge_id = challenge.id if challenge is not None else None
            session.add(game)
            session.flush()
            return game.id

    @staticmethod
    def _challenge_for(session: Session, record: GameRecord) -> Challenge:
        code = challenges.normalise_code(record.challenge_code)
        challenge = session.scalar(select(Challenge).where(Challenge.code == code))
        if challenge is None:
            raise StoreError(f"there is no challenge with the code {record.challenge_code!r}")
        if challenge.map_name != record.map_name:
            raise RecordError(f"challenge {code} is played on {challenge.map_name}, not {record.map_name}")
        return challenge

    def create_challenge(self, map_name: str, rounds: int, timer_seconds: int | None = None,
                         seed: int | None = None) -> challenges.ChallengeInfo:
        """A new challenge with a fresh short code (ValueError for impossible settings)."""
        settings = challenges.checked_settings(map_name, rounds, timer_seconds, seed)
        with database_errors("could not create the challenge", self.url):
            self.create_tables()
            self._check_file()
            for _ in range(MAX_SAVE_ATTEMPTS):
                row = Challenge(code=challenges.new_code(), created_at=datetime.now(timezone.utc), **settings)
                try:
                    with self._writes() as session, session.begin():
                        session.add(row)
                except IntegrityError:
                    continue  # the code was taken (1 in a billion): draw another
                self._check_file(saved=True)
                return challenges.info(row)
        raise StoreError("could not find a free challenge code; try again")

    # -- reading -----------------------------------------------------------------------------
    def maps(self) -> list[str]:
        """Names of the maps with at least one saved game, alphabetically."""
        with self._reading("cannot read the leaderboard") as session:
            return list(session.scalars(select(Game.map_name).distinct().order_by(Game.map_name)))

    def game_count(self, map_name: str | None = None) -> int:
        with self._reading("cannot read the leaderboard") as session:
            query = select(func.count(Game.id))
            if map_name is not None:
                query = query.where(Game.map_name == map_name)
            return int(session.scalar(query) or 0)

    def best_games(self, map_name: str, limit: int = 10) -> list[BestGame]:
        """The map's highest-scoring games (ties: the earlier game first)."""
        with self._reading("cannot read the leaderboard") as session:
            rows = session.execute(
                select(Player.name, Game.person_points, Game.rounds_played, Game.winner, Game.finished_at)
                .join(Player, Game.player_id == Player.id)
                .where(Game.map_name == map_name)
                .order_by(Game.person_points.desc(), Game.finished_at, Game.id)
                .limit(limit)
            ).all()
        return [BestGame(rank=i + 1, player=r[0], points=int(r[1]), rounds=int(r[2]), winner=r[3],
                         finished_at=r[4].strftime("%Y-%m-%d %H:%M")) for i, r in enumerate(rows)]

    def person_vs_models(self, map_name: str | None = None,
                         labels: Mapping[str, str] | None = None) -> list[ModelMatchup]:
        """Per model label: games and rounds won by people vs the model, both mean distances.

        A guess saved without a label (older games) is named by `labels` (model name -> label,
        e.g. from the bundles in play), else by the model's name."""
        labels = labels or {}
        with self._reading("cannot read the leaderboard") as session:
            rows = session.execute(_matchup_query(map_name)).all()
        per_model: dict[str, dict[str, Any]] = {}
        for game_id, who, label, p_km, m_km, p_pts, m_pts in rows:
            stats = per_model.setdefault(label or labels.get(who) or who, {"games": {}, "rounds": 0, "won": 0, "p_km": 0.0, "m_km": 0.0})
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

    def challenge(self, code: str) -> challenges.ChallengeInfo | None:
        """The challenge with this code (any case, spaces ignored), or None."""
        with self._reading("cannot read the challenge") as session:
            row = session.scalar(select(Challenge).where(Challenge.code == challenges.normalise_code(code)))
            return challenges.info(row) if row is not None else None

    def has_played_challenge(self, code: str, player_name: str) -> bool:
        """Whether this name (in any case) already finished the challenge: a new game is practice."""
        key = player_key(validate_player_name(player_name))
        with self._reading("cannot read the challenge") as session:
            return session.scalar(
                select(func.count(Game.id)).join(Player).join(Challenge)
                .where(Challenge.code == challenges.normalise_code(code), Player.name_key == key)) > 0

    def challenge_board(self, code: str) -> challenges.ChallengeBoard | None:
        """The challenge's ranking (each name's first finished game) and the models on the same rounds."""
        with self._reading("cannot read the challenge") as session:
            row = session.scalar(select(Challenge).where(Challenge.code == challenges.normalise_code(code)))
            if row is None:
                return None
            games = session.execute(
                select(Game.id, Player.id, Player.name, Game.person_points, Game.finished_at)
                .join(Player, Game.player_id == Player.id)
                .where(Game.challenge_id == row.id).order_by(Game.id)).all()
            guesses = session.execute(
                select(Round.game_id, Round.number, Guess.who, Guess.label, Guess.distance_km, Guess.points)
                .join(Guess, Guess.round_id == Round.id)
                .join(Game, Game.id == Round.game_id)
                .where(Game.challenge_id == row.id)).all()
            return challenges.board(challenges.info(row), games, guesses)

    def dispose(self) -> None:
        self.engine.dispose()


def _game_row(record: GameRecord, player: Player) -> Game:
    game = Game(player=player, map_name=record.map_name, map_size_km=float(record.map_size_km),
                rounds_played=len(record.rounds),
                person_points=sum(int(g.points) for r in record.rounds for g in r.guesses if g.who == PERSON),
                winner=record.winner, person_won=bool(record.person_won),
                started_at=record.started_at, finished_at=record.finished_at)
    for r in record.rounds:
        row = Round(number=r.number, location_id=str(r.location_id), image=str(r.image),
                    lat=float(r.lat), lon=float(r.lon))
        row.guesses = [Guess(who=g.who, label=g.label, lat=float(g.lat), lon=float(g.lon),
                             distance_km=float(g.distance_km), points=int(g.points)) for g in r.guesses]
        game.rounds.append(row)
    return game


def _matchup_query(map_name: str | None):
    """(game id, model, label, person km, model km, person points, model points) per round."""
    person = Guess.__table__.alias("person_guess")
    model = Guess.__table__.alias("model_guess")
    query = (
        select(Round.game_id, model.c.who, model.c.label, person.c.distance_km, model.c.distance_km,
               person.c.points, model.c.points)
        .join(person, (person.c.round_id == Round.id) & (person.c.who == PERSON))
        .join(model, (model.c.round_id == Round.id) & (model.c.who != PERSON))
    )
    if map_name is not None:
        query = query.join(Game, Game.id == Round.game_id).where(Game.map_name == map_name)
    return query

