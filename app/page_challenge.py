"""Class challenges in the game: the Challenge page (create one, see its board) and the parts
of the Play page that a challenge's link (``?challenge=CODE``) changes.

Everyone who opens the link plays the same places in the same order: the places are drawn
with ``random.Random(seed)`` from the map's held-out places, exactly as a normal game draws
them. A name's first finished game counts on the board, later ones are practice (db.store).
With a timer, the map counts each round down; at 0 the round scores 0 for the person (the
models still play), as in any timed game.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
import streamlit as st

from app import formatting, resources
from app.game import DEFAULT_ROUNDS, MAX_ROUNDS
from app.messages import without_paths
from app.session import PlaySession
from app.tables import show_table
from db.challenges import DEFAULT_BASE_URL, MAX_SEED, MAX_TIMER_SECONDS, QUERY_PARAMETER, ChallengeInfo, challenge_link
from db.names import MAX_NAME_LENGTH
from db.store import StoreError

PAGE_PATH = "challenge"  # the page's url_path in app/main.py
GAMES_KEY = "challenge_games"  # session state: game serial -> {"challenge": ChallengeInfo, "counted": bool | None}
CREATED_KEY = "challenge_created"


# -- the Play page ----------------------------------------------------------------------------
def challenge_from_query() -> ChallengeInfo | None:
    """The challenge named by the page's ?challenge=CODE, or None (a bad code is explained)."""
    raw = st.query_params.get(QUERY_PARAMETER)
    if not raw:
        return None
    try:
        found = resources.store().challenge(raw)
    except StoreError as exc:
        st.error(f"The challenge {raw!r} cannot be opened: {without_paths(exc)}")
        return None
    if found is None:
        st.warning(f"There is no challenge with the code {raw[:20]!r}: check the link. "
                   "You can play a normal game meanwhile.")
    return found


def describe(challenge: ChallengeInfo) -> str:
    timer = f", {challenge.timer_seconds} s per round" if challenge.timer_seconds else ""
    return f"{challenge.rounds} rounds on {challenge.map_name}{timer}"


def render_challenge_setup(play: PlaySession, challenge: ChallengeInfo, start: Callable) -> None:
    """The Play page's setup for a challenge: only a name; map, rounds and places are fixed."""
    st.title(f"Challenge {challenge.code}")
    st.write(f"{describe(challenge)}. Everyone with this link plays the same places in the same order.")
    with st.form("challenge-setup"):
        name = st.text_input("Your name", max_chars=MAX_NAME_LENGTH, key="player_name")
        started = st.form_submit_button("Start the challenge", type="primary")
    st.caption("Your first finished game counts on the challenge's board; later games are practice.")
    if st.button("Play a normal game instead", key="leave-challenge"):
        del st.query_params[QUERY_PARAMETER]
        st.rerun()
    if started:
        start(play, name, challenge.map_name, challenge.rounds, challenge=challenge)


def places_rng(challenge: ChallengeInfo | None) -> random.Random | None:
    """The generator that draws a game's places: the challenge's seed, or None (any places)."""
    return random.Random(challenge.seed) if challenge is not None else None


def remember(play: PlaySession, challenge: ChallengeInfo | None) -> None:
    """Mark the game just started as played from `challenge` (or from none)."""
    play.challenge = challenge  # kept with the game: a reload resumes it as a challenge game
    games = st.session_state.setdefault(GAMES_KEY, {})
    if challenge is None:
        games.pop(play.game_serial, None)
    else:
        games[play.game_serial] = {"challenge": challenge, "counted": None}


def challenge_of(play: PlaySession) -> ChallengeInfo | None:
    return play.challenge if play.game is not None else None


def note_counted(play: PlaySession, counted: bool) -> None:
    games = st.session_state.setdefault(GAMES_KEY, {})
    games.setdefault(play.game_serial, {"challenge": play.challenge, "counted": None})["counted"] = counted


