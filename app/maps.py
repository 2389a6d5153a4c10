"""The maps a person can play: dataset folders under GEOAI_DATA_DIR, played on their test split.

A map's rounds come only from the dataset's held-out 'test' split (geoai.data's split by
location_id, the same one training uses), so the models never saw a round's images. Its
size (the D of the scoring formula) and its area are those of the whole dataset, so the
scoring does not depend on which places happen to be in the test split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from app.game import Place
from geoai.data import DatasetError, GeoDataset, load_image_folder
from geoai.scoring import map_size_km
from geoai.settings import data_dir

METADATA_FILE = "metadata.csv"
MAX_VIEWS_PER_PLACE = 8  # im2gps-style folders can pile dozens of photos on one spot
WORLD_LON_SPAN_DEG = 180.0  # wider maps are played on the whole world
MIN_VIEW_SPAN_DEG = 0.05  # a map of one spot still shows its streets, not one pixel
MAX_VIEW_ZOOM = 14.0
MERCATOR_MAX_LAT = 85.051129  # Web Mercator's square world stops here


class MapError(RuntimeError):
    """No playable map, or a map that cannot be loaded; the message says what to do."""


@dataclass(frozen=True)
class Bounds:
    """The area a map's places cover, in degrees.

    west/east bound the smallest longitude interval holding every place, read eastwards
    from west to east: east < west means it crosses the antimeridian (places around Fiji
    give west 177.2, east -179.6, 1.2 degrees wide, not the whole world). A map wider than
    half the world (`world`) keeps the plain minimum and maximum: it is shown whole anyway.
    """

    south: float
    west: float
    north: float
    east: float

    @classmethod
    def of(cls, lats, lons) -> Bounds:
        """The bounds of places given as latitude and longitude arrays (at least one place)."""
        lats, lons = np.asarray(lats, dtype=np.float64), np.asarray(lons, dtype=np.float64)
        if lats.size == 0 or lats.shape != lons.shape:
            raise ValueError("bounds need at least one place and as many latitudes as longitudes")
        west, east = _smallest_lon_interval(lons)
        return cls(float(lats.min()), west, float(lats.max()), east)

    @property
    def wraps(self) -> bool:
        """Whether the area crosses the antimeridian (east < west)."""
        return self.east < self.west

    @property
    def lon_span(self) -> float:
        """Degrees of longitude from west eastwards to east, 0 to 360."""
        return (self.east - self.west) % 360.0 if self.wraps else self.east - self.west

    @property
    def lat_span(self) -> float:
        return self.north - self.south

    @property
    def world(self) -> bool:
        """Wider than half the world: played and shown on the whole world."""
        return self.lon_span > WORLD_LON_SPAN_DEG

    @property
    def centre(self) -> tuple[float, float]:
        """(lat, lon) halfway across the area, the longitude in [-180, 180)."""
        return (self.south + self.north) / 2, _wrap_lon(self.west + self.lon_span / 2)

    def contains(self, lat: float, lon: float) -> bool:
        """Whether a point lies inside (edges included), across the antimeridian too."""
        if not self.south <= lat <= self.north:
            return False
        return (float(lon) - self.west) % 360.0 <= self.lon_span or self.lon_span >= 360.0

    def view(self, width_px: int = 700, height_px: int = 450, margin: float = 1.3) -> MapView:
        """Centre and Web Mercator zoom that fit the area (times `margin`) in a chart of
        width_px x height_px (deck.gl: 512 px span 360 degrees at zoom 0)."""
        lon_span = max(self.lon_span, MIN_VIEW_SPAN_DEG) * margin
        y_south, y_north = _mercator_y(self.south), _mercator_y(self.north)
        y_span = max(y_north - y_south, _mercator_y(MIN_VIEW_SPAN_DEG) - _mercator_y(0.0)) * margin
        zoom_lon = math.log2(width_px / 512 * 360 / min(lon_span, 360.0))
        zoom_lat = math.log2(height_px / 512 / min(y_span, 1.0))
        zoom = min(max(min(zoom_lon, zoom_lat), 0.0), MAX_VIEW_ZOOM)
        centre_lat = _mercator_lat((y_south + y_north) / 2)  # the middle on screen, not in degrees
        return MapView(latitude=centre_lat, longitude=self.centre[1], zoom=zoom,
                       lon_span=lon_span, lat_span=max(self.lat_span, MIN_VIEW_SPAN_DEG) * margin)


@dataclass(frozen=True)
class MapView:
    """Where a chart looks: its centre, deck.gl zoom and the degrees it spans."""

    latitude: float
    longitude: float
    zoom: float
    lon_span: float
    lat_span: float


def _wrap_lon(lon: float) -> float:
    """The same meridian in [-180, 180)."""
    return (float(lon) + 180.0) % 360.0 - 180.0


def _smallest_lon_interval(lons: np.ndarray) -> tuple[float, float]:
    """(west, east) of the shortest eastward interval holding every longitude.

    It is the circle minus its largest gap between neighbouring longitudes; when that gap
    is the one across the antimeridian (or the interval is over half the world), the
    plain (min, max). O(n log n), whatever the area.
    """
    ordered = np.unique(np.mod(lons + 180.0, 360.0) - 180.0)  # 180 and -180 are one meridian
    lo, hi = float(ordered[0]), float(ordered[-1])
    if len(ordered) == 1:
        return lo, lo
    gaps = np.diff(ordered)
    widest = int(np.argmax(gaps))
    if gaps[widest] <= lo + 360.0 - hi or 360.0 - gaps[widest] > WORLD_LON_SPAN_DEG:
        return float(np.min(lons)), float(np.max(lons))
    west, east = float(ordered[widest + 1]), float(ordered[widest])
    return west, (180.0 if east == -180.0 and west > 0 else east)


def _mercator_y(lat: float) -> float:
    """Web Mercator y of a latitude, in world widths (0 at the equator), clamped at 85.05 degrees."""
    lat = min(max(lat, -MERCATOR_MAX_LAT), MERCATOR_MAX_LAT)
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)) / (2 * math.pi)


def _mercator_lat(y: float) -> float:
    return math.degrees(2 * math.atan(math.exp(y * 2 * math.pi)) - math.pi / 2)


@dataclass(frozen=True)
class GameMap:
    name: str
    places: tuple[Place, ...]  # the test split, one per place
    size_km: float  # D of the scoring formula, over the whole dataset
    bounds: Bounds  # the whole dataset's coordinates

    @property
    def multi_view(self) -> bool:
        return any(len(p.image_paths) > 1 for p in self.places)


def discover_maps(root: Path | None = None) -> list[Path]:
    """Dataset folders (holding metadata.csv) directly under `root`, sorted by name."""
    root = data_dir() if root is None else Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / METADATA_FILE).is_file())


def load_map(folder: Path) -> GameMap:
    """Load a dataset folder as a map; MapError when it is unusable or has no test places."""
    folder = Path(folder)
    try:
        dataset = load_image_folder(folder, on_error="skip", check_images="header")
    except (DatasetError, ValueError, OSError) as exc:
        raise MapError(f"the map {folder.name!r} cannot be loaded: {exc}") from exc
    if len(dataset) == 0:
        raise MapError(f"the map {folder.name!r} has no usable images ({len(dataset.problems)} problems)")
    places = places_of(dataset.subset("test"))
    if not places:
        raise MapError(f"the map {folder.name!r} has no places in its test split; it needs more places")
    coords = dataset.coords
    return GameMap(name=dataset.name, places=tuple(places),
                   size_km=map_size_km(coords[:, 0], coords[:, 1]),
                   bounds=Bounds.of(coords[:, 0], coords[:, 1]))


def places_of(dataset: GeoDataset) -> list[Place]:
    """One Place per place key (GeoDataset.place_keys), its views ordered by heading.

    One sort of the whole table, then a slice per place: linear in the rows after the sort.
    """
    frame = dataset.frame.assign(_place=dataset.place_keys().astype(str),
                                 _order=_heading_order(dataset.frame["heading"]))
    frame = frame.sort_values(["_place", "_order"], kind="stable")
    frame = frame[frame.groupby("_place", sort=False).cumcount() < MAX_VIEWS_PER_PLACE]
    keys = frame["_place"].to_numpy()
    lats, lons = frame["lat"].to_numpy(np.float64), frame["lon"].to_numpy(np.float64)
    paths = frame["path"].astype(str).tolist()
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.array([], int)
    ends = np.r_[starts[1:], len(keys)]
    return [Place(location_id=str(keys[a]), lat=float(lats[a]), lon=float(lons[a]),
                  image_paths=tuple(paths[a:b])) for a, b in zip(starts, ends)]


def _heading_order(headings) -> np.ndarray:
    """Sort numeric headings numerically (0, 90, 180), others as text after them."""
    numeric = pd.to_numeric(pd.Series(headings, dtype=object), errors="coerce").to_numpy(np.float64)
    return np.where(np.isnan(numeric), np.inf, numeric)
