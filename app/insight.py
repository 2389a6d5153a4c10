"""What each model believed and where it looked, shown after a guess.

- Belief: a classifier head (grid, geocell) spreads probability over cells; its top cells
  are drawn as a heatmap with the three most likely numbered. A regression head gives a
  single point, which is said in words.
- Where it looked: geoai.explain's saliency (Grad-CAM for CNNs, attention rollout for
  transformers) over every view of the photo.

Saliency is computed in one background thread after the round is scored and cached per
(photo bytes, bundle weights), so the distances and points never wait for it: the page
draws the scores first and fills this panel in as the drawings arrive.
"""
from __future__ import annotations

import functools
import io
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image

from app import formatting
from app.maps import Bounds
from app.players import ModelPlayers, OpponentInfo
from app.tables import show_table
from app.views import MapDeck, map_deck
from geoai import settings
from geoai.prediction import PlacePrediction

log = logging.getLogger("geoai.app")
TOP_GUESSES = 3
WAIT_SLICE_S = 0.25  # the page checks this often whether a drawing arrived (and whether to stop)
MAX_WAIT_S = 60.0  # a drawing later than this is given up on (said on the page)
MAX_PENDING = 64
LOOKED_KEY = "insight-looked"  # session flag: the person asked to see where the models looked
HEAT_COLOURS = [[255, 255, 178], [254, 204, 92], [253, 141, 60], [240, 59, 32], [189, 0, 38]]
TRUTH_RGB = [30, 160, 60, 255]
REGRESSION_TEXT = ("Its head is a regression head: it answers with a single point, not a spread of "
                   "beliefs over the map, so there is no heatmap to show.")


class InsightError(RuntimeError):
    """A drawing that could not be made; the message is fit for players."""


@dataclass(frozen=True)
class Looked:
    """Where one model looked in each view: heat overlays as JPEGs, in view order."""
    overlays: tuple[bytes, ...]
    caption: str  # how the method works, in words
    target: str  # what the map explains
    seconds: tuple[float, ...]  # compute time per view (0 for cached views)


# -- belief ---------------------------------------------------------------------------------
def top_guesses(prediction: PlacePrediction | None, k: int = TOP_GUESSES) -> list[tuple[float, float, float]]:
    """The k most likely cells (lat, lon, probability), most likely first; [] for regression heads."""
    if prediction is None or not prediction.top_cells:
        return []
    return sorted(prediction.top_cells, key=lambda cell: -cell[2])[:k]


@functools.lru_cache(maxsize=4096)
def place_name(lat: float, lon: float) -> str:
    """"near Zagreb, Croatia" from the offline gazetteer (empty when unavailable)."""
    try:
        import reverse_geocode

        found = reverse_geocode.search([(lat, lon)])[0]
    except Exception as exc:  # a name is an extra: never stop the page for it
        log.warning("reverse geocoding failed: %s", exc)
        return ""
    city, country = found.get("city") or "", found.get("country") or ""
    return f"near {city}, {country}" if city and country else (f"in {country}" if country else "")


def top_guesses_frame(prediction: PlacePrediction | None, truth: tuple[float, float] | None) -> pd.DataFrame:
    """The top guesses as a table people read: rank, where, probability, km from the truth."""
    from app.game import distance_km

    rows = []
    for rank, (lat, lon, probability) in enumerate(top_guesses(prediction), start=1):
        row = {"rank": rank, "where": f"{place_name(round(lat, 3), round(lon, 3))} ({formatting.coordinate(lat, lon)})".strip(),
               "probability": formatting.percent(probability)}
        if truth is not None:
            row["from the truth"] = formatting.km(distance_km((lat, lon), truth))
        rows.append(row)
    return pd.DataFrame(rows)


def belief_view(cells: Sequence[tuple[float, float, float]], extra: Sequence[tuple[float, float]],
                map_bounds: Bounds | None) -> dict:
    """A view holding the map's area, the believed cells and the extra points (truth, guess)."""
    lats = [c[0] for c in cells] + [p[0] for p in extra]
    lons = [c[1] for c in cells] + [p[1] for p in extra]
    if map_bounds is not None:
        lats += [map_bounds.south, map_bounds.north]
        lons += [map_bounds.west, map_bounds.east]
    view = Bounds.of(lats, lons).view(width_px=520, height_px=340, margin=1.25)
    return {"latitude": view.latitude, "longitude": view.longitude, "zoom": view.zoom}


