"""The Play page: setup form, rounds (photo + clickable map), results, final standings."""
from __future__ import annotations

import logging
import time

import pandas as pd
import streamlit as st

from app import formatting, insight, page_challenge, photos, recap, resources, saving
from app.game import DEFAULT_ROUNDS, MAX_ROUNDS, GameError
from app.maps import MapError, data_dir
from app.messages import without_paths
from app.pickgrid import PickError
from app.players import OpponentError
from app.session import Phase, PlaySession
from app.views import GRID_LAYER, REFINE_LAYER, TRUTH_COLOUR, Marker, guess_colours, play_deck, result_deck
from db.models import PERSON
from db.names import MAX_NAME_LENGTH, InvalidPlayerName

log = logging.getLogger("geoai.app")
SESSION_KEY = "play"
# A test (or automation) may put {"cell": h3 id, "layer": "grid"|"refine"} here: it is
# handled exactly like a click on the map (Streamlit's AppTest cannot click deck.gl).
CLICK_KEY = "map_click"


def session() -> PlaySession:
    if SESSION_KEY not in st.session_state:
        st.session_state[SESSION_KEY] = PlaySession()
    return st.session_state[SESSION_KEY]


def render() -> None:
    play = session()
    if play.phase is Phase.SETUP:
        render_setup(play)
    elif play.phase is Phase.GUESSING:
        render_round(play)
    elif play.phase is Phase.RESULT:
        render_result(play)
    else:
        render_final(play)


# -- setup ---------------------------------------------------------------------------------
def render_setup(play: PlaySession) -> None:
    challenge = page_challenge.challenge_from_query()
    if challenge is not None:
        page_challenge.render_challenge_setup(play, challenge, start_game)
        return
    st.title("Where was this photo taken?")
    st.write("Click the map where you think each photo was taken, then compare with two AI models.")
    names = resources.map_names()
    if not names:
        log.warning("no maps found in %s", data_dir())
        st.error("No maps found. A map is a dataset folder with metadata.csv beside its images. Point "
                 "the game at the folder holding them and restart:")
        st.code("GEOAI_DATA_DIR=/path/to/datasets streamlit run app/main.py", language="bash")
        return
    with st.form("setup"):
        name = st.text_input("Your name", max_chars=MAX_NAME_LENGTH, key="player_name")
        default = names.index("croatia-streetview") if "croatia-streetview" in names else 0
        map_name = st.selectbox("Map", names, index=default, key="map_name")
        rounds = st.number_input("Rounds", min_value=1, max_value=MAX_ROUNDS, value=DEFAULT_ROUNDS, key="rounds")
        started = st.form_submit_button("Start game", type="primary")
    if started:
        start_game(play, name, map_name, int(rounds))


def start_game(play: PlaySession, name: str, map_name: str, rounds: int, challenge=None) -> None:
    try:
        game_map = resources.game_map(map_name)
        grid = resources.pick_grid(map_name)
        opponents, problems = resources.opponents_for(map_name)
        play.start(name, map_name, game_map.size_km, game_map.places, grid,
                   [o.name for o in opponents], rounds, rng=page_challenge.places_rng(challenge))
        page_challenge.remember(play, challenge)
    except (InvalidPlayerName, GameError, MapError) as exc:
        st.error(without_paths(exc))
        return
    for problem in problems:
        log.warning(problem)
    st.rerun()


def opponents_note(map_name: str) -> None:
    opponents, problems = resources.opponents_for(map_name)
    if not opponents:
        st.info("No trained models were found: you are playing alone. To add opponents, build the "
                "offline backbones, train and publish (see README):")
        st.code("python -m train convert-offline\n"
                f"python -m train --data $GEOAI_DATA_DIR/{map_name} --out runs/{map_name}\n"
                f"python -m train publish runs/{map_name}", language="bash")
    for problem in problems:
        st.warning(without_paths(problem))


# -- a round -------------------------------------------------------------------------------
def scoreboard(play: PlaySession) -> None:
    game = play.game
    totals = game.totals()
    cols = st.columns(1 + len(totals))
    number = min(game.round_number, game.rounds_total)
    cols[0].metric("Round", f"{number}/{game.rounds_total}")
    for col, (who, points) in zip(cols[1:], totals.items()):
        col.metric(game.display_name(who), formatting.points(points))


def render_round(play: PlaySession) -> None:
    game = play.game
    place = game.current_place
    opponents = current_opponents(play)
    resources.model_players().prefetch(opponents, place)  # models think while the person looks
    handle_click(play, st.session_state.pop(CLICK_KEY, None))

    scoreboard(play)
    for note in game.notes_for(game.round_number, "photo"):
        st.info(note)
    page_challenge.render_timer(play, lambda: confirm_guess(play, opponents))
    photos.show_place(place.image_paths, data_dir() / game.map_name)
    map_col = st.container()
    with map_col:
        guess = Marker("you", *play.guess, guess_colours([PERSON])[PERSON]) if play.guess else None
        deck = play_deck(resources.game_map(game.map_name).bounds, play.grid, resources.borders_for(game.map_name),
                         guess=guess, refine_cells=play.refine_cells(), basemap=basemap_on())
        st.pydeck_chart(deck, on_select=lambda: on_map_select(play), selection_mode="single-object",
                        key=play.map_key, height=480)
        if play.guess:
            st.caption(f"Your guess: {play.guess[0]:.3f}, {play.guess[1]:.3f}. Click again to move it "
                       "(the finer patch around it refines it), then press Guess.")
        else:
            st.caption("Click the map to place your guess.")
        if st.button("Guess", type="primary", disabled=play.guess is None, key=f"guess-{play.map_key}"):
            confirm_guess(play, opponents)
    if game.round_number == 1:
        opponents_note(game.map_name)


