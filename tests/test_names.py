"""Player names: every class of name that could impersonate someone or show as nothing is
refused, generated from the Unicode characters that make it; real names in many scripts pass;
names differing only by case are one player."""
from __future__ import annotations

import unicodedata

import pytest

from db import InvalidPlayerName, player_key, validate_player_name

BASES = ("Ana", "Peter Pan", "neo_42")


def _insertions(chars, bases=BASES):
    """Each character at the start, in the middle and at the end of each base name, and alone."""
    cases = []
    for ch in chars:
        cases.append(ch)
        for base in bases:
            cut = len(base) // 2
            cases += [ch + base, base[:cut] + ch + base[cut:], base + ch]
    return cases


HANGUL_FILLERS = ["\u3164", "\uffa0", "\u115f", "\u1160"]
VARIATION_SELECTORS = [chr(c) for c in range(0xFE00, 0xFE10)] + [chr(c) for c in range(0xE0100, 0xE01F0, 17)]
OTHER_INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u180e", "\u00ad", "\u034f",
                   "\u202e", "\u2066", "\u2069", "\u061c", "\u17b4", "\U0001d173", "\U000e0020"]


@pytest.mark.parametrize("name", _insertions(HANGUL_FILLERS), ids=ascii)
def test_hangul_fillers_are_refused(name):
    with pytest.raises(InvalidPlayerName, match="invisible"):
        validate_player_name(name)


@pytest.mark.parametrize("name", _insertions(VARIATION_SELECTORS, bases=("Ana",)), ids=ascii)
def test_variation_selectors_are_refused(name):
    with pytest.raises(InvalidPlayerName, match="invisible"):
        validate_player_name(name)


@pytest.mark.parametrize("name", _insertions(OTHER_INVISIBLE, bases=("Ana",)), ids=ascii)
def test_zero_width_and_direction_controls_are_refused(name):
    with pytest.raises(InvalidPlayerName, match="invisible"):
        validate_player_name(name)


# Combining marks that NFKC does not fold into a letter before them.
MARKS = [chr(c) for c in range(0x0363, 0x0370)] + ["\u20dd", "\u0489", "\u0bcd", "\u094d"]


@pytest.mark.parametrize("name", [m * n for m in MARKS for n in (1, 3)] + [" ".join(MARKS[:4])], ids=ascii)
def test_names_of_marks_only_are_refused(name):
    with pytest.raises(InvalidPlayerName, match="at least one letter"):
        validate_player_name(name)


@pytest.mark.parametrize("name", [f"Ana {m}x" for m in MARKS] + [f"{m}Ana" for m in MARKS], ids=ascii)
def test_a_word_starting_with_a_mark_is_refused(name):
    with pytest.raises(InvalidPlayerName, match="start with a combining mark"):
        validate_player_name(name)


@pytest.mark.parametrize("marks", [MARKS[i:i + 4] for i in range(0, len(MARKS) - 4, 3)], ids=ascii)
def test_stacks_of_marks_are_refused(marks):
    assert validate_player_name("Ana" + "".join(marks[:3]))  # three may follow a letter
    with pytest.raises(InvalidPlayerName, match="at most 3 combining marks"):
        validate_player_name("Ana" + "".join(marks))


# Letters of other alphabets that look like Latin ones.
HOMOGLYPHS = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441", "x": "\u0445",
              "y": "\u0443", "i": "\u0456", "A": "\u0391", "B": "\u0392", "E": "\u0395", "H": "\u041d",
              "K": "\u039a", "M": "\u041c", "O": "\u039f", "P": "\u03a1", "T": "\u0422", "X": "\u03a7"}
LATIN_NAMES = ("Ana", "Peter", "Oscar", "Maxim", "Kate", "Tom", "Hope", "Bex")


def _look_alikes():
    cases = []
    for name in LATIN_NAMES:
        for i, ch in enumerate(name):
            if ch in HOMOGLYPHS:
                cases.append(name[:i] + HOMOGLYPHS[ch] + name[i + 1:])
    return cases


@pytest.mark.parametrize("name", _look_alikes(), ids=ascii)
def test_latin_words_with_a_look_alike_letter_are_refused(name):
    assert any(unicodedata.name(ch).startswith(("CYRILLIC", "GREEK")) for ch in name)
    with pytest.raises(InvalidPlayerName, match="mixes writing systems"):
        validate_player_name(name)
    with pytest.raises(InvalidPlayerName, match="mixes writing systems"):
        validate_player_name(f"Dr {name}")


@pytest.mark.parametrize("raw, clean", [
    ("  Ana  Marija ", "Ana Marija"), ("Željko", "Željko"), ("李小龙", "李小龙"), ("neo_42.x-y", "neo_42.x-y"),
    ("Анна", "Анна"), ("Όμηρος", "Όμηρος"), ("山田たろう", "山田たろう"), ("김민준", "김민준"),
    ("Ana Анна", "Ana Анна"), ("Nguyễn", "Nguyễn"), ("देवनागरी", "देवनागरी"), ("Ｎｅｏ", "Neo"),
    ("ǅemal", "Džemal"), ("O\u0301scar", "Óscar"), ("x" * 32, "x" * 32)])
def test_real_names_in_many_scripts_pass(raw, clean):
    assert validate_player_name(raw) == clean


@pytest.mark.parametrize("raw, message", [
    ("", "enter a name"), ("   ", "enter a name"), ("x" * 33, "at most 32"), ("<b>hi</b>", "'<'"),
    ("a\tb", "control"), ("Robert'); DROP", "letters, digits"), (None, "must be text"), ("Ana\x00", "control"),
    ("...", "at least one letter")])
def test_other_bad_names(raw, message):
    with pytest.raises(InvalidPlayerName, match=message):
        validate_player_name(raw)


CASE_NAMES = ("Ana Marija", "Željko", "Straße", "ΣΊΣΥΦΟΣ", "Džemal", "Ǳ", "Ｎｅｏ", "ﬁona")


def _case_variants(name: str) -> list[str]:
    return sorted({name.upper(), name.lower(), name.swapcase(), name.title(), name.casefold()})


@pytest.mark.parametrize("name", CASE_NAMES, ids=ascii)
def test_names_differing_only_by_case_are_one_player(name):
    keys = {player_key(validate_player_name(v)) for v in _case_variants(name)}
    assert keys == {player_key(validate_player_name(name))}


def test_different_names_are_different_players():
    keys = [player_key(validate_player_name(n)) for n in CASE_NAMES + ("Ana", "Anna", "Ana Maria")]
    assert len(set(keys)) == len(keys)