def belief_deck(prediction: PlacePrediction, truth: tuple[float, float] | None, borders_json: str | None,
                map_bounds: Bounds | None, colour: Sequence[int], labels_json: str | None = None) -> MapDeck:
    """Heatmap of the head's cell probabilities, the top 3 numbered, the guess and the truth."""
    cells = list(prediction.top_cells or ())
    heat = {"@@type": "HeatmapLayer", "id": "belief", "data": [{"p": [lon, lat], "w": p} for lat, lon, p in cells],
            "getPosition": "@@=p", "getWeight": "@@=w", "radiusPixels": 60, "intensity": 1.2,
            "threshold": 0.03, "colorRange": HEAT_COLOURS}
    # White numbers on a dark badge: readable over any heat colour.
    top = {"@@type": "TextLayer", "id": "top", "getPosition": "@@=p", "getText": "@@=t", "getSize": 15,
           "data": [{"p": [lon, lat], "t": str(i)} for i, (lat, lon, _) in enumerate(top_guesses(prediction), start=1)],
           "getColor": [255, 255, 255, 255], "fontWeight": 700, "background": True,
           "getBackgroundColor": [40, 40, 40, 230], "backgroundPadding": [5, 2], "getPixelOffset": [14, -14]}
    points = [{"p": [prediction.lon, prediction.lat], "c": list(colour)}]
    if truth is not None:
        points.append({"p": [truth[1], truth[0]], "c": TRUTH_RGB})
    marks = {"@@type": "ScatterplotLayer", "id": "points", "data": points, "getPosition": "@@=p",
             "getFillColor": "@@=c", "getLineColor": [255, 255, 255, 255], "stroked": True,
             "lineWidthMinPixels": 2, "radiusMinPixels": 6, "radiusMaxPixels": 9, "getRadius": 1500}
    extra = [(prediction.lat, prediction.lon)] + ([truth] if truth is not None else [])
    return map_deck(belief_view(cells, extra, map_bounds), [heat, top, marks], borders_json, labels_json)


# -- where it looked ------------------------------------------------------------------------
class InsightService:
    """Saliency drawings per (photo, bundle), computed one at a time in a background thread.

    One instance per process (st.cache_resource), shared by every session.
    """

    def __init__(self, players: ModelPlayers) -> None:
        self.players = players
        self._cache = None  # geoai.explain imports torch: only once a drawing is asked for
        self._explainers: dict[Path, object] = {}
        self._pending: dict[tuple[Path, tuple[str, ...]], Future] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="geoai-insight")

    @property
    def cache(self):
        from geoai.explain import ExplanationCache

        with self._lock:
            if self._cache is None:
                self._cache = ExplanationCache()
            return self._cache

    def request(self, info: OpponentInfo, photos: Sequence[bytes]) -> Future:
        """Start (or join) drawing where `info` looked in these views; a Future of Looked."""
        from geoai.explain import photo_digest

        key = (info.path, tuple(photo_digest(p) for p in photos))
        with self._lock:
            future = self._pending.get(key)
            if future is None:
                if len(self._pending) >= MAX_PENDING:  # finished ones are cached: forget them
                    self._pending = {k: f for k, f in self._pending.items() if not f.done()}
                future = self._executor.submit(self._looked, info, tuple(photos))
                self._pending[key] = future
        return future

    def explainer(self, info: OpponentInfo):
        from geoai.explain import Explainer

        with self._lock:
            found = self._explainers.get(info.path)
        if found is None:
            found = Explainer(self.players.bundle(info))
            with self._lock:
                self._explainers[info.path] = found
        return found

    def _looked(self, info: OpponentInfo, photos: tuple[bytes, ...]) -> Looked:
        from geoai.explain import METHOD_CAPTIONS, overlay_jpeg, photo_digest

        try:
            explainer = self.explainer(info)
            overlays, seconds, target = [], [], ""
            for data in photos:
                key = (photo_digest(data), explainer.digest)
                cached = self.cache.get(key)
                if cached is None:
                    image = Image.open(io.BytesIO(data)).convert("RGB")
                    started = time.perf_counter()
                    saliency = explainer.saliency(image)
                    cached = (overlay_jpeg(image, saliency.values, saliency.seen), saliency.target)
                    seconds.append(time.perf_counter() - started)
                    self.cache.put(key, _Drawing(*cached))
                else:
                    cached = (cached.jpeg, cached.target)
                    seconds.append(0.0)
                overlays.append(cached[0])
                target = cached[1]
            return Looked(tuple(overlays), METHOD_CAPTIONS[explainer.method], target, tuple(seconds))
        except Exception as exc:  # the panel says it could not draw; the log has the reason
            log.warning("saliency for %s failed: %s: %s", info.name, type(exc).__name__, exc)
            raise InsightError(f"Where {info.label} looked could not be drawn for this photo.") from exc


