"""Player names: what a person may call themselves on the leaderboard."""
from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 32
# Besides letters and digits (any script), names may use these: enough for "Ana-Marija",
# "J. Smith" or "neo_42", too few to smuggle markup (<, >, &, quotes) into a page.
ALLOWED_PUNCTUATION = " ._-"


class InvalidPlayerName(ValueError):
    """A player name that cannot be stored; the message tells the person what to change."""


def validate_player_name(name: object) -> str:
    """Return the cleaned name (NFC, outer whitespace stripped, runs of spaces collapsed).

    Raises InvalidPlayerName when it is empty, longer than MAX_NAME_LENGTH characters,
    holds control/invisible characters or anything other than letters, digits, spaces and . _ -
    """
    if not isinstance(name, str):
        raise InvalidPlayerName(f"a player name must be text, not {type(name).__name__}")
    stripped = unicodedata.normalize("NFC", name).strip()
    controls = sorted({ch for ch in stripped if unicodedata.category(ch).startswith("C")})
    if controls:
        shown = ", ".join(_describe(ch) for ch in controls[:5])
        raise InvalidPlayerName(f"a name may not contain control or invisible characters: {shown}")
    cleaned = " ".join(part for part in stripped.split(" ") if part)
    if not cleaned:
        raise InvalidPlayerName("please enter a name (letters, digits, spaces and . _ -)")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidPlayerName(
            f"a name may have at most {MAX_NAME_LENGTH} characters; this one has {len(cleaned)}")
    bad = sorted({ch for ch in cleaned if not _allowed(ch)})
    if bad:
        shown = ", ".join(_describe(ch) for ch in bad[:5])
        raise InvalidPlayerName(
            f"a name may use letters, digits, spaces and . _ - only; not {shown}")
    return cleaned


def _allowed(ch: str) -> bool:
    category = unicodedata.category(ch)
    # L* letters, M* combining marks (needed by many scripts), Nd decimal digits.
    return category[0] in ("L", "M") or category == "Nd" or ch in ALLOWED_PUNCTUATION


def _describe(ch: str) -> str:
    if ch.isprintable():
        return repr(ch)
    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'control character').lower()})"
