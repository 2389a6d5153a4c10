"""The Play page: setup form, rounds (photo + map), results, final standings."""
from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pandas as pd
import pandas.io.formats.style  # noqa: F401 - its templates compile once here, not on the first result
import streamlit as st

from app import formatting, insight, page_challenge, photos, recap, resources, saving
from app.components.guess_map import LegendEntry, guess_map, map_event
from app.game import DEFAULT_ROUNDS, GameError
from app.identity import TRUTH, Identity, identities
from app.live_games import new_game_id
from app.maps import MapError
from app.messages import without_paths
from app.players import OpponentError
from app.session import MAX_TIMER_S, MIN_TIMER_S, Phase, PlaySession
from app.tables import show_table
from app.views import ONLINE_TILES, Marker, frame_of, play_deck, result_deck, result_frame
from db.models import PERSON
from db.names import MAX_NAME_LENGTH, InvalidPlayerName
from geoai import settings

log = logging.getLogger("geoai.app")
SESSION_KEY = "play"
GAME_PARAM = "game"  # the URL's query parameter holding the game id
# A test (or automation) may put (lat, lon) here: it is handled exactly like a guess sent
# by the map's Guess button (Streamlit's AppTest cannot run the map's JavaScript).
GUESS_KEY = "map_guess"
ROUND_MAP_HEIGHT = 540
RESULT_MAP_HEIGHT = 460


def session() -> PlaySession:
    """This browser tab's game: the one in session state, else the one the URL names
    (a reload), else a fresh setup."""
    play = st.session_state.get(SESSION_KEY)
    wanted = st.query_params.get(GAME_PARAM)
    if play is not None and (not wanted or wanted == play.game_id):
        if not wanted and play.game_id and play.phase is not Phase.SETUP:
            st.query_params[GAME_PARAM] = play.game_id  # back from another page: keep it reloadable
        return play
    if wanted:
        found = resources.live_games().get(wanted)
        if found is not None:
            st.session_state[SESSION_KEY] = found
            return found
        st.session_state["resume_notice"] = ("That game is no longer available (games are kept for a "
                                             "while on this server only). Start a new one below.")
        del st.query_params[GAME_PARAM]
    play = PlaySession()
    st.session_state[SESSION_KEY] = play
    return play


def render() -> None:
    if settings.log_script_runs():  # the browser tests count script runs
        print("geoai script run", flush=True)
    play = session()
    if play.phase is Phase.SETUP:
        render_setup(play)
    elif play.phase is Phase.GUESSING:
        render_round(play)
    if play.phase is Phase.RESULT:  # also straight after a guess, in the same run
        render_result(play)
    elif play.phase is Phase.FINISHED:
        render_final(play)


# -- setup ---------------------------------------------------------------------------------
def render_setup(play: PlaySession) -> None:
    challenge = page_challenge.challenge_from_query()
    if challenge is not None:
        page_challenge.render_challenge_setup(play, challenge, start_game)
        return
    st.title("Where was this photo taken?")
    st.write("Click the map where you think each photo was taken, then compare with two AI models.")
    notice = st.session_state.pop("resume_notice", None)
    if notice:
        st.info(notice)
    names = resources.map_names()
    if not names:
        log.warning("no maps found in %s", settings.data_dir())
        st.error("No maps found. A map is a dataset folder with metadata.csv beside its images. Point "
                 "the game at the folder holding them and restart:")
        st.code("GEOAI_DATA_DIR=/path/to/datasets streamlit run app/main.py", language="bash")
        return
    with st.form("setup"):
        name = st.text_input("Your name", max_chars=MAX_NAME_LENGTH, key="player_name")
        default = names.index("croatia-streetview") if "croatia-streetview" in names else 0
        map_name = st.selectbox("Map", names, index=default, key="map_name")
        # No min/max here: an out-of-range value gets a message instead of being ignored.
        rounds = st.number_input("Rounds", value=DEFAULT_ROUNDS, step=1, key="rounds")  # checked on Start
        timer = st.number_input(f"Seconds per round ({MIN_TIMER_S}-{MAX_TIMER_S}; 0 = no timer)",
                                value=0, step=10, key="timer_s")
        started = st.form_submit_button("Start game", type="primary")
    if started:
        start_game(play, name, map_name, rounds, timer)


