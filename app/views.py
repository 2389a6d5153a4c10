"""pydeck map specs for the play and result views, built as plain deck.gl JSON.

The spec is written by hand (not through pydeck's serializer) so the two large static
layers, the pickable grid and the country borders, are serialized ONCE per process and
spliced into every spec as ready JSON: a rerun after a click costs milliseconds instead
of re-encoding tens of thousands of cells.

Without network the map shows an ocean rectangle, land and borders from assets/; the
online basemap (Carto) is only an extra that the page switches on when it is reachable.
"""
from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import pydeck as pdk

from app.maps import Bounds
from app.pickgrid import PickGrid

GRID_LAYER, REFINE_LAYER = "grid", "refine"
ONLINE_BASEMAP = "https://basemaps.cartocdn.com/gl/positron-gl-style/style.json"
NO_BASEMAP = "__MAP_STYLE__"  # Streamlit's sentinel for "no basemap" (no default Carto style)
CHART_WIDTH_PX = 560
# Once a cell is selected, Streamlit caps the fill alpha of every other object of every
# layer at 102 (its "unselected" look). Base colours are given at alpha 102 from the start,
# so the map does not fade on the first click; the RGB is chosen to look right over white.
SELECTION_ALPHA = 102
OCEAN = [125, 175, 217, SELECTION_ALPHA]
LAND = [232, 227, 212, SELECTION_ALPHA]
BORDER = [120, 120, 120, 255]
# Pickable cells are invisible until selected; Streamlit then draws the selected cell in
# this colour at full opacity (its selection highlight), which doubles as the marker.
PICK_RGB = [230, 80, 30, 1]  # alpha 0 would not be pickable in deck.gl
TRUTH_COLOUR = [30, 160, 60, 255]
COLOURS = ([30, 100, 230, 255], [230, 120, 20, 255], [150, 60, 200, 255], [200, 40, 90, 255],
           [0, 150, 160, 255])


@dataclass(frozen=True)
class Marker:
    label: str
    lat: float
    lon: float
    colour: tuple[int, ...]


class MapDeck(pdk.Deck):
    """A Deck whose JSON is a prepared spec with big layer data spliced in verbatim."""

    def __init__(self, spec: dict, blobs: dict[str, str], tooltip: dict | None = None) -> None:
        super().__init__(layers=[], map_style=None, tooltip=tooltip or False)
        self.spec = spec
        self.blobs = blobs  # placeholder -> JSON text

    def to_json(self) -> str:  # called by st.pydeck_chart
        text = json.dumps(self.spec, separators=(",", ":"))
        for placeholder, blob in self.blobs.items():
            text = text.replace(json.dumps(placeholder), blob, 1)
        return text


def view_state(bounds: Bounds, world: bool) -> dict:
    """Centre and zoom showing the map's area in a chart about CHART_WIDTH_PX wide."""
    if world:
        return {"latitude": 20.0, "longitude": 10.0, "zoom": 0.6, "minZoom": 0, "maxZoom": 14}
    lat, lon = bounds.centre
    lon_span = max(bounds.east - bounds.west, 0.05) * 1.3
    lat_span = max(bounds.north - bounds.south, 0.05) * 1.3
    # Web Mercator: 512 px span 360 degrees at zoom 0; latitude stretches by 1/cos(lat).
    zoom_lon = math.log2(CHART_WIDTH_PX / 512 * 360 / lon_span)
    zoom_lat = math.log2(450 / 512 * 360 / lat_span * math.cos(math.radians(lat)))
    zoom = max(0.5, min(zoom_lon, zoom_lat, 13.0))
    return {"latitude": lat, "longitude": lon, "zoom": round(zoom, 2), "minZoom": 0, "maxZoom": 14}


def _base_layers(borders_placeholder: str, basemap: bool) -> list[dict]:
    layers = []
    if not basemap:
        layers.append({"@@type": "SolidPolygonLayer", "id": "ocean", "pickable": False,
                       "data": [{"p": [[-180, -85], [180, -85], [180, 85], [-180, 85]]}],
                       "getPolygon": "@@=p", "getFillColor": OCEAN})
    # Natural Earth rings that cross the antimeridian (Russia, Fiji) jump from +180 to -180;
    # deck.gl cuts them there instead of drawing lines and bands across the whole world.
    layers.append({"@@type": "GeoJsonLayer", "id": "borders", "pickable": False,
                   "data": borders_placeholder, "stroked": True, "filled": not basemap,
                   "getFillColor": LAND, "getLineColor": BORDER, "lineWidthMinPixels": 1,
                   "wrapLongitude": True})
    return layers


