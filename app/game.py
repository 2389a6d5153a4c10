"""Game logic without Streamlit: places, rounds, distances, points and the winner.

A game is a sequence of places (one per round). In each round the person and every
model opponent guess a position; distances are great circles (geopy) and points follow
the GeoGuessr formula with the map's size (geoai.scoring).

Nothing a map or a model does can block a game: a place whose photo cannot be read is
replaced by another drawn from the map (or dropped, leaving fewer rounds), and a model
that fails is out for the rest of the game; each leaves a short note for the player.
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from geopy.distance import great_circle

from db.models import PERSON
from db.records import GameRecord, GuessRecord, RoundRecord
from geoai.geodesy import validate_coordinates
from geoai.scoring import geoguessr_points

log = logging.getLogger("geoai.app")

DEFAULT_ROUNDS = 5
MAX_ROUNDS = 20
MAX_SKIPS = 50  # photos checked in vain before a game plays fewer rounds: bounded time on a broken map


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
    timed_out: bool = False  # the round timer ran out: 0 points wherever the pin was


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


@dataclass(frozen=True)
class Note:
    """Something the player should know about a round (a photo skipped, a model out):
    short, and never a server path (those go to the log)."""
    round_number: int
    text: str
    kind: str = "photo"  # "photo": a place was skipped; "model": a model left the game


def place_problem(place: Place) -> str | None:
    """Why a place cannot be played (a view that does not decode fully), or None."""
    from geoai.data import ImageError, check_image  # decoding needs Pillow only when checking

    if not place.image_paths:
        return "it has no photo"
    for path in place.image_paths:
        try:
            check_image(path, level="full")
        except ImageError as exc:
            return str(exc)
        except Exception as exc:  # any failure to decode is a bad photo, never a blocked game
            return f"{path}: {type(exc).__name__}: {exc}"
    return None


@dataclass
class Game:
    """A game in progress: `places[i]` is round i+1; results fill up as rounds are played.

    `pool`: the map's places, to draw a replacement for an unplayable one (with `rng`);
    `opponents`: the models still playing; `dropped`: those out, with why; `notes`: what
    the player is told about skipped rounds and dropped models.
    """
    player_name: str
    map_name: str
    map_size_km: float
    places: Sequence[Place]
    opponents: tuple[str, ...] = ()
    results: list[RoundResult] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # opponent name -> what people read
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    pool: Sequence[Place] = ()
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    skipped: list[Place] = field(default_factory=list)
    starting_opponents: tuple[str, ...] = field(init=False, default=())  # colours stay put when one leaves

    def __post_init__(self) -> None:
        if not self.places:
            raise GameError("a game needs at least one place")
        self.places = list(self.places)
        self.starting_opponents = tuple(self.opponents)
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

    def skip_unplayable(self, problem_of: Callable[[Place], str | None] = place_problem) -> list[Note]:
        """Replace (or drop) the current place while its photos cannot be read; the notes
        added. Each skipped place is logged with its reason. Ends the game early when no
        playable place is left after at least one round."""
        added: list[Note] = []
        while not self.is_over:
            place = self.current_place
            reason = problem_of(place)
            if reason is None:
                break
            index = len(self.results)
            log.warning("skipping place %s of map %s in round %d: %s", place.location_id, self.map_name,
                        index + 1, reason)
            self.skipped.append(place)
            replacement = self._draw_replacement()
            if replacement is not None:
                self.places[index] = replacement  # type: ignore[index]
                text = f"The photo of round {index + 1} could not be read, so another place was drawn."
            else:
                del self.places[index]  # type: ignore[attr-defined]
                text = (f"A photo could not be read and no other place was left, so this game has "
                        f"{self.rounds_total} round{'s' if self.rounds_total != 1 else ''}.")
            added.append(Note(index + 1, text))
        self.notes += added
        if not self.places:
            raise GameError("none of the photos drawn for this game can be read; try another map")
        return added

    def _draw_replacement(self) -> Place | None:
        """The first place of the pool not yet drawn, from a random start (no copy of the
        pool, whatever its size); None when none is left or too many were skipped."""
        if not self.pool or len(self.skipped) >= MAX_SKIPS:
            return None
        used = {p.location_id for p in (*self.places, *self.skipped)}
        start = self.rng.randrange(len(self.pool))
        for step in range(len(self.pool)):
            candidate = self.pool[(start + step) % len(self.pool)]
            if candidate.location_id not in used:
                return candidate
        return None

    def drop_opponent(self, name: str, reason: str) -> Note:
        """Take a model out for the rest of the game (its earlier guesses stay recorded)."""
        if name not in self.opponents:
            raise GameError(f"{name!r} is not playing")
        log.warning("model %s leaves the game on map %s in round %d: %s", name, self.map_name,
                    self.round_number, reason)
        self.opponents = tuple(o for o in self.opponents if o != name)
        self.dropped[name] = reason
        note = Note(self.round_number, f"{name} could not guess and is out of this game.", "model")
        self.notes.append(note)
        return note

    def notes_for(self, round_number: int, kind: str) -> list[str]:
        return [n.text for n in self.notes if n.round_number == round_number and n.kind == kind]

    def play_round(self, person_guess: tuple[float, float],
                   model_guesses: Mapping[str, tuple[float, float]], *,
                   person_timed_out: bool = False) -> RoundResult:
        """Score the current round's guesses, record them and move to the next round.

        person_timed_out: the round timer ran out; the person's guess (their pin, or where
        the map was centred) scores 0 points, the models are scored as usual."""
        place = self.current_place
        missing = set(self.opponents) - set(model_guesses)
        unknown = set(model_guesses) - set(self.opponents)
        if missing or unknown:
            raise GameError(f"model guesses must come from {sorted(self.opponents)}; "
                            f"missing {sorted(missing)}, unexpected {sorted(unknown)}")
        truth = (place.lat, place.lon)
        guesses = {PERSON: score_guess(PERSON, person_guess, truth, self.map_size_km)}
        if person_timed_out:
            guesses[PERSON] = replace(guesses[PERSON], points=0, timed_out=True)
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
                if who in totals:  # a model that left the game is no longer ranked
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
        return self.player_name if who == PERSON else self.labels.get(who, who)

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