def start_game(play: PlaySession, name: str, map_name: str, rounds, timer_s=0, challenge=None) -> None:
    if challenge is not None:
        timer_s = challenge.timer_seconds or 0
    try:
        game_map = resources.game_map(map_name)
        opponents, problems = resources.opponents_for(map_name)
        game_id = new_game_id()
        play.start(name, map_name, game_map.size_km, game_map.places, [o.name for o in opponents],
                   rounds, timer_s=timer_s, game_id=game_id, rng=page_challenge.places_rng(challenge))
        # Every screen (recap, tables, leaderboard) names the models as people read them.
        play.game.labels = {w: i.label for w, i in identities(play.game.player_name, opponents).items()
                            if w != PERSON}
        page_challenge.remember(play, challenge)
    except (InvalidPlayerName, GameError, MapError) as exc:
        st.error(without_paths(exc))
        return
    for problem in problems:
        log.warning(problem)
    resources.live_games().put(game_id, play)
    st.query_params[GAME_PARAM] = game_id
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


# -- who is who ------------------------------------------------------------------------------
def players(play: PlaySession) -> dict[str, Identity]:
    """Each player's label and colour, the same on every view (app.identity)."""
    infos = {info.name: info for info in resources.all_opponents()[0]}
    opponents = [infos.get(name) or SimpleNamespace(name=name, label=name, family="")
                 for name in play.game.starting_opponents]  # a model that left keeps its colour
    return identities(play.game.player_name, opponents)


# -- a round -------------------------------------------------------------------------------
def scoreboard(play: PlaySession) -> None:
    game = play.game
    totals = game.totals()
    who = players(play)
    cols = st.columns(1 + len(totals))
    number = min(game.round_number, game.rounds_total)
    cols[0].metric("Round", f"{number}/{game.rounds_total}")
    for col, (name, points) in zip(cols[1:], totals.items()):
        col.metric(who[name].markdown, formatting.points(points))


def render_round(play: PlaySession) -> None:
    game = play.game
    place = game.current_place
    opponents = current_opponents(play)
    resources.model_players().prefetch(opponents, place)  # models think while the person looks
    game_map = resources.game_map(game.map_name)
    centre = game_map.bounds.centre
    # What the map sent in this rerun is handled before drawing: the result shows at once.
    event = map_event(play.map_key)
    test_guess = st.session_state.pop(GUESS_KEY, None)
    if test_guess is not None:
        event = SimpleNamespace(kind="guess", position=tuple(test_guess))
    if event is not None and event.kind == "guess":
        if confirm_guess(play, opponents, lambda predict: play.confirm(event.position, predict)):
            return
    elif (event is not None and event.kind == "timeout") or play.out_of_time():
        pin = event.position if event is not None else None
        if confirm_guess(play, opponents, lambda predict: play.time_up(pin, predict, centre)):
            return

    scoreboard(play)
    for note in game.notes_for(game.round_number, "photo"):
        st.info(note)
    photos.show_place(place.image_paths, settings.data_dir() / game.map_name)
    with st.container():
        deck = play_deck(game_map.bounds, resources.borders_for(game.map_name),
                         resources.labels_for(game.map_name), tiles=basemap_on())
        guess_map(deck, key=play.map_key, height=ROUND_MAP_HEIGHT, fit=frame_of(game_map.bounds),
                  timer_s=play.remaining_s(), pin_colour=players(play)[PERSON].rgba,
                  tiles_url=tiles_url())
    if game.round_number == 1:
        opponents_note(game.map_name)


def confirm_guess(play: PlaySession, opponents, finish) -> bool:
    """End the round with `finish(predict)`; False (and a message) when it cannot."""
    players_ = resources.model_players()
    started = time.perf_counter()
    try:
        with st.spinner("The models are guessing..."):
            finish(lambda place: predict_each(players_, opponents, place))
    except (GameError, OpponentError) as exc:
        st.error(without_paths(exc))
        return False
    log.info("round answered in %.3f s", time.perf_counter() - started)
    return True


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
    who = players(play)
    rows = [{"player": who[g.who].label, "distance (km)": g.distance_km, "points": g.points}
            for g in result.guesses.values()]
    return pd.DataFrame(rows)


def show_scores(frame: pd.DataFrame, who: dict[str, Identity]) -> None:
    """Players with distances (one decimal) and points, each name in the player's colour."""
    formats = {"distance (km)": formatting.km_number, "points": formatting.points}
    show_table(frame, formats, {i.label: i for i in who.values()})


