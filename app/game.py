"""Game logic without Streamlit: places, rounds, distances, points and the winner.

A game is a fixed sequence of places (one per round). In each round the person and every
model opponent guess a position; distances are great circles (geopy) and points follow
the GeoGuessr formula with the map's size (geoai.scoring).
"""
from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from geopy.distance import great_circle

from db.models import PERSON
from db.records import GameRecord, GuessRecord, RoundRecord
from geoai.geodesy import validate_coordinates
from geoai.scoring import geoguessr_points

DEFAULT_ROUNDS = 5
MAX_ROUNDS = 20


class GameError(ValueError):
    """A move the game does not allow (guessing after the end, an invalid position...)."""


@dataclass(frozen=True)
class Place:
    """One round's location: its true position and every view (image file) of it."""
    location_id: str
    lat: float
    lon: float
    image_paths: tuple[str, ...]

    @property
    def image_name(self) -> str:
        """The first view's file name, a stable id of the place in saved games."""
        return self.image_paths[0].replace("\\", "/").rsplit("/", 1)[-1] if self.image_paths else ""


@dataclass(frozen=True)
class Guess:
    who: str  # PERSON or a model's name
    lat: float
    lon: float
    distance_km: float
    points: int


@dataclass(frozen=True)
class RoundResult:
    number: int  # 1-based
    place: Place
    guesses: dict[str, Guess]  # who -> guess; the person's first

    def ranking(self) -> list[Guess]:
        """Guesses from closest to farthest."""
        return sorted(self.guesses.values(), key=lambda g: g.distance_km)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lat, lon) points in km (geopy, mean Earth radius)."""
    return float(great_circle(a, b).km)


def score_guess(who: str, guess: tuple[float, float], truth: tuple[float, float],
                map_size_km: float) -> Guess:
    """A Guess with its distance to the truth and its points on a map of size `map_size_km`."""
    lat, lon = _checked_position(guess, who)
    d = distance_km((lat, lon), truth)
    return Guess(who=who, lat=lat, lon=lon, distance_km=d, points=int(geoguessr_points(d, map_size_km)))


def _checked_position(position: object, who: str) -> tuple[float, float]:
    try:
        lat, lon = (float(v) for v in position)  # type: ignore[union-attr]
        validate_coordinates(lat, lon)
    except (TypeError, ValueError) as exc:
        raise GameError(f"{who}'s guess {position!r} is not a valid (lat, lon) position: {exc}") from exc
    return lat, lon


@dataclass
class Game:
    """A game in progress: `places[i]` is round i+1; results fill up as rounds are played."""
    player_name: str
    map_name: str
    map_size_km: float
    places: Sequence[Place]
    opponents: tuple[str, ...] = ()
    results: list[RoundResult] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def __post_init__(self) -> None:
        if not self.places:
            raise GameError("a game needs at least one place")
        if PERSON in self.opponents:
            raise GameError(f"an opponent may not be called {PERSON!r}")
        if not self.map_size_km > 0:
            raise GameError(f"map size must be positive, got {self.map_size_km!r}")

    @property
    def rounds_total(self) -> int:
        return len(self.places)

    @property
    def round_number(self) -> int:
        """The round being played (1-based); rounds_total + 1 once the game is over."""
        return len(self.results) + 1

    @property
    def is_over(self) -> bool:
        return len(self.results) >= self.rounds_total

    @property
    def current_place(self) -> Place:
        if self.is_over:
            raise GameError("the game is over: there is no current round")
        return self.places[len(self.results)]

    def play_round(self, person_guess: tuple[float, float],
                   model_guesses: Mapping[str, tuple[float, float]]) -> RoundResult:
        """Score the current round's guesses, record them and move to the next round."""
        place = self.current_place
        missing = set(self.opponents) - set(model_guesses)
        unknown = set(model_guesses) - set(self.opponents)
        if missing or unknown:
            raise GameError(f"model guesses must come from {sorted(self.opponents)}; "
                            f"missing {sorted(missing)}, unexpected {sorted(unknown)}")
        truth = (place.lat, place.lon)
        guesses = {PERSON: score_guess(PERSON, person_guess, truth, self.map_size_km)}
        for name in self.opponents:
            guesses[name] = score_guess(name, model_guesses[name], truth, self.map_size_km)
        result = RoundResult(number=self.round_number, place=place, guesses=guesses)
        self.results.append(result)
        return result

    def totals(self) -> dict[str, int]:
        """Points so far per participant (PERSON first, then the opponents in order)."""
        totals = {who: 0 for who in (PERSON, *self.opponents)}
        for result in self.results:
            for who, guess in result.guesses.items():
                totals[who] += guess.points
        return totals

    def winners(self) -> list[str]:
        """Who has the most points (several on a tie); empty before the first round."""
        if not self.results:
            return []
        totals = self.totals()
        best = max(totals.values())
        return [who for who, points in totals.items() if points == best]

    def display_name(self, who: str) -> str:
        return self.player_name if who == PERSON else who

    def winner_text(self) -> str:
        names = [self.display_name(w) for w in self.winners()]
        if not names:
            return ""
        return names[0] if len(names) == 1 else "tie: " + ", ".join(names)

    def to_record(self) -> GameRecord:
        """The finished game as a database record."""
        if not self.is_over:
            raise GameError(f"only a finished game can be saved ({len(self.results)}/{self.rounds_total} rounds played)")
        rounds = tuple(
            RoundRecord(number=r.number, location_id=r.place.location_id, image=r.place.image_name,
                        lat=r.place.lat, lon=r.place.lon,
                        guesses=tuple(GuessRecord(who=g.who, lat=g.lat, lon=g.lon,
                                                  distance_km=g.distance_km, points=g.points)
                                      for g in r.guesses.values()))
            for r in self.results)
        return GameRecord(player_name=self.player_name, map_name=self.map_name,
                          map_size_km=self.map_size_km, rounds=rounds, winner=self.winner_text(),
                          person_won=self.winners() == [PERSON], started_at=self.started_at,
                          finished_at=datetime.now(timezone.utc))


def choose_places(places: Sequence[Place], rounds: int = DEFAULT_ROUNDS,
                  rng: random.Random | None = None) -> list[Place]:
    """`rounds` distinct places drawn at random (all of them, shuffled, if there are fewer)."""
    if not 1 <= rounds <= MAX_ROUNDS:
        raise GameError(f"a game has 1 to {MAX_ROUNDS} rounds, not {rounds}")
    if not places:
        raise GameError("this map has no places to play")
    rng = rng or random.Random()
    return rng.sample(list(places), min(rounds, len(places)))
