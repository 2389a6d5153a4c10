"""The "Your photo" page: a person's own photo, guessed by both models (and by the person
when the photo knows where it was taken).

The photo is checked and stripped of its metadata by app.uploads before anything is shown,
predicted or kept; it is kept on the server only when the person ticks the box. With an
EXIF GPS position that position is the truth: the person guesses first on the map, then
the person and both models are scored like a round (on the world map's scale). Without
one, the models' guesses and beliefs are shown.
"""
from __future__ import annotations

import html
import logging

import pandas as pd
import streamlit as st

from app import formatting, identity, insight, resources
from app.game import score_guess
from app.maps import Bounds
from app.messages import without_paths
from app.players import OpponentError, OpponentInfo
from app.tables import show_table
from app.uploads import EXTENSIONS, MAX_PIXELS, MAX_UPLOAD_MB, UploadError, UploadedPhoto, keep_photo, read_upload
from app.views import MapDeck, map_deck
from db.models import PERSON
from geoai.scoring import WORLD_SIZE_KM

log = logging.getLogger("geoai.app")
STATE_KEY = "upload"
# A test (or automation) may put a (lat, lon) here: handled exactly like the map's Guess.
GUESS_KEY = "upload_guess"
PREFERRED_MAPS = ("streetview-world-tiles", "osv5m-mapillary", "im2gps3k")  # world-wide models first
PERSON_COLOUR, TRUTH_COLOUR = (*identity.PERSON_COLOUR, 255), (*identity.TRUTH_COLOUR, 255)


def render() -> None:
    st.title("Your own photo")
    st.write(f"Upload a JPEG, PNG or WEBP photo (up to {MAX_UPLOAD_MB} MB and "
             f"{MAX_PIXELS // 1_000_000} megapixels) and see where the models think it was taken. "
             "If the photo still holds the GPS position your camera recorded, you guess too and "
             "all three are scored.")
    st.caption("Everything the photo carries besides its pixels (GPS, camera, time) is removed "
               "before it is shown or used. Nothing is kept unless you tick the box below.")
    upload = st.file_uploader("Your photo", type=list(EXTENSIONS), key="upload_file")
    keep = st.checkbox("Keep my photo on this server (without its metadata)", value=False, key="upload_keep")
    if upload is None:
        st.session_state.pop(STATE_KEY, None)
        return
    try:
        photo = read_upload(upload.name, upload.getvalue())
    except UploadError as exc:
        st.session_state.pop(STATE_KEY, None)
        st.error(without_paths(exc))
        return
    state = session_for(photo)
    photo_col, main_col = st.columns([2, 3])
    with photo_col:
        st.image(photo.jpeg, width="stretch")
        if keep:
            keep_once(photo, state)
        opponents = choose_models()
    if opponents is None:
        return
    predictions = predict(opponents, photo, state)
    with main_col:
        if photo.gps is None:
            st.info("This photo carries no GPS position, so there is no right answer to score: here is "
                    "where the models think it was taken.")
            show_models_only(opponents, predictions, photo)
        elif state.get("person") is None:
            st.info("This photo carries its GPS position: that is the answer. Place your guess on the map "
                    "first; then see how you and the models did.")
            guess = person_guess(key=f"upload-map-{photo.digest[:12]}")
            if guess is None:
                return
            state["person"] = guess
            st.rerun()  # draw the scores in place of the map
        else:
            show_scores(opponents, predictions, photo, state["person"])
    # With a right answer, the models' beliefs wait for the person's guess (no copying).
    show_insight(opponents, predictions, photo, photo.gps)


def session_for(photo: UploadedPhoto) -> dict:
    """This photo's state (models' answers, the person's guess); a new photo starts afresh."""
    state = st.session_state.get(STATE_KEY)
    if not state or state.get("digest") != photo.digest:
        state = {"digest": photo.digest, "predictions": {}, "person": None, "kept": False}
        st.session_state[STATE_KEY] = state
    return state


def keep_once(photo: UploadedPhoto, state: dict) -> None:
    if state["kept"]:
        st.caption("Your photo is kept (without its metadata).")
        return
    try:
        keep_photo(photo)
    except UploadError as exc:
        st.warning(f"Your photo was not kept: {without_paths(exc)}")
        return
    state["kept"] = True
    st.caption("Your photo is kept (without its metadata).")


def choose_models() -> list[OpponentInfo] | None:
    """The two models that guess: those of the map the person picks (world-wide ones first)."""
    names = resources.map_names()
    if not names:
        st.error("No maps are set up on this server, so no models can guess.")
        return None
    # Models play only maps inside their training coverage (app.players): default to a map they trained on.
    infos, _ = resources.all_opponents()
    trained = [m for m in names if any(m in i.trained_on for i in infos)] or names
    default = names.index(next((m for m in PREFERRED_MAPS if m in trained), trained[0]))
    map_name = st.selectbox("Models trained for the map", names, index=default, key="upload_models_map",
                            help="Each map has its own models; world-wide maps suit photos from anywhere.")
    opponents, problems = resources.opponents_for(map_name)
    for problem in problems:
        log.warning(problem)
    if not opponents:
        st.warning("No trained models can play on this server yet, so nobody can guess your photo.")
        return None
    return list(opponents)


def predict(opponents: list[OpponentInfo], photo: UploadedPhoto, state: dict) -> dict:
    """Each model's answer (cached for this photo in the session)."""
    players = resources.model_players()
    missing = [o for o in opponents if o.name not in state["predictions"]]
    if missing:
        with st.spinner("The models are looking at your photo..."):
            for info in missing:
                try:
                    state["predictions"][info.name] = players.predict_photos(info, [photo.image])
                except OpponentError as exc:
                    log.warning("upload: %s", exc)
                    st.warning(f"{info.label} could not guess this photo.")
    return state["predictions"]


