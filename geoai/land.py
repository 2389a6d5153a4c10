"""Distance from a coordinate to the nearest land, from the game's borders layer
(assets/countries-50m.geojson): 0 inside a country, else great-circle km to its nearest coast.

For measuring where guesses land (a guess in open sea is a symptom of a model averaging far
apart regions). Coasts are densified to a vertex every ~5 km, so the distance to the nearest
vertex is within a few km of the distance to the coastline.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from geoai.geodesy import pairwise_haversine_km
from geoai.settings import REPO_ROOT

BORDERS = REPO_ROOT / "assets" / "countries-50m.geojson"  # Natural Earth, also drawn by the game
STEP_DEG = 0.05  # densify coast segments to about 5 km


@lru_cache(maxsize=2)
def _rings(path: str = str(BORDERS)) -> tuple[list[np.ndarray], np.ndarray]:
    """Outer rings as (M, 2) [lon, lat] arrays, and every coast vertex (densified) as [lat, lon]."""
    features = json.loads(Path(path).read_text(encoding="utf-8"))["features"]
    rings, vertices = [], []
    for feature in features:
        geometry = feature.get("geometry") or {}
        polygons = ([geometry["coordinates"]] if geometry.get("type") == "Polygon"
                    else geometry.get("coordinates", []) if geometry.get("type") == "MultiPolygon" else [])
        for polygon in polygons:
            for i, ring in enumerate(polygon):
                ring = np.asarray(ring, dtype=np.float64)
                if len(ring) < 3:
                    continue
                if i == 0:
                    rings.append(ring)
                starts, ends = ring[:-1], ring[1:]
                steps = np.maximum(1, np.ceil(np.abs(ends - starts).max(axis=1) / STEP_DEG)).astype(int)
                for a, b, n in zip(starts, ends, steps):
                    t = np.arange(n)[:, None] / n
                    vertices.append(a + (b - a) * t)
    coast = np.concatenate(vertices)[:, ::-1]  # [lat, lon]
    return rings, coast


def _inside(points: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Even-odd ray casting of [lat, lon] points against one [lon, lat] ring."""
    x, y = points[:, 1][:, None], points[:, 0][:, None]
    x1, y1, x2, y2 = ring[:-1, 0], ring[:-1, 1], ring[1:, 0], ring[1:, 1]
    crosses = ((y1 > y) != (y2 > y)) & (x < (x2 - x1) * (y - y1) / np.where(y2 == y1, 1e-12, y2 - y1) + x1)
    return crosses.sum(axis=1) % 2 == 1


def km_from_land(latlon) -> np.ndarray:
    """(N,) km from each [lat, lon] to the nearest land (0 on land)."""
    points = np.atleast_2d(np.asarray(latlon, dtype=np.float64))
    rings, coast = _rings()
    on_land = np.zeros(len(points), dtype=bool)
    for ring in rings:
        lon_min, lat_min = ring.min(axis=0)
        lon_max, lat_max = ring.max(axis=0)
        box = ((points[:, 0] >= lat_min) & (points[:, 0] <= lat_max) & (points[:, 1] >= lon_min)
               & (points[:, 1] <= lon_max) & ~on_land)
        if box.any():
            on_land[box] = _inside(points[box], ring)
    km = np.zeros(len(points))
    sea = np.flatnonzero(~on_land)
    for start in range(0, len(sea), 64):
        chunk = sea[start:start + 64]
        km[chunk] = pairwise_haversine_km(points[chunk], coast).min(axis=1)
    return km