def saved_note(play: PlaySession) -> None:
    """After a challenge game is saved: whether it counts, and the board."""
    challenge = challenge_of(play)
    if challenge is None:
        return
    entry = st.session_state.get(GAMES_KEY, {}).get(play.game_serial, {})
    if entry.get("counted") is False:
        st.info(f"You had already finished challenge {challenge.code} under this name: this game was practice "
                "and the board keeps your first one.")
    else:
        st.success(f"Your game counts on challenge {challenge.code}'s board.")
    render_board(challenge.code)


# -- the Challenge page -------------------------------------------------------------------------
def render() -> None:
    st.title("Class challenges")
    st.write("Create a challenge, share its link, and everyone plays the same places in the same order. "
             "The board ranks each name's first game and shows the models on the same rounds.")
    create_tab, board_tab = st.tabs(["Create a challenge", "A challenge's board"])
    with create_tab:
        render_create()
    with board_tab:
        code = st.text_input("Challenge code", value=st.session_state.get(CREATED_KEY, ""), max_chars=12,
                             key="board_code")
        if code.strip():
            render_board(code)


def render_create() -> None:
    names = resources.map_names()
    if not names:
        st.error("No maps found: a challenge needs a map. Point GEOAI_DATA_DIR at the datasets and restart.")
        return
    with st.form("challenge-create"):
        default = names.index("croatia-streetview") if "croatia-streetview" in names else 0
        map_name = st.selectbox("Map", names, index=default, key="challenge_map")
        rounds = st.number_input("Rounds", min_value=1, max_value=MAX_ROUNDS, value=DEFAULT_ROUNDS,
                                 key="challenge_rounds")
        timer = st.number_input("Seconds per round (0: no timer)", min_value=0, max_value=MAX_TIMER_SECONDS,
                                value=0, key="challenge_timer")
        seed = st.text_input("Seed (optional; the same seed on the same map gives the same places)",
                             key="challenge_seed")
        created = st.form_submit_button("Create challenge", type="primary")
    if created:
        try:
            made = resources.store().create_challenge(map_name, int(rounds), int(timer) or None, parse_seed(seed))
        except (ValueError, StoreError) as exc:
            st.error(f"The challenge was not created: {without_paths(exc)}")
            return
        st.session_state[CREATED_KEY] = made.code
    code = st.session_state.get(CREATED_KEY)
    if code:
        st.success(f"Challenge **{code}** is ready. Share this link (or the code):")
        st.code(challenge_link(code, app_base_url()), language=None)


def parse_seed(text: str) -> int | None:
    """The seed typed in the form: blank for a random one; ValueError for anything else than 0..MAX_SEED."""
    text = (text or "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) > MAX_SEED:
        raise ValueError(f"the seed is a whole number from 0 to {MAX_SEED}, not {text[:30]!r}")
    return int(text)


def app_base_url() -> str:
    """The game's address as the browser sees it (the Play page), for links."""
    url = getattr(st.context, "url", None) or DEFAULT_BASE_URL
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/" + PAGE_PATH) or path == PAGE_PATH:
        path = path[: -len(PAGE_PATH)]
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/") + "/", "", ""))


def render_board(code: str) -> None:
    try:
        board = resources.store().challenge_board(code)
    except StoreError as exc:
        st.error(f"The challenge's board cannot be read: {without_paths(exc)}")
        return
    if board is None:
        st.warning(f"There is no challenge with the code {code.strip()[:20]!r}.")
        return
    c = board.challenge
    st.subheader(f"Challenge {c.code}: {describe(c)}")
    if not board.people:
        st.info("Nobody has finished this challenge yet.")
        return
    rows = [{"rank": "model" if e.is_model else str(e.rank), "player": e.name, "points": e.points,
             "mean distance (km)": e.mean_km, "rounds": e.rounds} for e in board.ranking()]
    show_table(pd.DataFrame(rows), {"points": formatting.points, "mean distance (km)": formatting.km_number})
    practice = f"; {board.practice_games} later games were practice" if board.practice_games else ""
    st.caption(f"{len(board.people)} players ranked by their first finished game{practice}. "
               "The models played the same rounds.")
