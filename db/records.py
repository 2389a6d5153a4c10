"""Plain records of a finished game, the shape `GameStore.save_game` accepts.

They carry no SQLAlchemy state, so the game logic can build them without touching the
database, and a test can build them by hand.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass(frozen=True)
class GuessRecord:
    who: str  # db.models.PERSON or a model's name
    lat: float
    lon: float
    distance_km: float
    points: int
    label: str | None = None  # a model's name for people ("MobileNetV2 · CNN"); None: `who`


@dataclass(frozen=True)
class RoundRecord:
    number: int
    location_id: str
    image: str
    lat: float
    lon: float
    guesses: tuple[GuessRecord, ...]


@dataclass(frozen=True)
class GameRecord:
    player_name: str
    map_name: str
    map_size_km: float
    rounds: tuple[RoundRecord, ...]
    winner: str
    person_won: bool
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    finished_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    challenge_code: str | None = None  # the challenge this game was played from, if any
