"""Map specs for every map the game draws (round, result, belief, upload), drawn by
app.components.guess_map.

Specs are deck.gl JSON, the format pydeck writes, built as plain dicts: the two large static
layers, country borders and country names, are serialized once per process and spliced into
every spec as ready JSON, and no pydeck object is built per page run (building one imports
and checks optional packages each time, and its serializer walks the borders again).

The map needs no tile server: the sea is the map's background, land and borders come
from assets/countries-50m.geojson and names from assets/country-labels.json. Online
raster tiles are an extra the page may switch on (`tiles_url`).
"""
from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.country_labels import label_characters
from app.maps import Bounds

ONLINE_BASEMAP = "https://basemaps.cartocdn.com/gl/positron-gl-style/style.json"  # reachability probe
ONLINE_TILES = "https://basemaps.cartocdn.com/light_all/{z}/{x}/{y}.png"
LAND = [246, 243, 233, 255]
BORDER = [105, 105, 105, 255]
LABEL_TEXT = [55, 55, 60, 255]
LABEL_HALO = [255, 255, 255, 230]
ARC_POINTS = 64  # points per great-circle arc
WORLD_FRAME = (-56.0, -180.0, 75.0, 180.0)  # (south, west, north, east) of a world map's first view
MIN_FRAME_DEG = 0.2  # a result whose guesses all sit on the truth still shows the streets around it


@dataclass(frozen=True)
class Marker:
    label: str
    lat: float
    lon: float
    colour: tuple[int, ...]


BORDERS, LABELS = "@@BORDERS@@", "@@LABELS@@"  # placeholders for the spliced layer data


class MapDeck:
    """A deck.gl JSON spec with big layer data spliced in verbatim (guess_map draws it)."""

    def __init__(self, spec: dict, blobs: dict[str, str]) -> None:
        self.spec = spec
        self.blobs = blobs  # placeholder -> JSON text

    def to_json(self) -> str:
        text = json.dumps(self.spec, separators=(",", ":"))
        for placeholder, blob in self.blobs.items():
            text = text.replace(json.dumps(placeholder), blob, 1)
        return text


def _view_state(bounds: Bounds) -> dict:
    """The first view before the browser fits the frame to its real size."""
    view = Bounds(*_world_or(bounds)).view(width_px=760, height_px=460)
    return {"latitude": view.latitude, "longitude": view.longitude, "zoom": round(view.zoom, 3),
            "minZoom": 0, "maxZoom": 16}


def _world_or(bounds: Bounds) -> tuple[float, float, float, float]:
    return WORLD_FRAME if bounds.world else (bounds.south, bounds.west, bounds.north, bounds.east)


def frame_of(bounds: Bounds, margin: float = 0.15) -> tuple[float, float, float, float]:
    """(south, west, north, east) to frame at a round's start: the map's area plus a margin
    (the whole world for world maps)."""
    if bounds.world:
        return WORLD_FRAME
    dlat = max(bounds.lat_span, MIN_FRAME_DEG) * margin
    dlon = max(bounds.lon_span, MIN_FRAME_DEG) * margin
    west = (bounds.west - dlon + 180.0) % 360.0 - 180.0
    east = (bounds.east + dlon + 180.0) % 360.0 - 180.0
    return max(bounds.south - dlat, -85.0), west, min(bounds.north + dlat, 85.0), east


def result_frame(markers: Sequence[Marker], margin: float = 0.12) -> tuple[float, float, float, float]:
    """(south, west, north, east) holding every marker (antimeridian-aware), with a margin."""
    area = Bounds.of([m.lat for m in markers], [m.lon for m in markers])
    if area.world:
        return WORLD_FRAME
    lat_pad = max(area.lat_span * margin, MIN_FRAME_DEG / 2)
    lon_pad = max(area.lon_span * margin, MIN_FRAME_DEG / 2)
    west = (area.west - lon_pad + 180.0) % 360.0 - 180.0
    east = (area.east + lon_pad + 180.0) % 360.0 - 180.0
    return max(area.south - lat_pad, -85.0), west, min(area.north + lat_pad, 85.0), east


def base_layers(tiles: bool = False) -> list[dict]:
    """Land, borders and country names (spliced in from BORDERS and LABELS)."""
    # Natural Earth rings that cross the antimeridian (Russia, Fiji) jump from +180 to -180;
    # deck.gl cuts them there instead of drawing lines and bands across the whole world.
    return [
        {"@@type": "GeoJsonLayer", "id": "land", "pickable": False, "data": BORDERS,
         "stroked": True, "filled": not tiles, "getFillColor": LAND, "getLineColor": BORDER,
         "lineWidthUnits": "pixels", "getLineWidth": 1, "lineWidthMinPixels": 1, "wrapLongitude": True},
        {"@@type": "TextLayer", "id": "country-names", "pickable": False, "data": LABELS,
         "getPosition": "@@=p", "getText": "@@=n", "getSize": 13, "sizeUnits": "pixels",
         "getColor": LABEL_TEXT, "fontFamily": "Source Sans Pro, Helvetica, Arial, sans-serif",
         "fontWeight": 600, "characterSet": label_characters(), "fontSettings": {"sdf": True, "buffer": 8},
         "outlineWidth": 3, "outlineColor": LABEL_HALO},
        # (the map component drops names that would overlap, bigger countries first: "r")
    ]