@dataclass(frozen=True)
class _Drawing:
    jpeg: bytes  # ExplanationCache sizes entries by .jpeg
    target: str


# -- the panel ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Opponent:
    """One model as the panel shows it."""
    info: OpponentInfo
    prediction: PlacePrediction | None
    colour: tuple[int, ...]


def render_panel(service: InsightService, opponents: Sequence[Opponent], photos: Sequence[bytes],
                 truth: tuple[float, float] | None, borders_json: str | None = None,
                 map_bounds: Bounds | None = None, key: str = "insight", labels_json: str | None = None) -> None:
    """Belief maps at once, then the saliency strips as they arrive (call it after the scores)."""
    if not opponents:
        return
    # Drawing needs the models in memory: where they answered from precomputed predictions,
    # GEOAI_SALIENCY=on-request (the container's default) loads them only when asked.
    ready = (settings.saliency() == "auto" or all(service.players.loaded(o.info) for o in opponents)
             or st.session_state.get(LOOKED_KEY, False))
    futures = {o.info.path: service.request(o.info, photos) for o in opponents} if photos and ready else {}
    st.subheader("What the models believed")
    for col, opponent in zip(st.columns(len(opponents)), opponents):
        with col:
            show_belief(opponent, truth, borders_json, map_bounds, key=f"{key}-belief-{opponent.info.name}",
                        labels_json=labels_json)
    if not photos:
        return
    st.subheader("Where they looked")
    if not ready:
        st.caption("The models answered from predictions made in advance; drawing where they looked "
                   "loads them, which takes a moment.")
        if st.button("Show where they looked", key=f"{key}-looked"):
            st.session_state[LOOKED_KEY] = True
            st.rerun()
        return
    slots = {}
    for opponent in opponents:
        st.markdown(f"**{opponent.info.label}**")
        slots[opponent.info.path] = st.empty()
        slots[opponent.info.path].caption(f"Tracing where {opponent.info.label} looked...")
    wait_and_fill(futures, slots, {o.info.path: o for o in opponents}, len(photos))


def show_belief(opponent: Opponent, truth: tuple[float, float] | None, borders_json: str | None,
                map_bounds: Bounds | None, key: str, labels_json: str | None = None) -> None:
    st.markdown(f"**{opponent.info.label}**")
    prediction = opponent.prediction
    if prediction is None:
        st.caption("This model's answer is not available.")
        return
    if not prediction.top_cells:
        st.caption(REGRESSION_TEXT)
        return
    draw_deck(belief_deck(prediction, truth, borders_json, map_bounds, opponent.colour, labels_json), key=key, height=320)
    st.caption(f"Heat: the probability its {opponent.info.head} head gave each cell; numbers: its three "
               "most likely cells; its guess in its colour, the truth in green.")
    show_table(top_guesses_frame(prediction, truth))


def wait_and_fill(futures: dict, slots: dict, opponents: dict, views: int) -> None:
    """Fill each opponent's slot when its drawing is ready; every slice touches the page, so a
    click elsewhere (Next round) interrupts this wait at once."""
    deadline = time.monotonic() + MAX_WAIT_S
    waiting = dict(futures)
    ticks = 0
    while waiting:
        for path, future in list(waiting.items()):
            if future.done():
                fill(slots[path], future, opponents[path], views)
                del waiting[path]
        if not waiting:
            break
        if time.monotonic() > deadline:
            for path in waiting:
                slots[path].caption("Still drawing; it will be here when you come back to this round.")
            break
        time.sleep(WAIT_SLICE_S)
        ticks += 1
        for path in waiting:
            slots[path].caption(f"Tracing where {opponents[path].info.label} looked{'.' * (1 + ticks % 3)}")


def fill(slot, future: Future, opponent: Opponent, views: int) -> None:
    from app.photos import show_strip

    try:
        looked: Looked = future.result()
    except InsightError as exc:
        slot.warning(str(exc))
        return
    with slot.container():
        show_strip(list(looked.overlays), caption_views=views > 1)
        traced = f" Traced from {looked.target}." if looked.caption.startswith("Grad-CAM") else ""
        st.caption(looked.caption + traced)


@st.cache_resource(show_spinner=False)
def service(_players: ModelPlayers) -> InsightService:
    """The process's one InsightService (its explainers and drawings are shared by every session)."""
    return InsightService(_players)


def draw_deck(deck: MapDeck, key: str, height: int) -> None:
    """A read-only map, drawn by the game's own deck.gl map (the page already loads that
    deck.gl; a second copy from st.pydeck_chart on the same page refuses to start)."""
    from app.components.guess_map import guess_map

    guess_map(deck, key=key, height=height, interactive=False)