def person_guess(key: str) -> tuple[float, float] | None:
    """The person's (lat, lon) from the world guess map, once Guess is pressed."""
    sent = st.session_state.pop(GUESS_KEY, None)
    if sent is not None:
        return float(sent[0]), float(sent[1])
    from app.components.guess_map import guess_map

    return guess_map(world_deck([]), key=key, fit=(-60.0, -180.0, 75.0, 180.0))


def colours(opponents: list[OpponentInfo]) -> dict[str, tuple[int, ...]]:
    """Each model in the colour it has on every other page (app.identity)."""
    return {name: who.rgba for name, who in identity.identities("You", opponents).items() if name != PERSON}


def world_deck(points: list[dict], truth: tuple[float, float] | None = None) -> MapDeck:
    """Land, sea and borders of the world; each point {lat, lon, colour} with a line to the truth."""
    from app.borders import borders_json
    from app.country_labels import labels_json

    layers = []
    if truth is not None:
        layers.append({"@@type": "LineLayer", "id": "lines", "getSourcePosition": "@@=a",
                       "getTargetPosition": "@@=b", "getColor": "@@=c", "getWidth": 3,
                       "data": [{"a": [p["lon"], p["lat"]], "b": [truth[1], truth[0]], "c": list(p["colour"])}
                                for p in points]})
        points = [*points, {"lat": truth[0], "lon": truth[1], "colour": TRUTH_COLOUR}]
    if points:
        layers.append({"@@type": "ScatterplotLayer", "id": "points", "getPosition": "@@=p", "getFillColor": "@@=c",
                       "data": [{"p": [p["lon"], p["lat"]], "c": list(p["colour"])} for p in points],
                       "getLineColor": [255, 255, 255, 255], "stroked": True, "lineWidthMinPixels": 2,
                       "radiusMinPixels": 7, "getRadius": 2000})
        view = Bounds.of([p["lat"] for p in points], [p["lon"] for p in points]).view(700, 420, margin=1.6)
        view_state = {"latitude": view.latitude, "longitude": view.longitude, "zoom": view.zoom}
    else:
        view_state = {"latitude": 20.0, "longitude": 10.0, "zoom": 0.8}
    return map_deck(view_state, layers, borders_json(None), labels_json(None))


def legend(opponents: list[OpponentInfo], with_person: bool, with_truth: bool) -> None:
    names = ([("You", PERSON_COLOUR)] if with_person else []) + \
            [(o.label, colours(opponents)[o.name]) for o in opponents] + \
            ([("the photo's GPS position", TRUTH_COLOUR)] if with_truth else [])
    st.markdown(" &nbsp; ".join(f"<span style='color:rgb{tuple(c[:3])}'>●</span> {html.escape(n)}"
                                for n, c in names), unsafe_allow_html=True)


def show_models_only(opponents: list[OpponentInfo], predictions: dict, photo: UploadedPhoto) -> None:
    points = [{"lat": predictions[o.name].lat, "lon": predictions[o.name].lon, "colour": colours(opponents)[o.name]}
              for o in opponents if o.name in predictions]
    insight.draw_deck(world_deck(points), key=f"upload-guesses-{photo.digest[:12]}", height=420)
    legend([o for o in opponents if o.name in predictions], with_person=False, with_truth=False)
    show_table(pd.DataFrame([{"model": o.label, "guess": formatting.coordinate(*predictions[o.name].latlon),
                              "where": insight.place_name(round(predictions[o.name].lat, 3),
                                                          round(predictions[o.name].lon, 3))}
                             for o in opponents if o.name in predictions]))


def show_scores(opponents: list[OpponentInfo], predictions: dict, photo: UploadedPhoto,
                person: tuple[float, float]) -> None:
    truth = photo.gps
    guesses = [score_guess(PERSON, person, truth, WORLD_SIZE_KM)]
    guesses += [score_guess(o.name, predictions[o.name].latlon, truth, WORLD_SIZE_KM)
                for o in opponents if o.name in predictions]
    labels = {PERSON: "You", **{o.name: o.label for o in opponents}}
    palette = {PERSON: PERSON_COLOUR, **colours(opponents)}
    st.subheader("Your photo was taken here")
    points = [{"lat": g.lat, "lon": g.lon, "colour": palette[g.who]} for g in guesses]
    insight.draw_deck(world_deck(points, truth), key=f"upload-result-{photo.digest[:12]}", height=420)
    legend([o for o in opponents if o.name in predictions], with_person=True, with_truth=True)
    frame = pd.DataFrame([{"player": labels[g.who], "distance (km)": g.distance_km, "points": g.points}
                          for g in guesses])
    who = {i.label: i for i in identity.identities("You", opponents).values()}
    show_table(frame, {"distance (km)": formatting.km_number, "points": formatting.points}, who)
    best = min(guesses, key=lambda g: g.distance_km)
    st.write(f"Closest: {labels[best.who]} ({formatting.km(best.distance_km)})")
    st.caption("Points on the world map's scale: 5,000 within 25 m, half at about 1,000 km.")


def show_insight(opponents: list[OpponentInfo], predictions: dict, photo: UploadedPhoto,
                 truth: tuple[float, float] | None) -> None:
    from app.borders import borders_json

    palette = colours(opponents)
    panel = [insight.Opponent(o, predictions.get(o.name), palette[o.name]) for o in opponents]
    insight.render_panel(insight.service(resources.model_players()), panel, [photo.jpeg], truth,
                         borders_json(None), None, key=f"upload-insight-{photo.digest[:12]}")
