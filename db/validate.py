"""Checks a finished game against the tables before any SQL runs.

Every backend then refuses the same things with the same message: PostgreSQL would raise
an uncaught DataError for text longer than its column or holding a NUL byte, and SQLite
would store either silently.
"""
from __future__ import annotations

import math

from sqlalchemy.orm import InstrumentedAttribute

from db.connect import StoreError
from db.models import CHALLENGE_CODE_LENGTH, Game, Guess, Round
from db.records import GameRecord


class RecordError(StoreError):
    """A game that cannot be stored as it is (too long, a NUL byte, a number out of range)."""


def check_record(record: GameRecord) -> None:
    """RecordError naming the first field the database could not hold."""
    check_text(record.map_name, Game.map_name, "the map name")
    check_text(record.winner, Game.winner, "the winner")
    check_number(record.map_size_km, "the map size", low=0.0)
    if record.challenge_code is not None:
        check_text(record.challenge_code, None, "the challenge code", limit=CHALLENGE_CODE_LENGTH)
    for r in record.rounds:
        where = f"round {r.number}"
        check_text(r.location_id, Round.location_id, f"{where}'s place id")
        check_text(r.image, Round.image, f"{where}'s photo name")
        check_number(r.lat, f"{where}'s latitude", -90.0, 90.0)
        check_number(r.lon, f"{where}'s longitude", -180.0, 180.0)
        for g in r.guesses:
            check_text(g.who, Guess.who, f"a player's name in {where}")
            if g.label is not None:
                check_text(g.label, Guess.label, f"a model's label in {where}")
            check_number(g.lat, f"{g.who}'s latitude in {where}", -90.0, 90.0)
            check_number(g.lon, f"{g.who}'s longitude in {where}", -180.0, 180.0)
            check_number(g.distance_km, f"{g.who}'s distance in {where}", low=0.0)
            check_number(g.points, f"{g.who}'s points in {where}", 0, 5000)


def check_text(value: object, column: InstrumentedAttribute | None, what: str, limit: int | None = None) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{what} must be text, not {type(value).__name__}")
    limit = limit or column.property.columns[0].type.length
    if len(value) > limit:
        raise RecordError(f"{what} is {len(value):,} characters long; the database keeps at most {limit:,}")
    if "\x00" in value:
        raise RecordError(f"{what} contains a NUL character, which the database cannot store")
    return value


def check_number(value: object, what: str, low: float | None = None, high: float | None = None) -> None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RecordError(f"{what} must be a number, not {value!r}") from None
    if not math.isfinite(number) or (low is not None and number < low) or (high is not None and number > high):
        bounds = f" (allowed {low} to {high})" if high is not None else f" (at least {low})" if low is not None else ""
        raise RecordError(f"{what} is {value!r}, which the database does not accept{bounds}")