def on_map_select(play: PlaySession) -> None:
    """Streamlit's on_select callback: read the picked cell from the chart's widget state."""
    state = st.session_state.get(play.map_key)
    objects = (state or {}).get("selection", {}).get("objects", {})
    for layer in (REFINE_LAYER, GRID_LAYER):
        if objects.get(layer):
            handle_click(play, {"cell": objects[layer][0], "layer": layer})
            return
    # A click on the selected cell deselects it; the guess simply stays where it was.


def handle_click(play: PlaySession, click: dict | None) -> None:
    if not click or play.phase is not Phase.GUESSING:
        return
    try:
        play.pick(str(click.get("cell")), str(click.get("layer", GRID_LAYER)))
    except (PickError, GameError) as exc:
        log.warning("ignored map click: %s", exc)


def confirm_guess(play: PlaySession, opponents) -> None:
    players = resources.model_players()
    started = time.perf_counter()
    try:
        with st.spinner("The models are guessing..."):
            play.confirm(lambda place: predict_each(players, opponents, place))
    except (GameError, OpponentError) as exc:
        st.error(without_paths(exc))
        return
    log.info("round answered in %.3f s", time.perf_counter() - started)
    st.rerun()


def predict_each(players, opponents, place) -> dict:
    """Each model's guess, or the OpponentError that keeps it from guessing (it then leaves
    the game; the others play on)."""
    answers: dict = {}
    for info in opponents:
        try:
            answers.update(players.predict([info], place))
        except OpponentError as exc:
            answers[info.name] = exc
    return answers


def current_opponents(play: PlaySession):
    infos, _ = resources.opponents_for(play.game.map_name)
    return [i for i in infos if i.name in play.game.opponents]


# -- results -------------------------------------------------------------------------------
def result_table(play: PlaySession) -> pd.DataFrame:
    game, result = play.game, play.last_result
    rows = [{"player": game.display_name(g.who), "distance (km)": g.distance_km, "points": g.points}
            for g in result.guesses.values()]
    return pd.DataFrame(rows)


def show_table(frame: pd.DataFrame) -> None:
    """A small static table (real HTML, text escaped), distances with one decimal."""
    formats = {"distance (km)": formatting.km_number, "points": formatting.points}
    st.table(frame.style.format({k: v for k, v in formats.items() if k in frame}), hide_index=True)


def result_map(play: PlaySession) -> None:
    game, result = play.game, play.last_result
    colours = guess_colours([PERSON, *game.starting_opponents])
    markers = [Marker(game.display_name(g.who), g.lat, g.lon, colours[g.who]) for g in result.guesses.values()]
    truth = Marker("truth", result.place.lat, result.place.lon, tuple(TRUTH_COLOUR))
    deck = result_deck(resources.game_map(game.map_name).bounds, play.grid.world,
                       resources.borders_for(game.map_name), truth, markers, basemap=basemap_on())
    st.pydeck_chart(deck, height=420, key=f"result-{play.map_key}")


def render_result(play: PlaySession) -> None:
    scoreboard(play)
    result = play.last_result
    st.subheader(f"Round {result.number}: the photo was taken here")
    left, right = st.columns([3, 2])
    with left:
        result_map(play)
    with right:
        show_table(result_table(play))
        for note in play.game.notes_for(result.number, "model"):
            st.info(note)
        closest = result.ranking()[0]
        st.write(f"Closest: {play.game.display_name(closest.who)} ({formatting.km(closest.distance_km)})")
        if st.button("Next round", type="primary", key=f"next-{play.map_key}"):
            play.next_round()
            st.rerun()
    show_insight(play)


def show_insight(play: PlaySession) -> None:
    """What the models believed and where they looked, drawn after the scores are on the page."""
    game, place = play.game, play.last_result.place
    players = resources.model_players()
    colours = guess_colours([PERSON, *game.starting_opponents])
    opponents = [insight.Opponent(info, players.prediction(info, place), colours[info.name])
                 for info in current_opponents(play)]
    shown = [p for p in map(photos.shown_or_none, place.image_paths) if p]
    insight.render_panel(insight.service(resources.model_players()), opponents, shown, (place.lat, place.lon),
                         resources.borders_for(game.map_name), resources.game_map(game.map_name).bounds,
                         key=f"insight-{play.map_key}")


def render_final(play: PlaySession) -> None:
    game = play.game
    st.header("Final score")
    totals = pd.DataFrame([{"player": game.display_name(w), "points": p} for w, p in game.totals().items()])
    show_table(totals.sort_values("points", ascending=False))
    winners = game.winners()
    if winners == [PERSON]:
        st.success(f"{game.player_name} wins! You beat the machines.")
    elif PERSON in winners:
        st.info(f"A tie: {game.winner_text().removeprefix('tie: ')}.")
    else:
        st.warning(f"{game.winner_text()} wins this time.")
    saving.render_save(play)
    if st.button("Play again", type="primary"):
        play.reset()
        st.rerun()
    for note in game.notes:
        st.caption(note.text)
    recap.show_recap(game, guess_colours([PERSON, *game.starting_opponents]))
    st.subheader(f"Round {play.last_result.number}: the photo was taken here")
    left, right = st.columns([3, 2])
    with left:
        result_map(play)
    with right:
        show_table(result_table(play))
    show_insight(play)


def basemap_on() -> bool:
    return bool(st.session_state.get("basemap", False))


__all__ = ["CLICK_KEY", "SESSION_KEY", "render", "session"]