def _markers_layer(markers: Sequence[Marker], layer_id: str = "markers") -> dict:
    return {"@@type": "ScatterplotLayer", "id": layer_id, "pickable": False,
            "data": [{"p": [m.lon, m.lat], "c": list(m.colour), "t": m.label} for m in markers],
            "getPosition": "@@=p", "getFillColor": "@@=c", "getLineColor": [255, 255, 255, 255],
            "stroked": True, "lineWidthMinPixels": 2, "radiusMinPixels": 7, "radiusMaxPixels": 12,
            "getRadius": 2000}


def _labels_layer(markers: Sequence[Marker]) -> dict:
    return {"@@type": "TextLayer", "id": "labels", "pickable": False,
            "data": [{"p": [m.lon, m.lat], "t": m.label} for m in markers],
            "getPosition": "@@=p", "getText": "@@=t", "getSize": 13, "getColor": [20, 20, 20, 255],
            "getPixelOffset": [0, -18], "fontWeight": "bold",
            "characterSet": "auto", "outlineWidth": 2, "outlineColor": [255, 255, 255, 255]}


def play_deck(bounds: Bounds, grid: PickGrid, borders: str, *, guess: Marker | None = None,
              refine_cells: Sequence[str] = (), basemap: bool = False) -> MapDeck:
    """The round's map: every point pickable through the grid (plus a finer patch around the guess)."""
    layers = _base_layers("@@BORDERS@@", basemap)
    # The fast path draws every cell with the shape of the one at the view's centre: fine on a
    # country, but across the world cells turn and stretch, leaving unclickable gaps between
    # them. World grids get each cell's true outline (slower to build, every point pickable).
    layers.append({"@@type": "H3HexagonLayer", "id": GRID_LAYER, "pickable": True,
                   "data": "@@GRID@@", "getHexagon": "@@=-", "filled": True, "stroked": False,
                   "extruded": False, "getFillColor": PICK_RGB, "highPrecision": grid.world})
    if refine_cells:
        layers.append({"@@type": "H3HexagonLayer", "id": REFINE_LAYER, "pickable": True,
                       "data": list(refine_cells), "getHexagon": "@@=-", "filled": True,
                       "stroked": True, "getLineColor": [230, 80, 30, 60], "lineWidthMinPixels": 0.5,
                       "extruded": False, "getFillColor": PICK_RGB})
    if guess is not None:
        layers.append(_markers_layer([guess]))
    spec = {"initialViewState": view_state(bounds, grid.world), "layers": layers,
            "mapStyle": ONLINE_BASEMAP if basemap else NO_BASEMAP,
            "views": [{"@@type": "MapView", "controller": {"doubleClickZoom": False}}]}
    return MapDeck(spec, {"@@GRID@@": grid.data_json, "@@BORDERS@@": borders})


def result_deck(bounds: Bounds, world: bool, borders: str, truth: Marker, guesses: Sequence[Marker],
                basemap: bool = False) -> MapDeck:
    """The truth, every guess, and a line from each guess to the truth."""
    layers = _base_layers("@@BORDERS@@", basemap)
    layers.append({"@@type": "LineLayer", "id": "lines", "pickable": False,
                   "data": [{"a": [g.lon, g.lat], "b": [truth.lon, truth.lat], "c": list(g.colour)}
                            for g in guesses],
                   "getSourcePosition": "@@=a", "getTargetPosition": "@@=b", "getColor": "@@=c",
                   "getWidth": 3, "widthUnits": "pixels"})
    everyone = [*guesses, truth]
    layers.append(_markers_layer(everyone))
    layers.append(_labels_layer(everyone))
    spec = {"initialViewState": _fit(bounds, world, everyone), "layers": layers,
            "mapStyle": ONLINE_BASEMAP if basemap else NO_BASEMAP,
            "views": [{"@@type": "MapView", "controller": True}]}
    return MapDeck(spec, {"@@BORDERS@@": borders})


def _fit(bounds: Bounds, world: bool, markers: Sequence[Marker]) -> dict:
    """A view containing every marker (the map's own view when they fit in it)."""
    lats = [m.lat for m in markers]
    lons = [m.lon for m in markers]
    span = Bounds(min(lats), min(lons), max(lats), max(lons))
    if (max(lons) - min(lons)) > 180:
        return view_state(bounds, True)
    inside = (span.south >= bounds.south and span.north <= bounds.north
              and span.west >= bounds.west and span.east <= bounds.east)
    return view_state(bounds, world) if inside else view_state(span, False)


def guess_colours(names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """A distinct colour per participant, in order (the person first)."""
    return {name: tuple(COLOURS[i % len(COLOURS)]) for i, name in enumerate(names)}


def online_basemap_reachable(timeout_s: float = 1.5) -> bool:
    """Whether the online basemap's style answers (checked by the server, never blocking long)."""
    try:
        request = urllib.request.Request(ONLINE_BASEMAP, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - fixed https URL
            return 200 <= response.status < 400
    except (OSError, ValueError):
        return False
