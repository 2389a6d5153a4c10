"""Saving a finished game to the leaderboard, so that no game is lost without the player knowing.

The game is saved once, when its final page first shows. If the database fails, the page
says why (the StoreError's one line) and offers "Try saving again" for as long as the game is
on screen; a game the database can never hold (RecordError) says so instead. The saved record
names each model by the label people read and carries the challenge it was played from.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import streamlit as st

from app import page_challenge, resources
from app.game import GameError
from app.messages import without_paths
from app.session import PlaySession
from db.models import PERSON
from db.names import InvalidPlayerName
from db.records import GameRecord
from db.store import StoreError
from db.validate import RecordError

log = logging.getLogger("geoai.app")


def render_save(play: PlaySession) -> None:
    """Save the finished game if not yet tried, then show whether it is on the leaderboard."""
    if play.saved_game_id is None and play.save_error is None:
        attempt_save(play)
    if play.saved_game_id is not None:
        st.caption(f"Saved to the leaderboard (game #{play.saved_game_id}).")
        page_challenge.saved_note(play)
        return
    st.error(f"Your game is NOT saved yet: {play.save_error}")
    if play.save_error and play.save_error.startswith(RETRY_NOT_POSSIBLE):
        return
    if st.button("Try saving again", key=f"retry-save-{play.game_serial}"):
        attempt_save(play)
        st.rerun()


RETRY_NOT_POSSIBLE = "this game cannot be stored"


def attempt_save(play: PlaySession) -> None:
    """One try: play.saved_game_id on success, play.save_error (one line) on failure."""
    challenge = page_challenge.challenge_of(play)
    try:
        store = resources.store()
        if challenge is not None:
            page_challenge.note_counted(play, not store.has_played_challenge(challenge.code, play.game.player_name))
        play.save(lambda record: store.save_game(complete_record(record, challenge.code if challenge else None)))
        play.save_error = None
    except (RecordError, InvalidPlayerName) as exc:
        log.error("game cannot be saved: %s", exc)
        play.save_error = f"{RETRY_NOT_POSSIBLE}: {without_paths(exc)}"
    except (StoreError, GameError) as exc:
        log.error("could not save game: %s", exc)
        play.save_error = f"{without_paths(exc)}. Your scores are below; try again when the database is back."


def complete_record(record: GameRecord, challenge_code: str | None) -> GameRecord:
    """The game's record with each model's readable label and its challenge code."""
    labels = model_labels()
    rounds = tuple(replace(r, guesses=tuple(g if g.who == PERSON or g.label else replace(g, label=labels.get(g.who))
                                            for g in r.guesses))
                   for r in record.rounds)
    return replace(record, rounds=rounds, challenge_code=challenge_code)


def model_labels() -> dict[str, str]:
    """Bundle name -> what people read ("MobileNetV2 · CNN"), for the bundles in the models folder."""
    try:
        infos, _ = resources.all_opponents()
    except Exception as exc:  # noqa: BLE001 - labels are cosmetic: the game is saved without them
        log.warning("model labels unavailable: %s", exc)
        return {}
    return {i.name: i.label for i in infos}