def _views() -> list[dict]:
    return [{"@@type": "MapView", "id": "map", "repeat": True}]  # the world wraps around


def map_deck(view_state: dict, layers: Sequence[dict], borders: str | None, labels: str | None,
             *, tiles: bool = False) -> MapDeck:
    """A map of land, borders and names under `layers`; view_state: latitude, longitude, zoom."""
    spec = {"initialViewState": view_state, "views": _views(), "layers": [*base_layers(tiles), *layers]}
    return MapDeck(spec, {BORDERS: borders or "[]", LABELS: labels or "[]"})


def play_deck(bounds: Bounds, borders: str, labels: str, *, tiles: bool = False) -> MapDeck:
    """The round's map: land, borders and names; the pin lives in the browser."""
    return map_deck(_view_state(bounds), [], borders, labels, tiles=tiles)


def great_circle(a: tuple[float, float], b: tuple[float, float], points: int = ARC_POINTS) -> list[list[float]]:
    """[lon, lat] points along the shorter great circle from a to b, both (lat, lon).

    Longitudes stay continuous (they may pass 180 or -180), so deck.gl draws an arc across
    the antimeridian as one line on the wrapped world.
    """
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    p = np.array([math.cos(lat1) * math.cos(lon1), math.cos(lat1) * math.sin(lon1), math.sin(lat1)])
    q = np.array([math.cos(lat2) * math.cos(lon2), math.cos(lat2) * math.sin(lon2), math.sin(lat2)])
    omega = math.acos(max(-1.0, min(1.0, float(p @ q))))
    t = np.linspace(0.0, 1.0, points)[:, None]
    if omega < 1e-9:
        xyz = np.repeat(p[None, :], points, axis=0)
    else:  # spherical linear interpolation
        xyz = (np.sin((1 - t) * omega) * p + np.sin(t * omega) * q) / math.sin(omega)
    lats = np.degrees(np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1])))
    lons = np.degrees(np.unwrap(np.arctan2(xyz[:, 1], xyz[:, 0])))
    lons += a[1] - lons[0]  # start exactly at the guess's own longitude
    return [[round(float(x), 5), round(float(y), 5)] for x, y in zip(lons, lats)]


def result_deck(bounds: Bounds, borders: str, labels: str, truth: Marker, guesses: Sequence[Marker],
                *, tiles: bool = False) -> MapDeck:
    """The truth, every guess, and a great-circle arc from each guess to the truth."""
    layers = [{"@@type": "PathLayer", "id": "arcs", "pickable": False,
                   "data": [{"path": great_circle((g.lat, g.lon), (truth.lat, truth.lon)), "c": list(g.colour[:3])}
                            for g in guesses],
                   "getPath": "@@=path", "getColor": "@@=c", "getWidth": 3, "widthUnits": "pixels",
                   "capRounded": True, "jointRounded": True}]
    points = [{"p": [g.lon, g.lat], "c": list(g.colour[:3]), "r": 7} for g in guesses]
    points.append({"p": [truth.lon, truth.lat], "c": list(truth.colour[:3]), "r": 10})
    layers.append({"@@type": "ScatterplotLayer", "id": "truth-ring", "pickable": False,  # the truth stands out
                   "data": [{"p": [truth.lon, truth.lat]}], "getPosition": "@@=p", "getRadius": 13.5,
                   "radiusUnits": "pixels", "getFillColor": [35, 35, 35, 255]})
    layers.append({"@@type": "ScatterplotLayer", "id": "markers", "pickable": False, "data": points,
                   "getPosition": "@@=p", "getFillColor": "@@=c", "getRadius": "@@=r",
                   "radiusUnits": "pixels", "stroked": True, "getLineColor": [255, 255, 255, 255],
                   "lineWidthUnits": "pixels", "getLineWidth": 2.5})
    return map_deck(_view_state(bounds), layers, borders, labels, tiles=tiles)


def online_basemap_reachable(timeout_s: float = 1.5) -> bool:
    """Whether the online basemap answers (checked by the server, never blocking long)."""
    try:
        request = urllib.request.Request(ONLINE_BASEMAP, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - fixed https URL
            return 200 <= response.status < 400
    except (OSError, ValueError):
        return False