def result_map(play: PlaySession) -> None:
    """The truth, every guess and a great-circle arc from each guess to it, framed to fit
    them all, with a legend naming each colour."""
    game, result = play.game, play.last_result
    who = players(play)
    # A person whose time ran out before placing a pin made no guess to draw.
    shown = [g for g in result.guesses.values()
             if not (g.who == PERSON and g.timed_out and play.timeout_without_pin)]
    markers = [Marker(who[g.who].label, g.lat, g.lon, who[g.who].rgba) for g in shown]
    truth = Marker(TRUTH.label, result.place.lat, result.place.lon, TRUTH.rgba)
    deck = result_deck(resources.game_map(game.map_name).bounds, resources.borders_for(game.map_name),
                       resources.labels_for(game.map_name), truth, markers, tiles=basemap_on())
    legend = [LegendEntry(TRUTH.label, TRUTH.colour, "truth")]
    legend += [LegendEntry(f"{who[g.who].label} · {g.distance_km:,.1f} km", who[g.who].colour) for g in shown]
    guess_map(deck, key=f"result-{play.map_key}", height=RESULT_MAP_HEIGHT, interactive=False,
              fit=result_frame([truth, *markers]), legend=legend, tiles_url=tiles_url())


def time_up_note(play: PlaySession) -> None:
    mine = play.last_result.guesses[PERSON]
    if mine.timed_out:
        st.warning("Time ran out: 0 points for you this round" +
                   (" (no pin was placed)." if play.timeout_without_pin else " (your pin is shown where it was)."))


def render_result(play: PlaySession) -> None:
    scoreboard(play)
    show_round_result(play, last=False)


def show_round_result(play: PlaySession, last: bool) -> None:
    """The round's map and scores, then what the models believed and where they looked;
    before the last round with its notes, the closest player and the Next round button."""
    result = play.last_result
    st.subheader(f"Round {result.number}: the photo was taken here")
    left, right = st.columns([3, 2])
    with left:
        result_map(play)
    with right:
        time_up_note(play)
        show_scores(result_table(play), players(play))
        if not last:
            for note in play.game.notes_for(result.number, "model"):
                st.info(note)
            closest = result.ranking()[0]
            st.write(f"Closest: {players(play)[closest.who].label} ({formatting.km(closest.distance_km)})")
            # A callback runs before the script, so the click's run draws the next round
            # straight away instead of drawing this result once more first.
            st.button("Next round", type="primary", key=f"next-{play.map_key}", on_click=next_round, args=(play,))
    show_insight(play)


def next_round(play: PlaySession) -> None:
    try:
        play.next_round()
    except GameError:  # a second click on a button that already moved on: nothing to do
        pass


def colours_of(play: PlaySession) -> dict[str, tuple[int, ...]]:
    return {w: i.rgba for w, i in players(play).items()}


def show_insight(play: PlaySession) -> None:
    """What the models believed and where they looked, drawn after the scores are on the page."""
    game, place = play.game, play.last_result.place
    model_players = resources.model_players()
    colours = colours_of(play)
    opponents = [insight.Opponent(info, model_players.prediction(info, place), colours[info.name])
                 for info in current_opponents(play)]
    shown = [p for p in map(photos.shown_or_none, place.image_paths) if p]
    insight.render_panel(insight.service(model_players), opponents, shown, (place.lat, place.lon),
                         resources.borders_for(game.map_name), resources.game_map(game.map_name).bounds,
                         key=f"insight-{play.map_key}", labels_json=resources.labels_for(game.map_name))


def render_final(play: PlaySession) -> None:
    game = play.game
    who = players(play)
    st.header("Final score")
    totals = pd.DataFrame([{"player": who[w].label, "points": p} for w, p in game.totals().items()])
    show_scores(totals.sort_values("points", ascending=False), who)
    winners = game.winners()
    names = ", ".join(who[w].label for w in winners)
    if winners == [PERSON]:
        st.success(f"{game.player_name} wins! You beat the machines.")
    elif PERSON in winners:
        st.info(f"A tie: {names}.")
    else:
        st.warning(f"{names} {'wins' if len(winners) == 1 else 'tie'} this time.")
    saving.render_save(play)
    if st.button("Play again", type="primary"):
        resources.live_games().drop(play.game_id)
        st.query_params.pop(GAME_PARAM, None)
        play.reset()
        st.rerun()
    for note in game.notes:
        st.caption(note.text)
    recap.show_recap(game, colours_of(play))
    show_round_result(play, last=True)


def basemap_on() -> bool:
    return bool(st.session_state.get("basemap", False))


def tiles_url() -> str | None:
    """Online map tiles under the offline borders, when the sidebar switch is on."""
    return ONLINE_TILES if basemap_on() else None


__all__ = ["GAME_PARAM", "GUESS_KEY", "SESSION_KEY", "render", "session"]
