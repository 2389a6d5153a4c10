"""Player names: what a person may call themselves on the leaderboard.

A name is NFKC-normalised (so full-width, ligature and other compatibility spellings become
their plain form), then refused when it could impersonate someone or show as nothing:

- invisible characters: Unicode's default-ignorable code points (zero-width spaces and
  joiners, the Hangul fillers U+3164 and U+FFA0, variation selectors, bidi controls, ...)
  and every control, format or unassigned character;
- marks without a letter: a word may not start with a combining mark, and at most
  MAX_MARKS_IN_A_ROW marks may follow one letter (no marks-only or "zalgo" names);
- mixed scripts within one word (Unicode's resolved script set, UTS #39): "Ana" in Latin
  letters with a Cyrillic "а" is refused; Japanese (Han + kana) and Korean (Han + Hangul)
  words are fine, and different words may use different scripts.

Names differing only by case are one player: player_key() folds case, the database keeps
the key unique and shows the spelling the player first used.
"""
from __future__ import annotations

import unicodedata

import regex

MAX_NAME_LENGTH = 32
MAX_MARKS_IN_A_ROW = 3  # enough for Vietnamese or Devanagari stacks, too few to smear a line
# Besides letters and digits (any script), names may use these: enough for "Ana-Marija",
# "J. Smith" or "neo_42", too few to smuggle markup (<, >, &, quotes) into a page.
ALLOWED_PUNCTUATION = " ._-"

_INVISIBLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")
# Scripts checked by Script_Extensions; a letter of any other script falls back to the first
# word of its Unicode name ("OSAGE", "ADLAM", ...), which names its script too.
_SCRIPTS = ("Latin", "Greek", "Cyrillic", "Armenian", "Georgian", "Cherokee", "Coptic", "Glagolitic",
            "Hebrew", "Arabic", "Syriac", "Thaana", "Nko", "Devanagari", "Bengali", "Gurmukhi",
            "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada", "Malayalam", "Sinhala", "Thai", "Lao",
            "Tibetan", "Myanmar", "Khmer", "Mongolian", "Ethiopic", "Canadian_Aboriginal", "Tifinagh",
            "Han", "Hiragana", "Katakana", "Hangul", "Bopomofo", "Yi", "Javanese", "Runic", "Ogham")
_SCRIPT_PATTERNS = [(name, regex.compile(rf"\p{{scx={name}}}")) for name in _SCRIPTS]
# Writing systems that mix scripts in one word (UTS #39 augmentation).
_AUGMENT = {"Han": {"Japanese", "Korean", "Chinese"}, "Hiragana": {"Japanese"},
            "Katakana": {"Japanese"}, "Hangul": {"Korean"}, "Bopomofo": {"Chinese"}}


class InvalidPlayerName(ValueError):
    """A player name that cannot be stored; the message tells the person what to change."""


def validate_player_name(name: object) -> str:
    """Return the cleaned name (NFKC, outer whitespace stripped, runs of spaces collapsed).

    Raises InvalidPlayerName, with what to change, for anything the module docstring refuses,
    an empty name, one longer than MAX_NAME_LENGTH, or characters other than letters,
    digits, combining marks, spaces and . _ -
    """
    if not isinstance(name, str):
        raise InvalidPlayerName(f"a player name must be text, not {type(name).__name__}")
    normal = unicodedata.normalize("NFKC", name).strip()
    # Both spellings: NFKC maps some invisible characters onto others (U+3164 -> U+1160).
    hidden = sorted({ch for ch in name.strip() + normal
                     if _INVISIBLE.match(ch) or unicodedata.category(ch).startswith("C")})
    if hidden:
        raise InvalidPlayerName(
            f"a name may not contain control or invisible characters: {_describe_all(hidden)}")
    cleaned = " ".join(part for part in normal.split(" ") if part)
    if not cleaned:
        raise InvalidPlayerName("please enter a name (letters, digits, spaces and . _ -)")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidPlayerName(
            f"a name may have at most {MAX_NAME_LENGTH} characters; this one has {len(cleaned)}")
    bad = sorted({ch for ch in cleaned if not _allowed(ch)})
    if bad:
        raise InvalidPlayerName(
            f"a name may use letters, digits, spaces and . _ - only; not {_describe_all(bad)}")
    if not any(_is_base(ch) for ch in cleaned):
        raise InvalidPlayerName("a name needs at least one letter or digit")
    for word in _words(cleaned):
        _check_marks(word)
        _check_one_script(word)
    return cleaned


def player_key(name: str) -> str:
    """The identity of a validated name: case-folded, so "Ana" and "ANA" are one player."""
    return unicodedata.normalize("NFKC", name.casefold())


def _allowed(ch: str) -> bool:
    # L* letters, M* combining marks (needed by many scripts), Nd decimal digits.
    return _is_base(ch) or unicodedata.category(ch)[0] == "M" or ch in ALLOWED_PUNCTUATION


def _is_base(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] == "L" or category == "Nd"


def _words(name: str) -> list[str]:
    return [w for w in regex.split(r"[ ._-]+", name) if w]


def _check_marks(word: str) -> None:
    run = 0
    for i, ch in enumerate(word):
        if unicodedata.category(ch)[0] != "M":
            run = 0
            continue
        if i == 0:
            raise InvalidPlayerName(
                f"a word may not start with a combining mark ({_describe(ch)}); put it after a letter")
        run += 1
        if run > MAX_MARKS_IN_A_ROW:
            raise InvalidPlayerName(
                f"at most {MAX_MARKS_IN_A_ROW} combining marks may follow one letter in a name")


def _check_one_script(word: str) -> None:
    """UTS #39 resolved script set: the intersection of every letter's (augmented) scripts."""
    common: set[str] | None = None
    for ch in word:
        if not unicodedata.category(ch).startswith("L"):
            continue  # digits and marks belong to every script (Common, Inherited)
        scripts = _scripts(ch)
        common = scripts if common is None else common & scripts
        if not common:
            raise InvalidPlayerName(
                f"the word {word!r} mixes writing systems (letters that look alike from "
                f"different alphabets, e.g. Latin and Cyrillic); write each word in one alphabet")


def _scripts(ch: str) -> set[str]:
    found = {name for name, pattern in _SCRIPT_PATTERNS if pattern.match(ch)}
    if not found:
        found = {unicodedata.name(ch, "UNKNOWN").split(" ")[0]}
    for script in list(found):
        found |= _AUGMENT.get(script, set())
    return found


def _describe_all(chars: list[str]) -> str:
    return ", ".join(_describe(ch) for ch in chars[:5])


def _describe(ch: str) -> str:
    if ch.isprintable() and not _INVISIBLE.match(ch) and unicodedata.category(ch)[0] != "M":
        return repr(ch)
    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed character').lower()})"
