"""The guess map: a Streamlit (Components v2) map that renders a pydeck deck with deck.gl
in the browser and keeps guessing there.

A click puts a pin at the exact clicked coordinate, another click moves it, scrolling,
pinching and the +/- buttons zoom; none of that reaches the server. Pressing Guess sends
one (lat, lon), which `guess_map` returns during the rerun it causes. deck.gl itself is
vendored in app/static/deckgl (scripts/vendor-deckgl.sh) and served by the app
(`server.enableStaticServing`, set in .streamlit/config.toml), so no CDN is needed.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from geoai.geodesy import is_valid_position

if TYPE_CHECKING:  # annotations only: building a pydeck Deck is the caller's business
    import pydeck as pdk

    from app.views import MapDeck

HERE = Path(__file__).resolve().parent
DECKGL_VERSION = (HERE.parents[1] / "static" / "deckgl" / "VERSION").read_text().strip()
COMPONENT_NAME = "geoai.guess_map"
DEFAULT_HEIGHT = 520
PIN_COLOUR = (59, 130, 246, 255)
BAR_HEIGHT = 54  # the status line and Guess button under an interactive map


@dataclass(frozen=True)
class MapEvent:
    """What a round's map sent: "guess" (the Guess button) or "timeout" (the timer reached 0,
    `position` is the pin if one was placed)."""
    kind: str
    position: tuple[float, float] | None


@dataclass(frozen=True)
class LegendEntry:
    """One line of the map's legend: a coloured swatch and what it stands for."""
    label: str
    colour: tuple[int, ...]
    shape: str = "dot"  # "dot", or "truth" (larger, outlined: the true place)


_mount = st.components.v2.component(
    COMPONENT_NAME,
    js=(HERE / "guess_map.js").read_text(encoding="utf-8"),
    css=(HERE / "guess_map.css").read_text(encoding="utf-8"),
    isolate_styles=False,  # deck.gl's canvas and event handling expect the ordinary DOM
)


def _static_url(name: str) -> str:
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    prefix = f"/{base}" if base else ""
    return f"{prefix}/app/static/deckgl/{name}?v={DECKGL_VERSION}"


def _fit_box(fit: tuple[float, float, float, float] | None) -> list[list[float]] | None:
    """(south, west, north, east) -> [[west, south], [east, north]] (east < west crosses 180)."""
    if fit is None:
        return None
    south, west, north, east = (float(v) for v in fit)
    if not all(math.isfinite(v) for v in (south, west, north, east)):
        raise ValueError(f"the map's frame must be finite degrees, got {fit!r}")
    return [[west, max(south, -85.0)], [east, min(north, 85.0)]]


def _guess_of(value: object) -> tuple[float, float] | None:
    """A (lat, lon) from the browser's message, or None when it is not one."""
    if not isinstance(value, dict):
        return None
    try:
        lat, lon = float(value["lat"]), float(value["lon"])
    except (KeyError, TypeError, ValueError):
        return None
    if not is_valid_position(lat, lon):
        return None
    return lat, lon


def map_event(key: str) -> MapEvent | None:
    """The message a map sent in this rerun, read before drawing anything (so the page can
    show the result in the same run); None when it sent nothing."""
    state = st.session_state.get(key)
    if state is None:
        return None
    for kind in ("guess", "timeout"):
        try:
            value = state[kind]
        except (KeyError, TypeError):
            continue
        if isinstance(value, dict):
            position = _guess_of(value)
            if kind == "timeout" or position is not None:
                return MapEvent(kind, position)
    return None


def guess_map(deck: pdk.Deck | MapDeck | str, *, key: str, height: int = DEFAULT_HEIGHT,
              fit: tuple[float, float, float, float] | None = None,
              legend: Sequence[LegendEntry] = (), interactive: bool = True,
              timer_s: float | None = None, on_timeout: Callable[[], None] | None = None,
              button_label: str = "Guess", pin_colour: tuple[int, ...] = PIN_COLOUR,
              tiles_url: str | None = None) -> tuple[float, float] | None:
    """Show the deck; return the (lat, lon) the person sent with Guess, else None.

    deck: deck.gl JSON, or a deck that writes it (a pydeck Deck, app.views.MapDeck). key: one per round, so every round starts without a
    pin. height: pixels of the map with its Guess bar (the legend, if any, comes below). fit: (south, west, north, east) framed at the start, fitted to the real size of
    the map in the browser. legend: the swatches shown over the map. interactive=False
    draws the deck without pin or button (a result map). timer_s: seconds left for the
    guess, counted down on the map; at 0 the map stops taking clicks and `on_timeout`
    runs (as a Streamlit callback, before the rerun's script). tiles_url: an online
    raster tile URL ({z}/{x}/{y}) drawn under the deck's layers.
    """
    deck_json = deck if isinstance(deck, str) else deck.to_json()
    if timer_s is not None and not (math.isfinite(timer_s) and timer_s >= 0):
        raise ValueError(f"timer_s must be seconds >= 0 or None, got {timer_s!r}")
    fit_box = _fit_box(fit)
    identity = hashlib.sha1(f"{key}\0{interactive}\0{fit_box}\0{tiles_url}\0".encode()
                            + deck_json.encode()).hexdigest()[:16]
    data = {
        "key": key, "id": identity, "deck": deck_json, "fit": fit_box,
        "map_height": max(int(height) - (BAR_HEIGHT if interactive else 0), 120),
        "legend": [{"label": e.label, "colour": list(e.colour[:3]), "shape": e.shape} for e in legend],
        "interactive": bool(interactive), "timer_s": None if timer_s is None else float(timer_s),
        "button_label": button_label, "pin_colour": list(pin_colour), "tiles": tiles_url,
        "lib": {"core": _static_url("deck.gl.min.js"), "json": _static_url("deck.gl-json.min.js")},
    }
    result = _mount(key=key, data=data, height="content", width="stretch",
                    on_guess_change=lambda: None, on_timeout_change=on_timeout or (lambda: None))
    if not interactive:
        return None
    sent = getattr(result, "guess", None)
    if isinstance(sent, dict) and sent.get("round") not in (None, identity):
        return None  # a late message from an earlier round's map
    return _guess_of(sent)


__all__ = ["DEFAULT_HEIGHT", "LegendEntry", "MapEvent", "PIN_COLOUR", "guess_map", "map_event"]
