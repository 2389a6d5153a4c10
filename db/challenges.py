"""Class challenges: one code, the same places in the same order for everyone.

A teacher creates a challenge (map, rounds, optional timer, seed) and shares its code or
link (``?challenge=CODE``). The game draws the places with
``app.game.choose_places(places, rounds, random.Random(seed))``, so every player gets the
same rounds. A name's first finished game counts on the challenge's board; later games of
the same name (in any case) are practice. The models play the same rounds, so the board
shows them beside the people.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from db.models import CHALLENGE_CODE_LENGTH, PERSON, Challenge

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I: codes are read aloud
CODE_LENGTH = 6  # 32**6 ~ 1e9 codes
MAX_ROUNDS = 20  # app.game.MAX_ROUNDS (a test keeps them equal)
MIN_TIMER_SECONDS, MAX_TIMER_SECONDS = 5, 3600
MAX_SEED = 2**63 - 1
QUERY_PARAMETER = "challenge"
DEFAULT_BASE_URL = "http://localhost:8501/"
_CODE_PATTERN = re.compile(rf"[{CODE_ALPHABET}]{{1,{CHALLENGE_CODE_LENGTH}}}")


@dataclass(frozen=True)
class ChallengeInfo:
    code: str
    map_name: str
    rounds: int
    timer_seconds: int | None
    seed: int
    created_at: datetime

    def link(self, base_url: str = DEFAULT_BASE_URL) -> str:
        """The address that opens the game on this challenge."""
        return challenge_link(self.code, base_url)


@dataclass(frozen=True)
class Entry:
    """One line of a challenge board: a person's counted game, or a model on the same rounds."""
    rank: int | None  # None for models: they are shown, not ranked
    name: str
    is_model: bool
    points: int
    rounds: int
    mean_km: float
    finished_at: datetime | None = None


@dataclass(frozen=True)
class ChallengeBoard:
    challenge: ChallengeInfo
    people: list[Entry]  # each name's first finished game, best first
    models: list[Entry]  # each model on the challenge's rounds
    practice_games: int  # later games of names already on the board

    def ranking(self) -> list[Entry]:
        """People and models in one list by points (models unranked, placed where they would be)."""
        return sorted(self.people + self.models, key=lambda e: (-e.points, e.is_model, e.rank or 0))


def challenge_link(code: str, base_url: str = DEFAULT_BASE_URL) -> str:
    base = base_url.split("?", 1)[0]
    return f"{base}?{urlencode({QUERY_PARAMETER: code})}"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(code: object) -> str:
    """The code as stored (upper case, no spaces or dashes); "" when it cannot be a code."""
    if not isinstance(code, str):
        return ""
    cleaned = re.sub(r"[\s-]", "", code).upper()
    return cleaned if _CODE_PATTERN.fullmatch(cleaned) else ""


def checked_settings(map_name: str, rounds: int, timer_seconds: int | None, seed: int | None) -> dict:
    """The challenge's columns; ValueError naming what is impossible."""
    if not isinstance(map_name, str) or not map_name.strip() or len(map_name) > 200 or "\x00" in map_name:
        raise ValueError("a challenge needs a map name (at most 200 characters)")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"a challenge has 1 to {MAX_ROUNDS} rounds, not {rounds!r}")
    if timer_seconds is not None and (isinstance(timer_seconds, bool) or not isinstance(timer_seconds, int)
                                      or not MIN_TIMER_SECONDS <= timer_seconds <= MAX_TIMER_SECONDS):
        raise ValueError(f"the timer is {MIN_TIMER_SECONDS} to {MAX_TIMER_SECONDS} seconds per round "
                         f"(or none), not {timer_seconds!r}")
    if seed is None:
        seed = secrets.randbelow(2**31)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"the seed is a whole number from 0 to {MAX_SEED}, not {seed!r}")
    return {"map_name": map_name.strip(), "rounds": rounds, "timer_seconds": timer_seconds, "seed": seed}


def info(row: Challenge) -> ChallengeInfo:
    return ChallengeInfo(code=row.code, map_name=row.map_name, rounds=row.rounds,
                         timer_seconds=row.timer_seconds, seed=int(row.seed), created_at=row.created_at)


def board(challenge: ChallengeInfo, games: Sequence[tuple], guesses: Sequence[tuple]) -> ChallengeBoard:
    """Build the board from (game id, player id, name, points, finished) rows in save order
    and (game id, round number, who, label, km, points) rows."""
    counted: dict[int, tuple] = {}
    for game in games:  # in save order: a player's first game counts, later ones are practice
        counted.setdefault(game[1], game)
    person_km: dict[int, list[float]] = {}
    model_rounds: dict[str, dict[int, tuple[float, int]]] = {}  # model -> round -> (km, points)
    counted_ids = {g[0] for g in counted.values()}
    for game_id, number, who, label, km, points in sorted(guesses, key=lambda g: (g[0], g[1])):
        if game_id not in counted_ids:
            continue
        if who == PERSON:
            person_km.setdefault(game_id, []).append(km)
        else:  # the same rounds for every game: keep the model's first answer per round
            model_rounds.setdefault(label or who, {}).setdefault(number, (km, points))
    people = sorted(counted.values(), key=lambda g: (-g[3], g[4], g[0]))
    return ChallengeBoard(
        challenge=challenge,
        people=[Entry(rank=i + 1, name=g[2], is_model=False, points=int(g[3]), rounds=len(person_km.get(g[0], [])),
                      mean_km=_mean(person_km.get(g[0], [])), finished_at=g[4]) for i, g in enumerate(people)],
        models=[Entry(rank=None, name=model, is_model=True, points=sum(p for _, p in r.values()), rounds=len(r),
                      mean_km=_mean([km for km, _ in r.values()])) for model, r in sorted(model_rounds.items())],
        practice_games=len(games) - len(counted))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
